// Row 2: vanishing gradients with sigmoid (Glorot & Bengio 2010).
#include "common.h"

namespace rectifier::exp {

Experiment vanishing() {
  return {"vanishing", "Do gradients shrink toward the input layers with sigmoid and not with ReLU + He?",
          [](const ExperimentOptions& o) {
            ExperimentResult r;
            DataSplit d = fashion(o.quick ? 3000 : 20000, 1000);
            struct Cell { std::string act; InitScheme init; std::string init_name; };
            std::vector<Cell> cells;
            for (std::string act : {"sigmoid", "tanh", "relu"})
              for (auto [s, n] : {std::pair{InitScheme::torch_default, "standard"}, {InitScheme::xavier_normal, "xavier"},
                                  {InitScheme::he_normal, "he"}})
                cells.push_back({act, s, n});
            Chart ch = chart("Weight-gradient norm per layer after training (5x256 MLP)", "layer", "L2 norm of the weight gradient");
            ch.log_y = true;
            nlohmann::json table = nlohmann::json::array();
            double sig_ratio = 0, relu_spread = 0;
            for (const auto& c : cells) {
              InitSpec init;
              init.scheme = c.init;
              Model<float> m = net(hidden(5, 256, c.act) + "dense(10)", d.train.shape, init, 5);
              TrainConfig t = train_config();
              t.epochs = 1;
              t.optimizer.lr = 0.01;
              t.diagnostics = false;
              train(m, d, t);
              auto norms = weight_grad_norms(m, d.test, 1000);
              norms.pop_back();  // the output layer; compare the five hidden layers
              const double ratio = norms.front() / norms.back();
              const double spread = *std::max_element(norms.begin(), norms.end()) / *std::min_element(norms.begin(), norms.end());
              if (c.act == "sigmoid" && c.init_name == "standard") sig_ratio = ratio;
              if (c.act == "relu" && c.init_name == "he") relu_spread = spread;
              table.push_back({{"activation", c.act}, {"init", c.init_name}, {"grad_norms", norms}, {"layer1_over_layer5", ratio}});
              say(o, c.act + " + " + c.init_name + ": layer-1 / layer-5 gradient norm " + fmt(ratio));
              if (c.init_name == "standard" || (c.act == "relu" && c.init_name == "he")) {
                Series s{c.act + " + " + c.init_name, {}, {}};
                for (size_t l = 0; l < norms.size(); ++l) { s.x.push_back(double(l + 1)); s.y.push_back(norms[l]); }
                ch.series.push_back(s);
              }
            }
            r.charts["grad_norms.svg"] = render_svg(ch);
            r.claims.push_back(claim("with sigmoid, back-propagated gradients shrink toward the input layers",
                                     "Glorot & Bengio 2010", "layer-1 gradients << layer-5 (Figs. 6, 7)",
                                     "layer-1 / layer-5 weight-gradient norm: " + fmt(sig_ratio), sig_ratio < 0.1, true,
                                     sig_ratio < 0.1 ? "more than 10x smaller at layer 1" : "not 10x smaller", "grad_norms.svg"));
            r.claims.push_back(claim("with ReLU + He init, per-layer gradient norms stay within ~2x", "He et al. 2015",
                                     "norms within ~2x (setup of EXPERIMENTS.md)", "max / min over layers: " + fmt(relu_spread),
                                     relu_spread <= 2.5, true, relu_spread <= 2.5 ? "within 2.5x" : "spread beyond 2.5x", "grad_norms.svg"));
            r.data = {{"cells", table}};
            return r;
          }};
}

}  // namespace rectifier::exp
