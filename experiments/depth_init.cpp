// Row 5: a 30-layer ReLU net needs He init (He, Zhang, Ren, Sun 2015): with std sqrt(1/n) the signal's variance
// halves at every layer; with sqrt(2/n) it is kept.
#include <algorithm>
#include "common.h"

namespace rectifier::exp {

Experiment depth_init() {
  return {"depth-init", "Does a 30-layer ReLU MLP train with He init and stall with Xavier-style init?",
          [](const ExperimentOptions& o) {
            ExperimentResult r;
            DataSplit d = fashion(o.quick ? 1500 : 20000, o.quick ? 500 : 1000);
            const std::string arch = hidden(30, 128, "relu") + "dense(10)";
            InitSpec he, xavier;
            he.scheme = InitScheme::he_normal;        // N(0, 2/n)
            xavier.scheme = InitScheme::lecun_normal; // N(0, 1/n): "Xavier-style" for equal fan-in and fan-out
            Model<float> mh = net(arch, d.train.shape, he, 1), mx = net(arch, d.train.shape, xavier, 1);
            const auto vh = activation_variances(mh, d.test, 1000), vx = activation_variances(mx, d.test, 1000);
            const double ratio = vh.back() / std::max(vx.back(), 1e-300);
            Chart ch = chart("Variance of each layer's output at init (30x128 ReLU MLP)", "layer", "variance");
            ch.log_y = true;
            Series sh{"He: std sqrt(2/n)", {}, {}}, sx{"Xavier-style: std sqrt(1/n)", {}, {}}, pred{"sqrt(1/n) predicted: halves per layer", {}, {}, true};
            for (size_t l = 0; l < vh.size(); ++l) {
              sh.x.push_back(double(l + 1)); sh.y.push_back(vh[l]);
              sx.x.push_back(double(l + 1)); sx.y.push_back(vx[l]);
              pred.x.push_back(double(l + 1)); pred.y.push_back(vx[0] * std::pow(0.5, double(l)));
            }
            ch.series = {sh, sx, pred};
            r.charts["variance.svg"] = render_svg(ch);
            say(o, "layer-30 variance: He " + fmt(vh.back()) + ", Xavier-style " + fmt(vx.back()) + ", ratio " + fmt(ratio));
            r.claims.push_back(claim("over L layers Xavier's signal variance shrinks by 2^-L relative to He's",
                                     "He, Zhang, Ren, Sun 2015", "ratio ~2^29 = 5.4e8 at layer 30", "ratio " + fmt(ratio),
                                     ratio >= 1e6, true, ratio >= 1e6 ? "at least 1e6" : "below 1e6", "variance.svg"));
            // Training: loss curves over the first epoch, from several inits. One epoch of a 30-layer net is a
            // fragile window: at some seeds He is still near ln 10 when it ends (it converges in the second), so
            // the claim is decided on the median over seeds, and the table says how many seeds fell below 1.5.
            const int seeds = o.seeds ? o.seeds : (o.quick ? 1 : 5);
            auto curve = [&](InitSpec init, uint64_t seed, const std::string& label) {
              Model<float> m = net(arch, d.train.shape, init, seed);
              TrainConfig c = train_config();
              c.epochs = 1;
              c.batch = 128;
              c.optimizer.lr = 0.01;
              c.schedule.kind = ScheduleKind::constant;
              c.diagnostics = false;
              c.stop_on_nonfinite = false;
              Series s;
              s.label = label;
              double acc = 0;
              long n = 0;
              train(m, d, c, {}, nullptr, [&](long step, int, double loss) {
                acc += loss;
                if (++n == 10) { s.x.push_back(double(step)); s.y.push_back(acc / 10); acc = 0; n = 0; }
              });
              return s;
            };
            auto median = [](std::vector<double> v) {
              std::sort(v.begin(), v.end());
              return v.empty() ? NAN : v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
            };
            Chart lc = chart("Training loss, first epoch (SGD lr 0.01, momentum 0.9)", "step", "loss (mean of 10 steps)");
            std::vector<double> ends_he, ends_x;
            int he_below = 0;
            for (int k = 0; k < seeds; ++k) {
              const uint64_t seed = uint64_t(k + 1);
              // one colour per init, one legend entry each (on the first seed's curve)
              const std::string tag = seeds > 1 ? " (" + std::to_string(seeds) + " init seeds)" : "";
              Series lh = curve(he, seed, k ? "" : "He" + tag), lx = curve(xavier, seed, k ? "" : "Xavier-style" + tag);
              lh.color = "#1f77b4";
              lx.color = "#d62728";
              lx.dashed = true;
              ends_he.push_back(lh.y.empty() ? NAN : lh.y.back());
              ends_x.push_back(lx.y.empty() ? NAN : lx.y.back());
              he_below += ends_he.back() < 1.5;
              say(o, "init seed " + std::to_string(seed) + ": loss after 1 epoch He " + fmt(ends_he.back()) + ", Xavier-style " +
                         fmt(ends_x.back()));
              lc.series.push_back(lh);
              lc.series.push_back(lx);
            }
            r.charts["loss.svg"] = render_svg(lc);
            const double he_end = median(ends_he), x_end = median(ends_x);
            const bool trains = he_end < 1.5 && x_end > 2.2;
            const std::string over = seeds > 1 ? " (median of " + std::to_string(seeds) + " inits; He below 1.5 in " +
                                                     std::to_string(he_below) + ")" : "";
            r.claims.push_back(claim("He init converges, Xavier-style stalls near ln 10 = 2.30", "He, Zhang, Ren, Sun 2015",
                                     "He converges, Xavier stalls (Fig. 3)", "loss after 1 epoch: He " + fmt(he_end) +
                                     ", Xavier-style " + fmt(x_end) + over, trains, !o.quick,
                                     trains ? "He falls below 1.5 while Xavier-style stays above 2.2" : "the curves do not separate so",
                                     "loss.svg"));
            r.data = {{"variance_he", vh}, {"variance_xavier", vx}, {"ratio_layer30", ratio}, {"loss_he_end", ends_he}, {"loss_xavier_end", ends_x}};
            return r;
          }};
}

}  // namespace rectifier::exp
