// Predictor: a model owned for inference, its dense layers' weights packed once (Layer::freeze).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>
#include "rectifier/predictor.h"
#include "rectifier/trainer.h"
#include "test_util.h"

using namespace rectifier;

namespace {
Model<float> make_model(const char* arch, const Shape& in, uint64_t seed) {
  Model<float> m(parse_arch(arch, ArchContext{}), in);
  InitSpec init;
  init.bias = -0.02;  // some units of each ReLU off, as after training
  m.init(init, seed);
  return m;
}

// n examples of `in` floats: 40% of the entries zero (an image's background), the rest in (0, 1]
std::vector<float> sparse_inputs(int n, size_t in, uint64_t seed) {
  const auto d = test::random_vec(size_t(n) * in, seed);
  std::vector<float> x(d.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = i % 5 < 2 ? 0.0f : float(std::abs(d[i]));
  return x;
}
}  // namespace

// The predictor's outputs are the model's: one example at a time (a different order of the sums: within 1e-5 of
// the model's, relative to the output's scale), and batches of 9 and 3 (9: the same packed product as training
// runs, bit for bit; 3: a different one). The reference MLP, a net of widths that are not multiples of a panel,
// a CNN (its dense head frozen, its convolutions as they were), and all-zero and fully dense inputs.
TEST(Predictor, OutputsAreTheModels) {
  struct Case { const char* arch; Shape in; };
  for (const auto& c : {Case{"dense(256) relu dense(128) relu dense(10)", {1, 28, 28}},
                        Case{"dense(70) relu dense(45) tanh dense(3)", {37}},
                        Case{"conv(4,3,pad=1) relu maxpool(2) flatten dense(40) relu dense(5)", {1, 8, 8}}}) {
    Model<float> ref = make_model(c.arch, c.in, 3);
    Predictor<float> p(make_model(c.arch, c.in, 3));
    const size_t in = numel(c.in), out = numel(ref.output_shape());
    std::vector<float> x = sparse_inputs(9, in, 11);
    for (size_t j = 0; j < in; ++j) x[j] = 0.0f;               // example 0: all zero
    for (size_t j = 0; j < in; ++j) x[in + j] = 0.5f + 1e-3f * float(j % 7);  // example 1: none zero
    const float* y9 = p.predict(x.data(), 9);
    std::vector<float> got(y9, y9 + 9 * out);
    const float* r9 = ref.forward(x.data(), 9, false);
    ASSERT_EQ(std::memcmp(got.data(), r9, got.size() * sizeof(float)), 0) << c.arch;
    const std::vector<float> want(r9, r9 + 9 * out);
    double scale = 0;
    for (float v : want) scale = std::max(scale, double(std::abs(v)));
    for (int n : {1, 3})
      for (int s = 0; s + n <= 9; s += n) {
        const float* y = p.predict(x.data() + size_t(s) * in, n);
        for (size_t j = 0; j < size_t(n) * out; ++j)
          ASSERT_NEAR(y[j], want[size_t(s) * out + j], 1e-5 * (1 + scale)) << c.arch << ", batch " << n << " from " << s << ", output " << j;
      }
    EXPECT_EQ(p.predict_class(x.data() + 2 * in),
              int(std::max_element(want.begin() + 2 * long(out), want.begin() + 3 * long(out)) - want.begin() - 2 * long(out)));
  }
}

// The weights are packed when the predictor is made: released, the model reads its weights again (a change to them
// shows in its next forward, one example or a batch), and trains as before.
TEST(Predictor, ReleasedModelSeesNewWeights) {
  Predictor<float> p(make_model("dense(64) relu dense(32)", {50}, 5));
  const std::vector<float> x = sparse_inputs(8, 50, 12);
  std::vector<float> before(p.predict(x.data(), 1), p.predict(x.data(), 1) + 32);
  Model<float> m = std::move(p).release();
  for (size_t i = 0; i < 64 * 50; ++i) m.params()[i] *= 2.0f;  // the first layer's weights
  for (int n : {1, 8}) {
    const float* y = m.forward(x.data(), n, false);
    double diff = 0;
    for (size_t j = 0; j < 32; ++j) diff += std::abs(y[j] - before[j]);
    EXPECT_GT(diff, 1e-3) << "batch " << n << ": the outputs of the old weights";
  }
  Predictor<float> again(std::move(m));
  const float* y = again.predict(x.data(), 1);
  Model<float> ref = make_model("dense(64) relu dense(32)", {50}, 5);
  for (size_t i = 0; i < 64 * 50; ++i) ref.params()[i] *= 2.0f;
  const float* r = ref.forward(x.data(), 1, false);
  for (size_t j = 0; j < 32; ++j) ASSERT_NEAR(y[j], r[j], 1e-5 * (1 + std::abs(r[j]))) << j;
}
