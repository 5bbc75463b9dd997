// Row 3: ReLU gives sparse representations with true zeros (Glorot, Bordes, Bengio 2011).
#include "common.h"

namespace rectifier::exp {

Experiment sparsity() {
  return {"sparsity", "How many hidden outputs of a ReLU MLP are exactly zero, at init and after training with L1?",
          [](const ExperimentOptions& o) {
            ExperimentResult r;
            const size_t ntrain = o.quick ? 3000 : 0, ntest = o.quick ? 1000 : 10000;
            DataSplit d = fashion(ntrain, ntest);
            const std::string arch = hidden(3, 512, "relu") + "dense(10)";
            const int seeds = o.seeds ? o.seeds : (o.quick ? 1 : 3);
            std::vector<double> at_init;
            for (int s = 0; s < seeds; ++s) {
              Model<float> m = net(arch, d.train.shape, InitSpec{}, uint64_t(s));
              at_init.push_back(zero_fraction(m, d.test, ntest));
            }
            double init_mean = 0;
            for (double v : at_init) init_mean += v / double(at_init.size());
            say(o, "sparsity at init: " + fmt(100 * init_mean, "%.2f") + "% exact zeros");
            std::vector<double> l1s = {0, 1e-4, 1e-3}, after;
            Series bars;
            bars.label = "after training";
            for (double l1 : l1s) {
              Model<float> m = net(arch, d.train.shape, InitSpec{}, 0);
              TrainConfig c = train_config();
              c.epochs = o.quick ? 1 : 3;
              c.l1_activation = l1;
              c.diagnostics = false;
              train(m, d, c);
              after.push_back(zero_fraction(m, d.test, ntest));
              say(o, "L1 " + fmt(l1) + ": " + fmt(100 * after.back(), "%.1f") + "% zeros, test accuracy " +
                         fmt(evaluate(m, d.test, LossKind::cross_entropy).accuracy, "%.4f"));
            }
            Chart ch = chart("Exact zeros in the hidden outputs (3x512 ReLU MLP, Fashion-MNIST test set)", "L1 penalty on activations (0, 1e-4, 1e-3 as 0, 1, 2)", "fraction of outputs exactly 0");
            Series init{"at init", {0, 1, 2}, {init_mean, init_mean, init_mean}, true};
            Series tr{"after training", {0, 1, 2}, after};
            ch.series = {init, tr};
            ch.y_min = 0.0;
            ch.y_max = 1.0;
            r.charts["sparsity.svg"] = render_svg(ch);
            r.data = {{"zero_fraction_at_init", at_init}, {"l1", l1s}, {"zero_fraction_after", after}};
            const bool near_half = std::abs(init_mean - 0.5) <= 0.03;
            r.claims.push_back(claim("~50% exact zeros at init (zero bias, symmetric init)", "Glorot, Bordes, Bengio 2011",
                                     "~50%", fmt(100 * init_mean, "%.2f") + "%", near_half, true,
                                     near_half ? "within 50% +- 3%" : "outside 50% +- 3%", "sparsity.svg"));
            const bool rises = after[0] > init_mean && after[1] >= after[0] && after[2] > after[1];
            r.claims.push_back(claim("sparsity rises with training and with L1", "Glorot, Bordes, Bengio 2011",
                                     "83.4% zeros with L1 1e-3 on MNIST (unverified)",
                                     fmt(100 * after[0], "%.1f") + "% / " + fmt(100 * after[1], "%.1f") + "% / " +
                                         fmt(100 * after[2], "%.1f") + "% (L1 0 / 1e-4 / 1e-3)",
                                     rises, !o.quick, rises ? "monotone in training and L1" : "not monotone", "sparsity.svg"));
            return r;
          }};
}

}  // namespace rectifier::exp
