// Row 4: the value of ReLU'(0) changes gradients in float32, never in float64 (Bertoin et al., NeurIPS 2021).
#include <cstring>
#include "common.h"

namespace rectifier::exp {

namespace {
template <class T>
Model<T> build(int depth, bool prime1, const Shape& in) {
  ArchContext ctx;
  ctx.input = in;
  return Model<T>(parse_arch(hidden(depth, 256, prime1 ? "relu(prime0=1)" : "relu") + "dense(10)", ctx), in);
}

// Trains `batches` minibatches of SGD with ReLU'(0) = 0 and, at every step, computes the gradient again with
// ReLU'(0) = 1 from the same weights. Returns how many steps had differing gradients.
template <class T>
int differing_steps(int depth, uint64_t seed, const Dataset& d, int batches, int B) {
  Model<T> m0 = build<T>(depth, false, d.shape), m1 = build<T>(depth, true, d.shape);
  InitSpec init;
  init.scheme = InitScheme::torch_default;  // as the paper: PyTorch's default init
  Model<double> ref = build<double>(depth, false, d.shape);
  ref.init(init, seed);  // the same draw for float and double: initialise in double, round once
  for (size_t i = 0; i < m0.num_params(); ++i) m0.params()[i] = T(ref.params()[i]);
  const size_t K = 10;
  Buffer<T> x(size_t(B) * numel(d.shape)), dout(size_t(B) * K);
  Optimizer<T> opt(OptimizerConfig{OptKind::sgd, 0.01, 0.0}, m0.num_params());
  int differ = 0;
  for (int b = 0; b < batches; ++b) {
    const size_t first = (size_t(b) * B) % (d.size() - size_t(B));
    d.gather_range(first, B, x.data());
    const int32_t* y = d.labels.data() + first;
    auto grad = [&](Model<T>& m) {
      const T* out = m.forward(x.data(), B, true);
      loss_forward_backward<T>(LossKind::cross_entropy, out, y, B, int(K), dout.data());
      m.zero_grad();
      m.backward(dout.data(), B);
    };
    std::memcpy(m1.params(), m0.params(), sizeof(T) * m0.num_params());
    grad(m0);
    grad(m1);
    differ += std::memcmp(m0.grads(), m1.grads(), sizeof(T) * m0.num_params()) != 0;
    opt.step(m0.params(), m0.grads(), 0.01);
  }
  return differ;
}
}  // namespace

Experiment relu_prime() {
  return {"relu-prime", "Does the choice ReLU'(0) = 0 or 1 change gradients in float32, and in float64?",
          [](const ExperimentOptions& o) {
            ExperimentResult r;
            DataSplit d = fashion(o.quick ? 3000 : 20000, 100);
            const std::vector<int> depths = o.quick ? std::vector<int>{1, 3} : std::vector<int>{1, 2, 3, 6};
            const int inits = o.seeds ? o.seeds : (o.quick ? 4 : 30), batches = o.quick ? 4 : 60, B = 256;
            Chart ch = chart("Inits with at least one minibatch whose gradient depends on ReLU'(0)", "hidden layers",
                             "inits (of " + std::to_string(inits) + ")");
            Series f32{"float32", {}, {}}, f64{"float64", {}, {}};
            nlohmann::json rows = nlohmann::json::array();
            bool none64 = true, some32_deep = true;
            std::string measured;
            for (int depth : depths) {
              int c32 = 0, c64 = 0;
              for (int s = 0; s < inits; ++s) {
                c32 += differing_steps<float>(depth, uint64_t(s), d.train, batches, B) > 0;
                c64 += differing_steps<double>(depth, uint64_t(s), d.train, batches, B) > 0;
              }
              f32.x.push_back(depth); f32.y.push_back(c32);
              f64.x.push_back(depth); f64.y.push_back(c64);
              none64 &= c64 == 0;
              if (depth >= 3) some32_deep &= c32 > 0;
              measured += std::string(measured.empty() ? "" : "; ") + std::to_string(depth) + " layers: " +
                          std::to_string(c32) + " (f32) / " + std::to_string(c64) + " (f64)";
              rows.push_back({{"hidden_layers", depth}, {"inits", inits}, {"batches", batches}, {"float32", c32}, {"float64", c64}});
              say(o, std::to_string(depth) + " hidden layers: float32 " + std::to_string(c32) + ", float64 " + std::to_string(c64) +
                         " of " + std::to_string(inits) + " inits");
            }
            ch.series = {f32, f64};
            r.charts["relu_prime.svg"] = render_svg(ch);
            r.claims.push_back(claim("float64: ReLU'(0) never changes a gradient", "Bertoin et al. 2021", "none of 1000 inits",
                                     measured, none64, true, none64 ? "no differing gradient in float64" : "float64 gradients differed", "relu_prime.svg"));
            r.claims.push_back(claim("float32: some gradients differ, more with depth", "Bertoin et al. 2021",
                                     "54 / 258 / 463 / 647 / 697 of 1000 for 1 / 2 / 3 / 5 / 6 layers (MNIST, 1 epoch)",
                                     measured + " (" + std::to_string(batches) + " minibatches per init)", some32_deep, !o.quick,
                                     some32_deep ? "float32 differs for nets of 3 or more hidden layers" : "no float32 difference at depth >= 3",
                                     "relu_prime.svg"));
            r.data = {{"rows", rows}};
            return r;
          }};
}

}  // namespace rectifier::exp
