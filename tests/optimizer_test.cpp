// Optimizer steps against values computed by hand from the update rules (PyTorch's torch.optim).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>
#include "kernels/reduce.h"
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
// f(config, name, momentum) for every rule, with and without momentum, all with weight decay.
template <class F>
void for_every_rule(F&& f) {
  for (const char* name : {"sgd", "adam", "adamw", "rmsprop"})
    for (double mu : {0.0, 0.9}) {
      OptimizerConfig c;
      c.kind = *parse_optimizer(name);
      c.momentum = mu;
      c.weight_decay = 0.01;
      f(c, name, mu);
    }
}

TEST(Optimizer, StepAndClearUpdatesAsStepAndZeroesTheGradient) {
  for_every_rule([](const OptimizerConfig& c, const char* name, double mu) {
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
  });
}

// The monitor's figures taken in the update's pass (StepStats): the update itself as without them, for every rule;
// each range's gradient sum of squares the same bits as kernels::sum_squares over the range (the monitor's own
// pass), the update and weight sums as plain double sums; and the first non-finite gradient element of a range.
TEST(Optimizer, StepStatsTakenInTheUpdatesPass) {
  for_every_rule([](const OptimizerConfig& c, const char* name, double mu) {
    const size_t n = 70011;
    StepStats st;
    for (size_t off = 0; off < n;) {  // ranges of 16384, 10, 5000, ... : below, at and above one block of 4096
      const size_t size = std::min(n - off, off % 3 == 0 ? size_t(16384) : off % 3 == 1 ? size_t(10) : size_t(5000));
      st.ranges.push_back({off, size});
      off += size;
    }
    std::vector<float> p(n), q(n), g(n), h(n), bp(n), bq(n);
    for (size_t i = 0; i < n; ++i) p[i] = q[i] = float(i % 17) * 0.1f - 0.8f;
    Optimizer<float> a(c, n), b(c, n);
    for (int s = 0; s < 3; ++s) {
      for (size_t i = 0; i < n; ++i) g[i] = h[i] = float((i * 7 + size_t(s)) % 13) * 0.05f - 0.3f;
      st.ratio = s != 1;
      const std::vector<float> before(q);
      a.step_and_clear(p.data(), g.data(), 0.01, bp.data());
      b.step_and_clear(q.data(), h.data(), 0.01, bq.data(), &st);
      ASSERT_EQ(std::memcmp(p.data(), q.data(), n * 4), 0) << name << " mu=" << mu << " step " << s;
      ASSERT_EQ(std::memcmp(bp.data(), bq.data(), n * 4), 0) << name;
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(h[i], 0.0f) << name << " at " << i;
      std::vector<float> grad(n);
      for (size_t i = 0; i < n; ++i) grad[i] = float((i * 7 + size_t(s)) % 13) * 0.05f - 0.3f;
      ASSERT_EQ(st.grad_ss.size(), st.ranges.size());
      for (size_t r = 0; r < st.ranges.size(); ++r) {
        const auto [off, size] = st.ranges[r];
        EXPECT_EQ(st.grad_ss[r], kernels::sum_squares(grad.data() + off, size)) << name << " range " << r;
        EXPECT_EQ(st.first_bad[r], SIZE_MAX);
        if (!st.ratio) continue;
        double du = 0, w = 0;
        for (size_t i = off; i < off + size; ++i) {
          du += (double(q[i]) - double(before[i])) * (double(q[i]) - double(before[i]));
          w += double(before[i]) * double(before[i]);
        }
        EXPECT_NEAR(st.update_ss[r], du, 1e-12 * du + 1e-300) << name << " range " << r;
        EXPECT_NEAR(st.weight_ss[r], w, 1e-12 * w) << name << " range " << r;
      }
    }
    // A NaN in the third range and an infinity in the fifth: found, each its range's first.
    for (size_t i = 0; i < n; ++i) h[i] = 0.1f;
    const size_t at_nan = st.ranges[2].first + 7, at_inf = st.ranges[4].first + 4500;
    h[at_nan] = std::nanf("");
    h[at_inf] = -INFINITY;
    h[at_inf + 1] = std::nanf("");
    b.step_and_clear(q.data(), h.data(), 0.01, bq.data(), &st);
    EXPECT_EQ(st.first_bad[2], at_nan);
    EXPECT_EQ(st.first_bad_nan[2], 1);
    EXPECT_EQ(st.first_bad[4], at_inf);
    EXPECT_EQ(st.first_bad_nan[4], 0);
    EXPECT_EQ(st.first_bad[3], SIZE_MAX);
    EXPECT_TRUE(std::isnan(st.grad_ss[2]));
  });
}

}  // namespace rectifier
