// Every layer, activation and loss, gradient-checked in double precision against central differences.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "rectifier/activation.h"
#include "rectifier/loss.h"
#include "test_util.h"

namespace rectifier {
using test::gradcheck_layer;
using test::LayerRig;
using test::random_vec;

// Keeps every value at least `margin` away from the kinks at 0 and 6 so differences do not straddle them.
static std::vector<double> away_from_kinks(std::vector<double> v, double margin = 0.01) {
  for (auto& x : v) {
    for (double k : {0.0, 6.0})
      if (std::abs(x - k) < margin) x = k + (x < k ? -margin : margin);
  }
  return v;
}

class ActivationGrad : public ::testing::TestWithParam<std::string> {};

TEST_P(ActivationGrad, LayerMatchesFiniteDifferences) {
  LayerRig rig(GetParam(), {10}, 4);
  gradcheck_layer(rig, away_from_kinks(random_vec(rig.in_size(), 3, 2.0)));
}

TEST_P(ActivationGrad, DerivativeMatchesFiniteDifferencesOnAGrid) {
  auto a = *parse_activation(GetParam());
  for (double x = -8.013; x < 8.5; x += 0.25) {
    if (std::abs(x) < 1e-3 || std::abs(x - 6) < 1e-3) continue;
    const double h = 1e-6, fd = (act_value(a, x + h) - act_value(a, x - h)) / (2 * h);
    EXPECT_NEAR(act_derivative(a, x), fd, 1e-6 * std::max(1.0, std::abs(fd))) << GetParam() << " at " << x;
  }
}

INSTANTIATE_TEST_SUITE_P(All, ActivationGrad,
                         ::testing::Values("relu", "leaky_relu", "leaky_relu(0.2)", "elu", "elu(0.5)", "selu", "gelu",
                                           "silu", "relu6", "softplus", "softplus(2)", "mish", "sigmoid", "tanh",
                                           "identity", "prelu"));

TEST(ReluDerivative, AtExactlyZeroIsZeroByDefault) {
  Activation relu = *parse_activation("relu");
  EXPECT_EQ(act_derivative(relu, 0.0), 0.0);
  EXPECT_EQ(act_derivative(relu, -0.0), 0.0);
  EXPECT_EQ(act_derivative(relu, 1e-300), 1.0);
  EXPECT_EQ(act_derivative(relu, -1e-300), 0.0);
  EXPECT_EQ(act_value(relu, 0.0), 0.0);
  // The fast float kernel agrees at 0.
  float x[3] = {0.0f, -0.0f, 1.0f}, dy[3] = {5, 5, 5}, dx[3];
  act_backward(relu, x, dy, dx, 3);
  EXPECT_EQ(dx[0], 0.0f);
  EXPECT_EQ(dx[1], 0.0f);
  EXPECT_EQ(dx[2], 5.0f);
}

TEST(ReluDerivative, AtZeroIsConfigurable) {
  Activation relu1 = *parse_activation("relu(prime0=1)");
  EXPECT_EQ(act_derivative(relu1, 0.0), 1.0);
  EXPECT_EQ(act_derivative(relu1, -0.5), 0.0);
  float x[2] = {0.0f, -1.0f}, dy[2] = {3, 3}, dx[2];
  act_backward(relu1, x, dy, dx, 2);
  EXPECT_EQ(dx[0], 3.0f);
  EXPECT_EQ(dx[1], 0.0f);
  EXPECT_EQ(activation_spec(relu1), "relu(prime0=1)");
}

TEST(LayerGrad, Dense) {
  LayerRig rig("dense(5)", {7}, 3);
  gradcheck_layer(rig, random_vec(rig.in_size(), 1));
}

TEST(LayerGrad, DenseOnImageInputFlattens) {
  LayerRig rig("dense(4)", {2, 3, 3}, 2);
  gradcheck_layer(rig, random_vec(rig.in_size(), 2));
}

struct ConvCase { const char* text; Shape in; };
class ConvGrad : public ::testing::TestWithParam<ConvCase> {};
TEST_P(ConvGrad, MatchesFiniteDifferences) {
  LayerRig rig(GetParam().text, GetParam().in, 2);
  gradcheck_layer(rig, random_vec(rig.in_size(), 4));
}
INSTANTIATE_TEST_SUITE_P(Cases, ConvGrad,
                         ::testing::Values(ConvCase{"conv(3,3)", {2, 6, 6}}, ConvCase{"conv(2,3,pad=1)", {3, 5, 5}},
                                           ConvCase{"conv(4,3,stride=2)", {2, 7, 7}},
                                           ConvCase{"conv(2,3,stride=2,pad=1)", {2, 6, 5}},
                                           ConvCase{"conv(3,1)", {2, 4, 4}}, ConvCase{"conv(2,5,pad=2)", {1, 6, 6}}));

// Max pooling: distinct values spaced well apart so no window has a tie and the differences pick no other max.
TEST(LayerGrad, MaxPoolAwayFromTies) {
  for (const char* text : {"maxpool(2)", "maxpool(3,stride=2)", "maxpool(2,stride=1)"}) {
    LayerRig rig(text, {2, 7, 6}, 2);
    std::vector<double> x(rig.in_size());
    Rng rng(9);
    for (size_t i = 0; i < x.size(); ++i) x[i] = double(i) * 0.1;
    for (size_t i = x.size() - 1; i > 0; --i) std::swap(x[i], x[rng.below(i + 1)]);
    gradcheck_layer(rig, x);
  }
}

TEST(LayerGrad, AvgPool) {
  LayerRig rig("avgpool(2)", {2, 6, 6}, 2);
  gradcheck_layer(rig, random_vec(rig.in_size(), 5));
  LayerRig rig2("avgpool(3,stride=2)", {1, 7, 7}, 2);
  gradcheck_layer(rig2, random_vec(rig2.in_size(), 6));
}

TEST(LayerGrad, GlobalAvgPoolAndFlatten) {
  LayerRig gap("gap", {3, 4, 5}, 2);
  gradcheck_layer(gap, random_vec(gap.in_size(), 7));
  LayerRig flat("flatten", {3, 4, 5}, 2);
  gradcheck_layer(flat, random_vec(flat.in_size(), 8));
}

TEST(LayerGrad, BatchNormTrainingAndEval) {
  LayerRig dense("batchnorm", {6}, 5);
  gradcheck_layer(dense, random_vec(dense.in_size(), 10), true);
  LayerRig image("batchnorm", {3, 4, 4}, 3);
  gradcheck_layer(image, random_vec(image.in_size(), 11), true);
  LayerRig eval("batchnorm", {3, 4, 4}, 3);
  gradcheck_layer(eval, random_vec(eval.in_size(), 12), false);
}

TEST(LayerGrad, DropoutWithAFixedMask) {
  // The mask is redrawn on every forward; reseeding before each makes it the same draw, so the layer is a fixed
  // linear map that finite differences can check.
  LayerRig rig("dropout(0.3)", {20}, 3);
  auto x = random_vec(rig.in_size(), 13);
  std::vector<double> w = random_vec(rig.out_size(), 14), y(rig.out_size()), dx(rig.in_size());
  rig.layer->seed(5);
  rig.layer->forward(x.data(), y.data(), rig.n, true);
  rig.layer->backward(x.data(), y.data(), w.data(), dx.data(), rig.n);
  int zeros = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double scale = y[i] / x[i];
    EXPECT_TRUE(std::abs(scale) < 1e-12 || std::abs(scale - 1 / 0.7) < 1e-9);
    EXPECT_NEAR(dx[i], w[i] * scale, 1e-12);
    zeros += y[i] == 0;
  }
  EXPECT_GT(zeros, 5);
  EXPECT_LT(zeros, 35);
  rig.layer->forward(x.data(), y.data(), rig.n, false);  // eval: identity
  for (size_t i = 0; i < y.size(); ++i) EXPECT_EQ(y[i], x[i]);
}

class LossGrad : public ::testing::TestWithParam<LossKind> {};
TEST_P(LossGrad, MatchesFiniteDifferences) {
  const LossKind kind = GetParam();
  const int n = 4, k = kind == LossKind::bce ? 1 : 5;
  auto z = random_vec(size_t(n * k), 21, 3.0);
  std::vector<int32_t> y = kind == LossKind::bce ? std::vector<int32_t>{0, 1, 1, 0} : std::vector<int32_t>{0, 4, 2, 2};
  std::vector<double> dz(z.size());
  loss_forward_backward<double>(kind, z.data(), y.data(), n, k, dz.data());
  for (size_t i = 0; i < z.size(); ++i) {
    const double keep = z[i], h = 1e-6;
    z[i] = keep + h; const double lp = loss_forward_backward<double>(kind, z.data(), y.data(), n, k, nullptr).loss;
    z[i] = keep - h; const double lm = loss_forward_backward<double>(kind, z.data(), y.data(), n, k, nullptr).loss;
    z[i] = keep;
    EXPECT_NEAR(dz[i], (lp - lm) / (2 * h), 1e-7);
  }
}
INSTANTIATE_TEST_SUITE_P(All, LossGrad, ::testing::Values(LossKind::cross_entropy, LossKind::mse, LossKind::bce));

TEST(Loss, CrossEntropyIsStableForHugeLogits) {
  double z[3] = {1000, 0, -1000};
  int32_t y[1] = {1};
  double dz[3];
  auto r = loss_forward_backward<double>(LossKind::cross_entropy, z, y, 1, 3, dz);
  EXPECT_NEAR(r.loss, 1000.0, 1e-9);
  EXPECT_NEAR(dz[0], 1.0, 1e-12);
  EXPECT_NEAR(dz[1], -1.0, 1e-12);
  float zf[3] = {1e30f, 0, 0};
  auto rf = loss_forward_backward<float>(LossKind::cross_entropy, zf, y, 1, 3, nullptr);
  EXPECT_TRUE(std::isfinite(rf.loss));
}

TEST(Loss, HandComputedValues) {
  double z[2] = {0.0, std::log(3.0)};  // softmax = (1/4, 3/4)
  int32_t y[1] = {0};
  EXPECT_NEAR(loss_forward_backward<double>(LossKind::cross_entropy, z, y, 1, 2, nullptr).loss, std::log(4.0), 1e-12);
  double m[2] = {0.5, 0.25};  // one-hot (1, 0): ((0.5-1)^2 + 0.25^2) / 2
  EXPECT_NEAR(loss_forward_backward<double>(LossKind::mse, m, y, 1, 2, nullptr).loss, (0.25 + 0.0625) / 2, 1e-12);
  double b[1] = {0.0};
  EXPECT_NEAR(loss_forward_backward<double>(LossKind::bce, b, y, 1, 1, nullptr).loss, std::log(2.0), 1e-12);
}

namespace {
// A double model of the given architecture, initialised with the given seed and bias.
Model<double> double_model(const char* arch, const Shape& in, uint64_t seed, double bias) {
  Model<double> m(parse_arch(arch, ArchContext{}), in);
  InitSpec init;
  init.bias = bias;
  m.init(init, seed);
  return m;
}

// The mean cross-entropy of m on (x, y) after a forward pass; fills dout with its gradient (k classes).
double model_ce(Model<double>& m, const std::vector<double>& x, const std::vector<int32_t>& y, int k,
                std::vector<double>& dout) {
  const int n = int(y.size());
  dout.resize(size_t(n) * size_t(k));
  const double* out = m.forward(x.data(), n, true);
  return loss_forward_backward<double>(LossKind::cross_entropy, out, y.data(), n, k, dout.data()).loss;
}

// Central differences of loss() with respect to v[i], every step-th i of [0, g.size()), against the gradient g.
void expect_matches_differences(const std::function<double()>& loss, double* v, const std::vector<double>& g,
                                size_t step, double tol, const char* what) {
  const double h = 1e-6;
  for (size_t i = 0; i < g.size(); i += step) {
    const double keep = v[i];
    v[i] = keep + h; const double lp = loss();
    v[i] = keep - h; const double lm = loss();
    v[i] = keep;
    EXPECT_NEAR(g[i], (lp - lm) / (2 * h), tol) << what << " " << i;
  }
}
}  // namespace

// A whole model in double: the chain through several layers agrees with finite differences too.
TEST(ModelGrad, SmallCnnEndToEnd) {
  Model<double> m = double_model("conv(3,3,pad=1) tanh avgpool(2) conv(2,3) elu flatten dense(4) softplus dense(3)",
                                  {2, 8, 8}, 3, 0.05);
  const auto x = random_vec(2 * 128, 30);
  const std::vector<int32_t> y = {0, 2};
  std::vector<double> dout;
  model_ce(m, x, y, 3, dout);
  m.zero_grad();
  m.backward(dout.data(), 2);
  const std::vector<double> g(m.grads(), m.grads() + m.num_params());
  expect_matches_differences([&] { return model_ce(m, x, y, 3, dout); }, m.params(), g, 7, 1e-7, "parameter");
}

// A ReLU before max pooling has its backward taken inside the pooling's (the model skips the ReLU's own): the
// weights' and the input's gradients still agree with finite differences, with the ReLU first and deeper in.
TEST(ModelGrad, ReluThenMaxPoolFusedBackward) {
  Model<double> m = double_model("relu maxpool(2) conv(3,3,pad=1) relu maxpool(3,stride=2) flatten dense(3)", {2, 8, 8}, 4,
                                  0.05);
  m.set_input_grad(true);
  auto x = random_vec(2 * 128, 32);
  const std::vector<int32_t> y = {2, 1};
  std::vector<double> dout;
  model_ce(m, x, y, 3, dout);
  m.zero_grad();
  m.backward(dout.data(), 2);
  EXPECT_EQ(m.layer_output_grad(0), nullptr);  // both ReLUs ran inside the pooling
  EXPECT_EQ(m.layer_output_grad(3), nullptr);
  const std::vector<double> g(m.grads(), m.grads() + m.num_params()), gx(m.input_grad(), m.input_grad() + x.size());
  auto loss = [&] { return model_ce(m, x, y, 3, dout); };
  expect_matches_differences(loss, m.params(), g, 1, 1e-7, "parameter");
  expect_matches_differences(loss, x.data(), gx, 1, 1e-7, "input");
}

// A ReLU before a dense layer has its backward taken inside the dense layer's (dx masked where the ReLU's output is
// positive), with the ReLU first and between dense layers: the gradients still agree with finite differences.
TEST(ModelGrad, ReluThenDenseFusedBackward) {
  Model<double> m = double_model("relu dense(6) relu dense(5) relu dense(3)", {7}, 8, 0.05);
  m.set_input_grad(true);
  auto x = random_vec(4 * 7, 33);
  const std::vector<int32_t> y = {2, 1, 0, 2};
  std::vector<double> dout;
  model_ce(m, x, y, 3, dout);
  m.zero_grad();
  m.backward(dout.data(), 4);
  EXPECT_EQ(m.layer_output_grad(0), nullptr);
  EXPECT_EQ(m.layer_output_grad(2), nullptr);
  EXPECT_EQ(m.layer_output_grad(4), nullptr);
  const std::vector<double> g(m.grads(), m.grads() + m.num_params()), gx(m.input_grad(), m.input_grad() + x.size());
  auto loss = [&] { return model_ce(m, x, y, 3, dout); };
  expect_matches_differences(loss, m.params(), g, 1, 1e-7, "parameter");
  expect_matches_differences(loss, x.data(), gx, 1, 1e-7, "input");
}

// Flatten is a view (no copy): its output is its input's memory, and as the first layer it still writes the input
// gradient.
TEST(ModelGrad, FlattenViewPassesValuesAndGradients) {
  Model<double> m = double_model("flatten dense(3) tanh dense(2)", {2, 2, 2}, 5, 0.0);
  m.set_input_grad(true);
  auto x = random_vec(2 * 8, 31);
  const std::vector<int32_t> y = {1, 0};
  std::vector<double> dout;
  model_ce(m, x, y, 2, dout);
  // The view's output is its input: the caller's x, or in training its 64-byte aligned copy (Model::forward)
  EXPECT_EQ(m.layer_output(0), m.layer_input(0));
  EXPECT_EQ(m.layer_input(1), m.layer_input(0));
  EXPECT_TRUE(std::equal(x.begin(), x.end(), m.layer_input(0)));
  m.zero_grad();
  m.backward(dout.data(), 2);
  const std::vector<double> gx(m.input_grad(), m.input_grad() + x.size());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(m.layer_output_grad(0)[i], gx[i]);
  expect_matches_differences([&] { return model_ce(m, x, y, 2, dout); }, x.data(), gx, 1, 1e-8, "input");
}

}  // namespace rectifier
