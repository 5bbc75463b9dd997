// Row 6c: units die in training with a high learning rate or a negative bias (Douglas & Yu 2018; CS231n).
#include "common.h"

namespace rectifier::exp {

namespace {
// Fraction of hidden units (activation layers) whose output is zero on every example of d (first n).
double dead_fraction(Model<float>& m, const Dataset& d, size_t n, bool negative_only) {
  std::vector<std::vector<uint8_t>> alive;
  const int B = 500;
  Buffer<float> x(size_t(B) * numel(d.shape));
  n = std::min(n, d.size());
  for (size_t i = 0; i < n; i += B) {
    const int b = int(std::min<size_t>(B, n - i));
    d.gather_range(i, b, x.data());
    m.forward(x.data(), b, false);
    size_t a = 0;
    for (size_t l = 0; l < m.num_layers(); ++l) {
      if (!m.layer(l).activation()) continue;
      const size_t U = numel(m.layer(l).out_shape());
      if (alive.size() <= a) alive.emplace_back(U, 0);
      // ReLU: dead = output 0 everywhere. Leaky ReLU never outputs 0: "would be dead" = input <= 0 everywhere.
      const float* v = negative_only ? m.layer_input(l) : m.layer_output(l);
      for (int k = 0; k < b; ++k)
        for (size_t u = 0; u < U; ++u) alive[a][u] |= negative_only ? v[size_t(k) * U + u] > 0 : v[size_t(k) * U + u] != 0;
      ++a;
    }
  }
  double dead = 0, total = 0;
  for (const auto& v : alive) for (uint8_t f : v) { dead += !f; total += 1; }
  return total ? dead / total : 0;
}
}  // namespace

Experiment dying() {
  return {"dying", "Do ReLU units die with a high learning rate or a negative bias, and does leaky ReLU keep them alive?",
          [](const ExperimentOptions& o) {
            ExperimentResult r;
            DataSplit d = fashion(o.quick ? 3000 : 20000, 1000);
            const size_t nd = o.quick ? 3000 : 20000;
            const std::vector<double> lrs = o.quick ? std::vector<double>{0.01, 1.0} : std::vector<double>{0.01, 0.1, 0.5, 1.0};
            const std::vector<double> biases = o.quick ? std::vector<double>{0, -1} : std::vector<double>{0, -0.5, -1, -2};
            nlohmann::json grid = nlohmann::json::array();
            Chart ch = chart("Dead units after 1 epoch (3x256 MLP, He init), ReLU", "learning rate (log10)", "dead fraction");
            std::map<std::pair<double, double>, double> dead;
            auto one_epoch = [](double lr) {  // plain SGD at a constant rate: what makes units die is the rate itself
              TrainConfig c = train_config();
              c.epochs = 1;
              c.optimizer.lr = lr;
              c.optimizer.momentum = 0;
              c.diagnostics = false;
              c.stop_on_nonfinite = false;
              c.schedule.kind = ScheduleKind::constant;
              return c;
            };
            for (double bias : biases) {
              Series s{"bias init " + fmt(bias), {}, {}};
              for (double lr : lrs) {
                InitSpec init;
                init.bias = bias;
                Model<float> m = net(hidden(3, 256, "relu") + "dense(10)", d.train.shape, init, 6);
                train(m, d, one_epoch(lr));
                const double f = dead_fraction(m, d.train, nd, false);
                dead[{lr, bias}] = f;
                s.x.push_back(std::log10(lr));
                s.y.push_back(f);
                grid.push_back({{"lr", lr}, {"bias_init", bias}, {"dead_fraction", f}, {"activation", "relu"}});
                say(o, "lr " + fmt(lr) + " bias " + fmt(bias) + ": " + fmt(100 * f, "%.1f") + "% dead");
              }
              ch.series.push_back(s);
            }
            // Leaky ReLU beside the worst ReLU cell: same lr and bias.
            const double lr_hi = lrs.back(), b_lo = biases.back();
            InitSpec init;
            init.bias = b_lo;
            Model<float> leaky = net(hidden(3, 256, "leaky_relu(0.01)") + "dense(10)", d.train.shape, init, 6);
            const TrainConfig c = one_epoch(lr_hi);
            train(leaky, d, c);
            const double leaky_neg = dead_fraction(leaky, d.train, nd, true);
            // Gradient flow at the worst cell: the first layer's weight-gradient norm after training, ReLU vs leaky.
            InitSpec worst;
            worst.bias = b_lo;
            Model<float> relu_net = net(hidden(3, 256, "relu") + "dense(10)", d.train.shape, worst, 6);
            train(relu_net, d, c);
            const double g_relu = weight_grad_norms(relu_net, d.test, 1000).front();
            const double g_leaky = weight_grad_norms(leaky, d.test, 1000).front();
            const double acc_relu = evaluate(relu_net, d.test, LossKind::cross_entropy).accuracy;
            const double acc_leaky = evaluate(leaky, d.test, LossKind::cross_entropy).accuracy;
            say(o, "lr " + fmt(lr_hi) + " bias " + fmt(b_lo) + ": first-layer gradient norm ReLU " + fmt(g_relu) + ", leaky " + fmt(g_leaky));
            ch.y_min = 0.0;
            ch.y_max = 1.0;
            r.charts["dead.svg"] = render_svg(ch);
            const double base = dead[{lrs.front(), 0.0}], hi_lr = dead[{lrs.back(), 0.0}], neg = dead[{lrs.front(), b_lo}];
            const bool lr_rises = hi_lr > base, bias_rises = neg > base;
            r.claims.push_back(claim("dead fraction rises with the learning rate", "CS231n notes; Douglas & Yu 2018",
                                     "\"as much as 40%\" dead with too high a rate (no experiment)",
                                     fmt(100 * base, "%.1f") + "% at lr " + fmt(lrs.front()) + " -> " + fmt(100 * hi_lr, "%.1f") +
                                         "% at lr " + fmt(lrs.back()) + " (bias 0)",
                                     lr_rises, hi_lr - base > 0.02 || hi_lr <= base, lr_rises ? "rises" : "does not rise", "dead.svg"));
            r.claims.push_back(claim("dead fraction rises with a negative bias init", "CS231n notes", "large negative bias kills units",
                                     fmt(100 * base, "%.1f") + "% at bias 0 -> " + fmt(100 * neg, "%.1f") + "% at bias " + fmt(b_lo) +
                                         " (lr " + fmt(lrs.front()) + ")",
                                     bias_rises, true, bias_rises ? "rises" : "does not rise", "dead.svg"));
            const double relu_worst = dead[{lr_hi, b_lo}];
            const bool flows = g_leaky > 10 * g_relu;
            r.claims.push_back(claim("leaky ReLU keeps gradients flowing where ReLU units died", "Maas, Hannun, Ng 2013",
                                     "leaky units keep a gradient; rectifier nets ~ leaky nets in accuracy",
                                     "lr " + fmt(lr_hi) + ", bias " + fmt(b_lo) + ": first-layer weight-gradient norm ReLU " +
                                         fmt(g_relu) + " (" + fmt(100 * relu_worst, "%.1f") + "% dead), leaky " + fmt(g_leaky) +
                                         "; test accuracy ReLU " + fmt(acc_relu, "%.3f") + ", leaky " + fmt(acc_leaky, "%.3f"),
                                     flows, true, flows ? "leaky's gradient is more than 10x ReLU's" : "no 10x difference in gradient flow",
                                     "dead.svg"));
            r.data = {{"grid", grid}, {"leaky_negative_everywhere", leaky_neg}, {"first_layer_grad_relu", g_relu},
                      {"first_layer_grad_leaky", g_leaky}, {"test_accuracy_relu", acc_relu}, {"test_accuracy_leaky", acc_leaky}};
            return r;
          }};
}

}  // namespace rectifier::exp
