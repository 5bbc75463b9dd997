// Optimizer steps against values computed by hand from the update rules (PyTorch's torch.optim).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>
#include "rectifier/optimizer.h"

namespace rectifier {

TEST(Optimizer, SgdPlain) {
  OptimizerConfig c;
  c.momentum = 0;
  Optimizer<double> o(c, 1);
  double p = 1.0, g = 0.5;
  o.step(&p, &g, 0.1);
  EXPECT_DOUBLE_EQ(p, 0.95);
}

TEST(Optimizer, SgdMomentumAndWeightDecay) {
  OptimizerConfig c;
  c.momentum = 0.9;
  c.weight_decay = 0.1;
  Optimizer<double> o(c, 1);
  double p = 1.0, g = 0.5;
  o.step(&p, &g, 0.1);  // g' = 0.5 + 0.1*1 = 0.6; buf = 0.6; p = 1 - 0.06 = 0.94
  EXPECT_NEAR(p, 0.94, 1e-15);
  o.step(&p, &g, 0.1);  // g' = 0.5 + 0.094 = 0.594; buf = 0.54 + 0.594 = 1.134; p = 0.94 - 0.1134 = 0.8266
  EXPECT_NEAR(p, 0.8266, 1e-15);
}

TEST(Optimizer, SgdNesterov) {
  OptimizerConfig c;
  c.momentum = 0.9;
  c.nesterov = true;
  Optimizer<double> o(c, 1);
  double p = 1.0, g = 1.0;
  o.step(&p, &g, 0.1);  // buf = 1; update = g + 0.9*buf = 1.9; p = 0.81
  EXPECT_NEAR(p, 0.81, 1e-15);
  o.step(&p, &g, 0.1);  // buf = 0.9 + 1 = 1.9; update = 1 + 1.71 = 2.71; p = 0.81 - 0.271 = 0.539
  EXPECT_NEAR(p, 0.539, 1e-15);
}

TEST(Optimizer, AdamFirstStepsByHand) {
  OptimizerConfig c;
  c.kind = OptKind::adam;
  Optimizer<double> o(c, 1);
  double p = 1.0, g = 0.2;
  o.step(&p, &g, 0.01);  // m = 0.02, v = 4e-5; mhat = 0.2, vhat = 0.04: step = 0.01 * 0.2 / (0.2 + 1e-8)
  const double s1 = 0.01 * 0.2 / (0.2 + 1e-8);
  EXPECT_NEAR(p, 1.0 - s1, 1e-15);
  g = -0.1;
  o.step(&p, &g, 0.01);  // m = 0.9*0.02 - 0.01 = 0.008; v = 0.999*4e-5 + 0.001*0.01 = 4.996e-5
  const double m = 0.008, v = 0.999 * 4e-5 + 0.001 * 0.01;
  const double s2 = (0.01 / (1 - 0.81)) * m / (std::sqrt(v) / std::sqrt(1 - 0.998001) + 1e-8);
  EXPECT_NEAR(p, 1.0 - s1 - s2, 1e-14);
}

TEST(Optimizer, AdamWDecouplesWeightDecay) {
  OptimizerConfig c;
  c.kind = OptKind::adamw;
  c.weight_decay = 0.1;
  Optimizer<double> o(c, 1);
  double p = 2.0, g = 0.0;
  o.step(&p, &g, 0.5);  // zero gradient: only the decay acts: p = 2 * (1 - 0.05) = 1.9
  EXPECT_NEAR(p, 1.9, 1e-15);
  c.kind = OptKind::adam;  // Adam's L2 goes through the moments instead: first step moves by ~lr
  Optimizer<double> a(c, 1);
  double q = 2.0;
  a.step(&q, &g, 0.5);
  EXPECT_NEAR(q, 1.5, 1e-6);
}

TEST(Optimizer, RmsProp) {
  OptimizerConfig c;
  c.kind = OptKind::rmsprop;
  c.momentum = 0;
  Optimizer<double> o(c, 1);
  double p = 1.0, g = 0.5;
  o.step(&p, &g, 0.01);  // v = 0.01 * 0.25 = 0.0025; p -= 0.01 * 0.5 / (0.05 + 1e-8)
  EXPECT_NEAR(p, 1.0 - 0.01 * 0.5 / (0.05 + 1e-8), 1e-15);
}

TEST(Optimizer, ClipGradNorm) {
  double g[2] = {3, 4};
  EXPECT_DOUBLE_EQ(clip_grad_norm(g, 2, 0.0), 5.0);  // off: unchanged
  EXPECT_EQ(g[0], 3);
  EXPECT_DOUBLE_EQ(clip_grad_norm(g, 2, 1.0), 5.0);
  EXPECT_NEAR(std::hypot(g[0], g[1]), 1.0, 1e-6);
  EXPECT_NEAR(g[0] / g[1], 0.75, 1e-12);
  double small[2] = {0.3, 0.4};
  clip_grad_norm(small, 2, 1.0);
  EXPECT_EQ(small[0], 0.3);
}

TEST(Schedule, ConstantStepCosineWarmup) {
  Schedule s;
  EXPECT_DOUBLE_EQ(s.lr_at(0.1, 3.7, 10), 0.1);
  s.kind = ScheduleKind::step;
  s.step_epochs = 2;
  s.gamma = 0.5;
  EXPECT_DOUBLE_EQ(s.lr_at(0.1, 1.9, 10), 0.1);
  EXPECT_DOUBLE_EQ(s.lr_at(0.1, 4.0, 10), 0.025);
  s.kind = ScheduleKind::cosine;
  EXPECT_DOUBLE_EQ(s.lr_at(0.1, 0, 10), 0.1);
  EXPECT_NEAR(s.lr_at(0.1, 5, 10), 0.05, 1e-15);
  EXPECT_NEAR(s.lr_at(0.1, 10, 10), 0.0, 1e-15);
  s.warmup_epochs = 2;
  EXPECT_DOUBLE_EQ(s.lr_at(0.1, 1, 10), 0.05);
  EXPECT_NEAR(s.lr_at(0.1, 2, 10), 0.1, 1e-15);
  EXPECT_NEAR(s.lr_at(0.1, 6, 10), 0.05, 1e-15);
}

// step_and_clear: the same update, bit for bit, for every rule (with and without the backup), and the gradient
// left zero.
TEST(Optimizer, StepAndClearUpdatesAsStepAndZeroesTheGradient) {
  for (const char* name : {"sgd", "adam", "adamw", "rmsprop"})
    for (double mu : {0.0, 0.9}) {
      OptimizerConfig c;
      c.kind = *parse_optimizer(name);
      c.momentum = mu;
      c.weight_decay = 0.01;
      const size_t n = 70000;  // several blocks, split over the threads
      std::vector<float> p(n), q(n), g(n), h(n), bp(n), bq(n);
      for (size_t i = 0; i < n; ++i) p[i] = q[i] = float(i % 17) * 0.1f - 0.8f;
      Optimizer<float> a(c, n), b(c, n);
      for (int s = 0; s < 3; ++s) {
        for (size_t i = 0; i < n; ++i) g[i] = h[i] = float((i * 7 + size_t(s)) % 13) * 0.05f - 0.3f;
        a.step(p.data(), g.data(), 0.01, bp.data());
        b.step_and_clear(q.data(), h.data(), 0.01, s == 1 ? nullptr : bq.data());
        ASSERT_EQ(std::memcmp(p.data(), q.data(), n * 4), 0) << name << " mu=" << mu << " step " << s;
        for (size_t i = 0; i < n; ++i) ASSERT_EQ(h[i], 0.0f) << name << " at " << i;
        if (s != 1) {
          ASSERT_EQ(std::memcmp(bp.data(), bq.data(), n * 4), 0) << name;
        }
      }
    }
}

}  // namespace rectifier
