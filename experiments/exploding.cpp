// Row 7: exploding signals and gradients, and gradient-norm clipping (Pascanu, Mikolov, Bengio 2013).
#include "common.h"

namespace rectifier::exp {

Experiment exploding() {
  return {"exploding", "Does an init gain above sqrt(2) make ReLU signals grow as (g^2/2)^L, and does clipping tame training?",
          [](const ExperimentOptions& o) {
            ExperimentResult r;
            DataSplit d = fashion(o.quick ? 3000 : 20000, 1000);
            const int L = 20;
            const std::string arch = hidden(L, 256, "relu") + "dense(10)";
            Chart ch = chart("Variance of each layer's output at init, 20x256 ReLU MLP, std = g / sqrt(n)", "layer", "variance");
            ch.log_y = true;
            bool within = true;
            std::string measured;
            nlohmann::json gains = nlohmann::json::array();
            for (double g : {1.0, std::sqrt(2.0), 2.0}) {
              InitSpec init;
              init.scheme = InitScheme::lecun_normal;
              init.gain = g;
              Model<float> m = net(arch, d.train.shape, init, 3);
              const auto v = activation_variances(m, d.test, 1000);
              const double predicted = std::pow(g * g / 2, L - 1), got = v.back() / v.front();
              within &= got / predicted <= 2 && predicted / got <= 2;
              Series s{"g = " + fmt(g, "%.3g"), {}, {}}, p{"(g^2/2)^L, g = " + fmt(g, "%.3g"), {}, {}, true};
              for (size_t l = 0; l < v.size(); ++l) {
                s.x.push_back(double(l + 1)); s.y.push_back(v[l]);
                p.x.push_back(double(l + 1)); p.y.push_back(v.front() * std::pow(g * g / 2, double(l)));
              }
              ch.series.push_back(s);
              ch.series.push_back(p);
              measured += std::string(measured.empty() ? "" : "; ") + "g " + fmt(g, "%.3g") + ": " + fmt(got) + " (predicted " + fmt(predicted) + ")";
              gains.push_back({{"gain", g}, {"variance", v}, {"growth", got}, {"predicted", predicted}});
            }
            r.charts["variance.svg"] = render_svg(ch);
            r.claims.push_back(claim("variance grows as (g^2/2)^L from layer 1 to layer 20", "Pascanu, Mikolov, Bengio 2013; He et al. 2015",
                                     "(g^2/2)^L", measured, within, true, within ? "within 2x of the formula for every gain" : "off by more than 2x", "variance.svg"));
            // Training with g = 2: without and with clipping.
            auto run = [&](double clip, const std::string& label, bool& finite) {
              InitSpec init;
              init.scheme = InitScheme::lecun_normal;
              init.gain = 2.0;
              Model<float> m = net(hidden(8, 256, "relu") + "dense(10)", d.train.shape, init, 4);
              TrainConfig c = train_config();
              c.epochs = 1;
              c.optimizer.lr = 0.01;
              c.clip_norm = clip;
              c.diagnostics = false;
              c.stop_on_nonfinite = false;
              c.schedule.kind = ScheduleKind::constant;
              Series s;
              s.label = label;
              finite = true;
              double worst = 0;
              train(m, d, c, {}, nullptr, [&](long step, int, double loss) {
                finite &= std::isfinite(loss);
                s.x.push_back(double(step));
                s.y.push_back(std::isfinite(loss) ? loss : NAN);
                if (std::isfinite(loss)) worst = std::max(worst, loss);
              });
              return std::make_pair(s, worst);
            };
            bool f0 = true, f1 = true;
            auto [s0, w0] = run(0, "no clipping", f0);
            auto [s1, w1] = run(1.0, "clip norm 1", f1);
            Chart lc = chart("Training loss, 8x256 ReLU MLP with g = 2 (variance x2 per layer)", "step", "loss");
            lc.log_y = true;
            lc.series = {s0, s1};
            r.charts["clipping.svg"] = render_svg(lc);
            const bool tamed = f1 && (!f0 || w0 > 3 * w1);
            r.claims.push_back(claim("gradient-norm clipping removes loss spikes and NaN", "Pascanu, Mikolov, Bengio 2013",
                                     "clipping proposed for exploding gradients",
                                     std::string("without: ") + (f0 ? "finite, worst loss " + fmt(w0) : "NaN/Inf") +
                                         "; with clip 1: " + (f1 ? "finite, worst loss " + fmt(w1) : "NaN/Inf"),
                                     tamed, !o.quick || !f0, tamed ? "clipped run finite with far smaller spikes" : "no clear difference", "clipping.svg"));
            r.data = {{"gains", gains}, {"worst_loss_no_clip", f0 ? w0 : -1}, {"worst_loss_clip", f1 ? w1 : -1}};
            return r;
          }};
}

}  // namespace rectifier::exp
