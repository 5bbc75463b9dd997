#include "common.h"

#include <cstdio>

namespace rectifier::exp {

Dataset head(const Dataset& d, size_t n) {
  Dataset o = d;
  n = std::min(n, d.size());
  const size_t D = numel(d.shape);
  o.labels.resize(n);
  if (d.is_images()) o.pixels.resize(n * D);
  else o.features.resize(n * D);
  return o;
}

DataSplit fashion(size_t train, size_t test) {
  DataSplit s = load_data("fashion-mnist");
  if (train) s.train = head(s.train, train);
  if (test) s.test = head(s.test, test);
  return s;
}

Model<float> net(const std::string& arch, const Shape& in, InitSpec init, uint64_t seed) {
  ArchContext ctx;
  ctx.input = in;
  Model<float> m(parse_arch(arch, ctx), in);
  m.init(init, seed);
  return m;
}

std::string hidden(int layers, int width, const std::string& act) {
  std::string t;
  for (int i = 0; i < layers; ++i) t += "dense(" + std::to_string(width) + ") " + act + " ";
  return t;
}

template <class F>
static void batches(Model<float>& m, const Dataset& d, size_t n, F&& f) {
  n = std::min(n, d.size());
  const int B = 500;
  Buffer<float> x(size_t(B) * numel(d.shape));
  for (size_t i = 0; i < n; i += B) {
    const int b = int(std::min<size_t>(B, n - i));
    d.gather_range(i, b, x.data());
    m.forward(x.data(), b, false);
    f(b, i);
  }
}

double zero_fraction(Model<float>& m, const Dataset& d, size_t n) {
  double zeros = 0, total = 0;
  batches(m, d, n, [&](int b, size_t) {
    for (size_t l = 0; l < m.num_layers(); ++l) {
      if (!m.layer(l).activation()) continue;
      const size_t k = size_t(b) * numel(m.layer(l).out_shape());
      const float* y = m.layer_output(l);
      for (size_t j = 0; j < k; ++j) zeros += y[j] == 0.0f;
      total += double(k);
    }
  });
  return total > 0 ? zeros / total : 0;
}

std::vector<double> activation_variances(Model<float>& m, const Dataset& d, size_t n) {
  std::vector<double> s, ss, cnt;
  batches(m, d, n, [&](int b, size_t) {
    size_t a = 0;
    for (size_t l = 0; l < m.num_layers(); ++l) {
      if (!m.layer(l).activation()) continue;
      if (s.size() <= a) { s.push_back(0); ss.push_back(0); cnt.push_back(0); }
      const size_t k = size_t(b) * numel(m.layer(l).out_shape());
      const float* y = m.layer_output(l);
      for (size_t j = 0; j < k; ++j) { s[a] += y[j]; ss[a] += double(y[j]) * y[j]; }
      cnt[a] += double(k);
      ++a;
    }
  });
  std::vector<double> v;
  for (size_t a = 0; a < s.size(); ++a) {
    const double mean = s[a] / cnt[a];
    v.push_back(ss[a] / cnt[a] - mean * mean);
  }
  return v;
}

std::vector<double> weight_grad_norms(Model<float>& m, const Dataset& d, size_t n) {
  n = std::min(n, d.size());
  const size_t K = numel(m.output_shape());
  Buffer<float> x(n * numel(d.shape)), dout(n * K);
  d.gather_range(0, int(n), x.data());
  const float* out = m.forward(x.data(), int(n), true);
  loss_forward_backward<float>(LossKind::cross_entropy, out, d.labels.data(), int(n), int(K), dout.data());
  m.zero_grad();
  m.backward(dout.data(), int(n));
  std::vector<double> norms;
  for (size_t l = 0; l < m.num_layers(); ++l) {
    if (m.layer(l).kind() != LayerKind::dense) continue;
    const auto& p = m.layer(l).params()[0];
    double ss = 0;
    for (size_t j = 0; j < p.size(); ++j) ss += double(p.grad[j]) * p.grad[j];
    norms.push_back(std::sqrt(ss));
  }
  return norms;
}

Claim claim(std::string c, std::string paper, std::string published, std::string measured, bool ok, bool clear,
            std::string reason, std::string chart) {
  return {std::move(c), std::move(paper), std::move(published), std::move(measured),
          !clear ? "inconclusive" : ok ? "reproduced" : "not reproduced",
          clear ? std::move(reason) : "too small a run to decide (the full run decides); seen: " + reason, std::move(chart)};
}

std::string fmt(double v, const char* f) {
  char b[48];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

Chart chart(const std::string& title, const std::string& xlabel, const std::string& ylabel) {
  Chart c;
  c.title = title;
  c.xlabel = xlabel;
  c.ylabel = ylabel;
  return c;
}

void say(const ExperimentOptions& o, const std::string& line) {
  if (o.log) o.log(line);
}

}  // namespace rectifier::exp
