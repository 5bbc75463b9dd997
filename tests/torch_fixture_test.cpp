// Forward and backward of small networks against values PyTorch computed (tests/fixtures/make_fixtures.py).
#include <gtest/gtest.h>

#include "rectifier/activation.h"
#include "rectifier/loss.h"
#include "test_util.h"

namespace rectifier {

static void expect_close(const float* got, const std::vector<double>& want, double tol, const std::string& what) {
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * std::max(1.0, std::abs(want[i]))) << what << "[" << i << "]";
}

class TorchFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(TorchFixture, ForwardBackwardAndStateMatchPyTorch) {
  const auto f = test::load_fixture(GetParam() + ".json");
  const Shape in = f["input_shape"].get<Shape>();
  Model<float> m(parse_arch(f["arch"].get<std::string>(), ArchContext{}), in);
  m.set_input_grad(true);
  // Load every tensor by its PyTorch name.
  for (auto& t : m.state()) {
    if (t.counter) continue;
    ASSERT_TRUE(f["state"].contains(t.name)) << t.name;
    const auto& s = f["state"][t.name];
    ASSERT_EQ(s["shape"].get<Shape>(), t.shape) << t.name;
    const auto data = s["data"].get<std::vector<double>>();
    for (size_t i = 0; i < data.size(); ++i) t.value[i] = float(data[i]);
  }
  const int n = f["n"].get<int>();
  const auto xd = f["x"].get<std::vector<double>>();
  std::vector<float> x(xd.begin(), xd.end());
  const auto labels = f["labels"].get<std::vector<int32_t>>();
  const bool training = f["train_mode"].get<bool>();
  const float* out = m.forward(x.data(), n, training);
  const int k = int(numel(m.output_shape()));
  expect_close(out, f["logits"].get<std::vector<double>>(), 2e-5, "logits");
  std::vector<float> dout(size_t(n * k));
  auto r = loss_forward_backward<float>(LossKind::cross_entropy, out, labels.data(), n, k, dout.data());
  EXPECT_NEAR(r.loss, f["loss"].get<double>(), 1e-5);
  m.zero_grad();
  m.backward(dout.data(), n);
  for (auto& l : f["grads"].items()) {
    bool found = false;
    for (auto& t : m.state()) {
      if (t.name != l.key()) continue;
      found = true;
      const float* g = m.grads() + (t.value - m.params());
      expect_close(g, l.value().get<std::vector<double>>(), 5e-5, "grad " + l.key());
    }
    EXPECT_TRUE(found) << l.key();
  }
  expect_close(m.input_grad(), f["dx"].get<std::vector<double>>(), 5e-5, "dx");
  for (auto& t : m.state())  // batch norm's running statistics after the step
    if (!t.counter && f["state_after"].contains(t.name))
      expect_close(t.value, f["state_after"][t.name]["data"].get<std::vector<double>>(), 2e-5, "state " + t.name);
  EXPECT_EQ(m.torch_source() + "", m.torch_source());
}

INSTANTIATE_TEST_SUITE_P(Nets, TorchFixture, ::testing::Values("mlp", "cnn", "cnn_eval", "gap", "winograd"));

TEST(TorchFixture, EveryActivationValueAndDerivative) {
  const auto f = test::load_fixture("activations.json");
  const auto xs = f["x"].get<std::vector<double>>();
  for (const auto& name : activation_names()) {
    ASSERT_TRUE(f.contains(name)) << name;
    const Activation a = *parse_activation(name);
    const auto y = f[name]["y"].get<std::vector<double>>(), dy = f[name]["dy"].get<std::vector<double>>();
    for (size_t i = 0; i < xs.size(); ++i) {
      EXPECT_NEAR(act_value(a, xs[i]), y[i], 1e-12 * std::max(1.0, std::abs(y[i]))) << name << "(" << xs[i] << ")";
      EXPECT_NEAR(act_derivative(a, xs[i]), dy[i], 1e-12 * std::max(1.0, std::abs(dy[i]))) << name << "'(" << xs[i] << ")";
    }
  }
}

}  // namespace rectifier
