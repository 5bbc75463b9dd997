// Model::set_keep_outputs(false): the outputs backward never reads (a convolution's and the ReLU's after it, chained
// into a max pooling) stay in each thread's scratch. Nothing computed may change: the same bits for the output, the
// parameter and input gradients, the monitor's figures; and what needs the dropped outputs must still get them.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include "rectifier/monitor.h"
#include "rectifier/predictor.h"
#include "rectifier/trainer.h"
#include "test_util.h"

namespace rectifier {
namespace {

// conv relu maxpool: dropped; conv leaky_relu maxpool (the pooling cannot take a leaky ReLU's backward) and
// conv relu avgpool (average pooling backward needs the ReLU's own): kept.
const char* kNet = "conv(4,3,pad=1) relu maxpool(2) conv(5,3,pad=1) leaky_relu(0.1) maxpool(2) conv(3,3,pad=1) relu "
                   "avgpool(2) conv(6,3,pad=1) relu maxpool(2) flatten dense(3)";

struct Pass {
  std::vector<float> out, grads, dinput;
  std::vector<bool> kept;
};

Pass run(Model<float>& m, const std::vector<float>& x, const std::vector<float>& dy, int n) {
  m.set_input_grad(true);
  Pass p;
  const float* y = m.forward(x.data(), n, true);
  p.out.assign(y, y + size_t(n) * numel(m.output_shape()));
  for (size_t i = 0; i < m.num_layers(); ++i) p.kept.push_back(m.layer_output(i) != nullptr);
  m.zero_grad();
  m.backward(dy.data(), n);
  p.grads.assign(m.grads(), m.grads() + m.num_params());
  p.dinput.assign(m.input_grad(), m.input_grad() + x.size());
  return p;
}

TEST(KeepOutputs, DroppingThemChangesNoBit) {
  const int n = 6;
  Model<float> m(parse_arch(kNet, ArchContext{}), Shape{2, 32, 32});
  m.init(InitSpec{}, 3);
  const auto xd = test::random_vec(size_t(n) * 2 * 32 * 32, 4), dyd = test::random_vec(size_t(n) * 3, 5);
  const std::vector<float> x(xd.begin(), xd.end()), dy(dyd.begin(), dyd.end());
  ASSERT_TRUE(m.keep_outputs());  // the default
  const Pass all = run(m, x, dy, n);
  m.set_keep_outputs(false);
  const Pass lean = run(m, x, dy, n);
  for (size_t i = 0; i < m.num_layers(); ++i) {
    EXPECT_TRUE(all.kept[i]) << "layer " << i;
    // float convolutions take the direct path, which can write to scratch
    const bool dropped = i == 0 || i == 1 || i == 9 || i == 10;
    EXPECT_EQ(lean.kept[i], !dropped) << "layer " << i << " " << layer_text(m.layer(i).spec());
  }
  EXPECT_EQ(std::memcmp(all.out.data(), lean.out.data(), all.out.size() * 4), 0);
  EXPECT_EQ(std::memcmp(all.grads.data(), lean.grads.data(), all.grads.size() * 4), 0);
  EXPECT_EQ(std::memcmp(all.dinput.data(), lean.dinput.data(), all.dinput.size() * 4), 0);
  // A hook on the outputs' gradients may read the outputs: refused after a pass that dropped some.
  m.forward(x.data(), n, true);
  EXPECT_THROW(m.backward(dy.data(), n, [](size_t, float*, int) {}), std::logic_error);
  m.set_keep_outputs(true);
  m.forward(x.data(), n, true);
  EXPECT_NO_THROW(m.backward(dy.data(), n, [](size_t, float*, int) {}));
}

// The trainer's thread governor runs steps on one thread with a model reserved on two (omp_set_num_threads between
// steps): every layer then takes one thread, within the scratch reserve sized, and computes the same bits, with the
// outputs kept and dropped, whatever the thread count (the convolutions' chunks are fixed; the dense layers' packed
// forward and sparse backward sum each output in one order).
TEST(KeepOutputs, FewerThreadsThanReservedChangeNoBit) {
  const int n = 10, before = omp_get_max_threads();
  omp_set_num_threads(2);
  Model<float> m(parse_arch(kNet, ArchContext{}), Shape{2, 32, 32});
  m.init(InitSpec{}, 7);
  m.reserve(n);
  const auto xd = test::random_vec(size_t(n) * 2 * 32 * 32, 8), dyd = test::random_vec(size_t(n) * 3, 9);
  const std::vector<float> x(xd.begin(), xd.end()), dy(dyd.begin(), dyd.end());
  for (bool keep : {true, false}) {
    m.set_keep_outputs(keep);
    omp_set_num_threads(2);
    const Pass two = run(m, x, dy, n);
    omp_set_num_threads(1);
    const Pass one = run(m, x, dy, n);
    omp_set_num_threads(2);
    const Pass again = run(m, x, dy, n);
    for (const Pass* p : {&one, &again}) {
      EXPECT_EQ(std::memcmp(two.out.data(), p->out.data(), two.out.size() * 4), 0) << keep;
      EXPECT_EQ(std::memcmp(two.grads.data(), p->grads.data(), two.grads.size() * 4), 0) << keep;
      EXPECT_EQ(std::memcmp(two.dinput.data(), p->dinput.data(), two.dinput.size() * 4), 0) << keep;
    }
  }
  omp_set_num_threads(before);
}

// The monitor reads the dropped outputs as they are made, and keeps them all on its histogram batches: the same
// epoch figures either way, over batches of both kinds.
TEST(KeepOutputs, MonitorFiguresAreTheSame) {
  const int n = 8;
  MonitorConfig cfg;
  cfg.hist_every = 3;
  std::string json[2];
  for (int keep = 0; keep < 2; ++keep) {
    Model<float> m(parse_arch(kNet, ArchContext{}), Shape{2, 32, 32});
    m.init(InitSpec{}, 3);
    m.set_keep_outputs(keep == 1);
    Monitor mon(m, cfg);
    mon.begin_epoch();
    for (int b = 0; b < 5; ++b) {
      const auto xd = test::random_vec(size_t(n) * 2 * 32 * 32, 10 + uint64_t(b));
      const std::vector<float> x(xd.begin(), xd.end());
      m.forward(x.data(), n, true);
      EXPECT_EQ(m.layer_output(0) != nullptr, keep == 1 || b % 3 == 0) << "batch " << b;
      mon.after_forward(n);
    }
    json[keep] = mon.end_epoch().dump();
  }
  EXPECT_EQ(json[0], json[1]);
}

// Training keeps only what backward reads; a non-finite loss still names the first layer whose output went bad,
// though that output was dropped (the trainer runs the batch again keeping them all); the model's setting is its
// own again after training.
TEST(KeepOutputs, TrainerFindsANonFiniteValueInADroppedOutput) {
  DataSplit d;
  d.train.source = "test images";
  d.train.shape = {1, 8, 8};
  d.train.classes = 2;
  d.train.scale = 1.0 / 255;
  for (int i = 0; i < 64; ++i) {
    for (int p = 0; p < 64; ++p) d.train.pixels.push_back(uint8_t((i * 37 + p * 11) % 256));
    d.train.labels.push_back(i % 2);
  }
  Model<float> m(parse_arch("conv(4,3,pad=1) relu maxpool(2) flatten dense(2)", ArchContext{}), Shape{1, 8, 8});
  m.init(InitSpec{}, 1);
  Monitor mon(m);
  TrainConfig c;
  c.epochs = 2;
  c.batch = 16;
  c.threads = 2;
  auto on_step = [&](long step, int, double) {
    if (step == 5) m.layer(0).params()[1].value[2] = std::numeric_limits<float>::infinity();  // conv bias
  };
  const auto r = train(m, d, c, {}, &mon, on_step);
  ASSERT_TRUE(r.stopped_nonfinite);
  EXPECT_NE(r.nonfinite_message.find("the output of layer 0 (conv"), std::string::npos) << r.nonfinite_message;
  EXPECT_TRUE(m.keep_outputs());
}

// A predictor drops them too, and gives the model back with its setting.
TEST(KeepOutputs, PredictorMatchesTheModel) {
  const int n = 5;
  Model<float> m(parse_arch(kNet, ArchContext{}), Shape{2, 32, 32});
  m.init(InitSpec{}, 8);
  const auto xd = test::random_vec(size_t(n) * 2 * 32 * 32, 9);
  const std::vector<float> x(xd.begin(), xd.end());
  const float* y = m.forward(x.data(), n, false);
  const std::vector<float> want(y, y + size_t(n) * 3);
  Predictor<float> p(std::move(m), n);
  const float* got = p.predict(x.data(), n);
  EXPECT_EQ(std::memcmp(got, want.data(), want.size() * 4), 0);
  EXPECT_EQ(p.model().layer_output(0), nullptr);
  Model<float> back = std::move(p).release();
  EXPECT_TRUE(back.keep_outputs());
}

// With 8 or more input channels a 3x3 or 5x5 convolution's forward is Winograd's, whose transformed weights a
// predictor makes once (Conv2D::freeze): the same outputs as the model's own forward, which transforms them at
// every call; and after release, training again, the model transforms its new weights.
TEST(KeepOutputs, PredictorWithWinogradConvolutions) {
  const int n = 3;
  Model<float> m(parse_arch("conv(8,3,pad=1) relu conv(12,5,pad=2) relu maxpool(2) conv(9,3,pad=1) flatten dense(4)",
                            ArchContext{}),
                 Shape{2, 12, 12});
  m.init(InitSpec{}, 11);
  const auto xd = test::random_vec(size_t(n) * 2 * 12 * 12, 12);
  const std::vector<float> x(xd.begin(), xd.end());
  const float* y = m.forward(x.data(), n, false);
  const std::vector<float> want(y, y + size_t(n) * 4);
  Predictor<float> p(std::move(m), n);
  EXPECT_EQ(std::memcmp(p.predict(x.data(), n), want.data(), want.size() * 4), 0);
  EXPECT_EQ(std::memcmp(p.predict(x.data(), n), want.data(), want.size() * 4), 0);  // twice: nothing stale
  Model<float> back = std::move(p).release();
  back.layer(2).params()[0].value[7] += 0.5f;  // the Winograd layer's weights change, as in training
  const float* y2 = back.forward(x.data(), n, false);
  EXPECT_NE(std::memcmp(y2, want.data(), want.size() * 4), 0);
}

}  // namespace
}  // namespace rectifier
