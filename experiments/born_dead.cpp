// Rows 6a/6b: deep narrow ReLU nets are born dead (Lu et al. 2019); the exact probability that a second-layer unit
// is stably inactive (Brownlowe et al. 2024).
#include "common.h"

namespace rectifier::exp {

namespace {
// Is z(x) = w2 . relu(W1 x + b1) + b2 <= 0 for every x in R^n0? z is piecewise linear: check it at every vertex of
// the arrangement of the hyperplanes W1_i x + b1_i = 0 and far out along many directions (the recession slopes).
bool stably_inactive(int n0, int n1, Rng& rng) {
  std::vector<double> W(static_cast<size_t>(n0 * n1)), b(static_cast<size_t>(n1)), w(static_cast<size_t>(n1));
  for (auto& v : W) v = rng.normal();
  for (auto& v : b) v = rng.normal();
  for (auto& v : w) v = rng.normal();
  const double b2 = rng.normal();
  auto z = [&](const double* x) {
    double s = b2;
    for (int i = 0; i < n1; ++i) {
      double a = b[size_t(i)];
      for (int j = 0; j < n0; ++j) a += W[size_t(i * n0 + j)] * x[j];
      s += w[size_t(i)] * std::max(a, 0.0);
    }
    return s;
  };
  std::vector<std::vector<double>> pts;
  if (n0 == 1) {
    for (int i = 0; i < n1; ++i) pts.push_back({-b[size_t(i)] / W[size_t(i)]});
    pts.push_back({1e9});
    pts.push_back({-1e9});
  } else {  // n0 == 2: pairwise intersections, then a far ring
    for (int i = 0; i < n1; ++i)
      for (int k = i + 1; k < n1; ++k) {
        const double a = W[size_t(2 * i)], bb = W[size_t(2 * i + 1)], c = W[size_t(2 * k)], d = W[size_t(2 * k + 1)];
        const double det = a * d - bb * c;
        if (std::abs(det) < 1e-15) continue;
        pts.push_back({(-b[size_t(i)] * d + bb * b[size_t(k)]) / det, (-a * b[size_t(k)] + c * b[size_t(i)]) / det});
      }
    for (int t = 0; t < 4096; ++t) {
      const double ang = 6.283185307179586 * t / 4096;
      pts.push_back({1e9 * std::cos(ang), 1e9 * std::sin(ang)});
    }
    pts.push_back({0, 0});
  }
  for (const auto& p : pts)
    if (z(p.data()) > 0) return false;
  return true;
}
}  // namespace

Experiment born_dead() {
  return {"born-dead", "How likely is a ReLU unit, or a whole deep narrow net, to be dead at initialisation?",
          [](const ExperimentOptions& o) {
            ExperimentResult r;
            // 6b: the exact formula.
            struct Case { int n0, n1; double exact; const char* text; };
            const Case cases[] = {{1, 1, 0.25, "1/4"}, {1, 2, 3.0 / 16, "3/16"}, {2, 3, 5.0 / 64, "5/64"}, {2, 2, 1.0 / 8, "1/8"}};
            const long draws = o.quick ? 20000 : 100000;
            Rng rng(12345);
            nlohmann::json exact = nlohmann::json::array();
            bool all_ok = true;
            std::string measured;
            for (const auto& c : cases) {
              long dead = 0;
              for (long i = 0; i < draws; ++i) dead += stably_inactive(c.n0, c.n1, rng);
              const double p = double(dead) / double(draws), se = std::sqrt(c.exact * (1 - c.exact) / double(draws));
              const double zscore = (p - c.exact) / se;
              all_ok &= std::abs(zscore) <= 3;
              measured += std::string(measured.empty() ? "" : "; ") + c.text + ": " + fmt(p, "%.4f") + " (" + fmt(zscore, "%+.1f") + " SE)";
              exact.push_back({{"n0", c.n0}, {"n1", c.n1}, {"exact", c.exact}, {"measured", p}, {"se", se}, {"z", zscore}, {"draws", draws}});
              say(o, "n0 " + std::to_string(c.n0) + " n1 " + std::to_string(c.n1) + ": " + fmt(p, "%.4f") + " vs " + c.text);
            }
            r.claims.push_back(claim("P[second-layer unit stably inactive] = 1/2^(n1+1) (n1 <= n0), (2^n0+1)/4^(n0+1) (n1 = n0+1)",
                                     "Brownlowe et al. 2024", "1/4, 3/16, 5/64, 1/8", measured, all_ok, true,
                                     all_ok ? "every case within 3 standard errors (" + std::to_string(draws) + " draws)"
                                            : "some case outside 3 standard errors", ""));
            // 6a: whole nets, 1-D input, weights and biases N(0, 2/fan_in) and N(0, 1)... symmetric init.
            const std::vector<int> widths = o.quick ? std::vector<int>{2, 5} : std::vector<int>{2, 3, 5, 10};
            const std::vector<int> depths = o.quick ? std::vector<int>{2, 10} : std::vector<int>{2, 5, 10, 20, 30, 50};
            const int nets = o.quick ? 100 : 1000;
            std::vector<double> grid;
            for (int i = 0; i <= 400; ++i) grid.push_back(-20 + 40.0 * i / 400);
            Chart ch = chart("Born-dead nets (constant output on [-20, 20]), 1-D input", "depth (hidden layers)", "probability");
            nlohmann::json table = nlohmann::json::array();
            bool rises = true, falls = true;
            std::vector<std::vector<double>> prob;
            for (int w : widths) {
              Series s;
              s.label = "width " + std::to_string(w);
              prob.emplace_back();
              for (int depth : depths) {
                int dead = 0;
                for (int k = 0; k < nets; ++k) {
                  InitSpec init;
                  init.scheme = InitScheme::he_normal;
                  ArchContext ctx;
                  ctx.input = {1};
                  Model<double> m(parse_arch(hidden(depth, w, "relu") + "dense(1)", ctx), {1});
                  Rng g(uint64_t(1000003) * uint64_t(w) + uint64_t(depth) * 7919 + uint64_t(k));
                  m.init(init, uint64_t(k) * 31 + uint64_t(w * 1000 + depth));
                  for (size_t l = 0; l < m.num_layers(); ++l)  // symmetric random biases
                    for (auto& p : m.layer(l).params())
                      if (p.name == "bias") for (size_t j = 0; j < p.size(); ++j) p.value[j] = g.normal();
                  const double* y = m.forward(grid.data(), int(grid.size()), false);
                  double lo = y[0], hi = y[0];
                  for (size_t j = 1; j < grid.size(); ++j) { lo = std::min(lo, y[j]); hi = std::max(hi, y[j]); }
                  dead += hi - lo <= 1e-12 * (1 + std::abs(hi));
                }
                const double p = double(dead) / nets;
                s.x.push_back(depth);
                s.y.push_back(p);
                prob.back().push_back(p);
                table.push_back({{"width", w}, {"depth", depth}, {"nets", nets}, {"born_dead", p}});
              }
              rises &= s.y.back() > s.y.front();
              ch.series.push_back(s);
              say(o, "width " + std::to_string(w) + ": born dead at depth " + std::to_string(depths.back()) + " = " + fmt(s.y.back()));
            }
            for (size_t di = 0; di < depths.size(); ++di)
              if (depths[di] >= 10) falls &= prob.front()[di] >= prob.back()[di];
            ch.y_min = 0.0;
            ch.y_max = 1.0;
            r.charts["born_dead.svg"] = render_svg(ch);
            r.claims.push_back(claim("the probability a deep narrow ReLU net is born dead rises with depth, falls with width",
                                     "Lu, Shin, Su, Karniadakis 2019", "-> 1 as depth grows (per-cell numbers unverified)",
                                     "width " + std::to_string(widths.front()) + ": " + fmt(prob.front().front()) + " at depth " +
                                         std::to_string(depths.front()) + " -> " + fmt(prob.front().back()) + " at depth " +
                                         std::to_string(depths.back()) + "; width " + std::to_string(widths.back()) + ": " +
                                         fmt(prob.back().back()) + " at depth " + std::to_string(depths.back()),
                                     rises && falls, !o.quick, rises && falls ? "rises with depth for every width, falls with width"
                                                                           : "not monotone as claimed", "born_dead.svg"));
            r.data = {{"exact", exact}, {"nets", table}};
            return r;
          }};
}

}  // namespace rectifier::exp
