// The trainer (learning, determinism, non-finite stop) and the monitor's counters and warnings.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include "rectifier/error.h"
#include "rectifier/monitor.h"
#include "rectifier/trainer.h"
#include "test_util.h"

namespace rectifier {

static Model<float> mlp(const std::string& arch, const Shape& in, uint64_t seed = 0, InitSpec init = {}) {
  ArchContext ctx;
  ctx.input = in;
  Model<float> m(parse_arch(arch, ctx), in);
  m.init(init, seed);
  return m;
}

TEST(Trainer, LearnsSpirals) {
  DataSplit d = load_data("spirals");
  Model<float> m = mlp("dense(64) relu dense(64) relu dense(2)", {2});
  TrainConfig c;
  c.epochs = 40;
  c.batch = 32;
  c.optimizer.lr = 0.1;
  auto r = train(m, d, c);
  EXPECT_GT(r.epochs.back().test_accuracy, 0.95);
}

TEST(Trainer, SameSeedOneThreadIsBitIdentical) {
  DataSplit d = load_data("moons:500");
  auto run = [&](uint64_t seed) {
    Model<float> m = mlp("dense(16) relu dropout(0.2) dense(16) relu dense(2)", {2}, seed);
    TrainConfig c;
    c.epochs = 3;
    c.batch = 16;
    c.seed = seed;
    c.threads = 1;
    train(m, d, c);
    return std::vector<float>(m.params(), m.params() + m.num_params());
  };
  const auto a = run(5), b = run(5), c = run(6);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0);
  EXPECT_NE(std::memcmp(a.data(), c.data(), a.size() * 4), 0);
}

// evaluate with a workspace: the same figures as with its own buffer; a workspace too small is grown once, one
// large enough is used as it is (the trainer's every-epoch evaluations then allocate nothing).
TEST(Trainer, EvaluateReusesItsWorkspace) {
  DataSplit d = load_data("moons:700");
  Model<float> m = mlp("dense(16) relu dense(2)", {2}, 3);
  const EvalResult own = evaluate(m, d.test, LossKind::cross_entropy, 64);
  Buffer<float> ws(5);
  const EvalResult with = evaluate(m, d.test, LossKind::cross_entropy, 64, &ws);
  EXPECT_EQ(with.loss, own.loss);
  EXPECT_EQ(with.accuracy, own.accuracy);
  EXPECT_EQ(with.n, own.n);
  ASSERT_EQ(ws.size(), 64u * 2u);  // grown to a batch of 64 two-feature examples
  const float* at = ws.data();
  const EvalResult again = evaluate(m, d.test, LossKind::cross_entropy, 32, &ws);  // a smaller batch: kept
  EXPECT_EQ(ws.data(), at);
  EXPECT_EQ(ws.size(), 64u * 2u);
  EXPECT_NEAR(again.loss, own.loss, 1e-12);
  EXPECT_EQ(again.accuracy, own.accuracy);
}

// With a monitor and no clipping the trainer takes the monitor's figures in the optimizer's pass; a clip norm too
// large to clip sends it through the monitor's own passes. One thread, one seed: the same weights, bit for bit, and
// the same diagnostics (update ratios within rounding).
TEST(Trainer, FusedMonitorStepTrainsAsTheUnfusedOne) {
  DataSplit d = load_data("spirals:600");
  auto run = [&](double clip, std::vector<float>& w) {
    Model<float> m = mlp("dense(64) relu dense(64) relu dense(3)", {2}, 7);
    Monitor mon(m, MonitorConfig{});
    TrainConfig c;
    c.epochs = 2;
    c.batch = 32;
    c.threads = 1;
    c.clip_norm = clip;
    std::vector<EpochMetrics> ms;
    train(m, d, c, [&](const EpochMetrics& e) { ms.push_back(e); }, &mon);
    w.assign(m.params(), m.params() + m.num_params());
    return ms.back().diagnostics;
  };
  std::vector<float> wf, wu;
  const auto fused = run(0, wf), own = run(1e30, wu);
  ASSERT_EQ(wf.size(), wu.size());
  EXPECT_EQ(std::memcmp(wf.data(), wu.data(), wf.size() * 4), 0);
  EXPECT_EQ(fused["grad_norm"].get<double>(), own["grad_norm"].get<double>());
  for (size_t k = 0; k < fused["params"].size(); ++k) {
    EXPECT_EQ(fused["params"][k]["grad_norm"].get<double>(), own["params"][k]["grad_norm"].get<double>()) << k;
    const double rf = fused["params"][k]["update_ratio"].get<double>(), ru = own["params"][k]["update_ratio"].get<double>();
    EXPECT_NEAR(rf, ru, 1e-9 * ru) << k;
  }
  // A gradient that goes NaN while the loss is finite (init gain 1e9, MSE): the fused check comes after the update
  // and undoes it; both paths stop at the same step with the same message and keep the same weights.
  auto explode = [&](double clip, std::vector<float>& w) {
    InitSpec init;
    init.gain = 1e9;
    Model<float> m = mlp("dense(64) relu dense(64) relu dense(3)", {2}, 7, init);
    Monitor mon(m, MonitorConfig{});
    TrainConfig c;
    c.epochs = 1;
    c.threads = 1;
    c.loss = LossKind::mse;
    c.clip_norm = clip;
    const TrainResult r = train(m, d, c, {}, &mon);
    w.assign(m.params(), m.params() + m.num_params());
    return r;
  };
  const TrainResult rf = explode(0, wf), ru = explode(1e30, wu);
  ASSERT_TRUE(rf.stopped_nonfinite);
  EXPECT_NE(rf.nonfinite_message.find("gradient of tensor"), std::string::npos) << rf.nonfinite_message;
  EXPECT_EQ(rf.nonfinite_message, ru.nonfinite_message);
  EXPECT_EQ(std::memcmp(wf.data(), wu.data(), wf.size() * 4), 0);
}

TEST(Trainer, ShouldStopEndsTrainingAfterThatStep) {
  DataSplit d = load_data("xor:256");
  Model<float> m = mlp("dense(8) relu dense(2)", {2});
  TrainConfig c;
  c.epochs = 5;
  c.batch = 32;  // 8 steps per epoch
  long last = 0;
  c.should_stop = [&] { return last == 11; };
  auto r = train(m, d, c, {}, nullptr, [&](long step, int, double) { last = step; });
  EXPECT_EQ(last, 11);
  ASSERT_EQ(r.epochs.size(), 2u);  // stopped in epoch 2, which is still reported and evaluated
  EXPECT_TRUE(r.epochs.back().evaluated);
  EXPECT_EQ(r.epochs.back().steps, 11);
}

// The update after step `bad - 1` "goes wrong": one weight of layer 2 becomes NaN. Step `bad` must stop, naming the
// layer and the tensor, and put back the newest copy of the weights: taken every `every` steps, so after step `kept`.
void forced_nan_keeps_the_last_copy(int every, long bad, long kept) {
  SCOPED_TRACE("every " + std::to_string(every) + ", bad at step " + std::to_string(bad));
  DataSplit d = load_data("xor:256");
  Model<float> m = mlp("dense(8) relu dense(8) relu dense(2)", {2});
  Monitor mon(m);
  TrainConfig c;
  c.epochs = 4;
  c.batch = 32;  // 8 steps per epoch
  c.last_good_every = every;
  std::vector<float> good, initial(m.params(), m.params() + m.num_params());
  auto on_step = [&](long step, int, double) {
    if (step == kept) good.assign(m.params(), m.params() + m.num_params());
    if (step == bad - 1) m.layer(2).params()[0].value[5] = std::nanf("");
  };
  if (kept == 0) good = initial;
  auto r = train(m, d, c, {}, &mon, on_step);
  ASSERT_TRUE(r.stopped_nonfinite);
  EXPECT_NE(r.nonfinite_message.find("step " + std::to_string(bad) + " "), std::string::npos) << r.nonfinite_message;
  EXPECT_NE(r.nonfinite_message.find("layer 2"), std::string::npos) << r.nonfinite_message;
  EXPECT_NE(r.nonfinite_message.find("'2.weight'"), std::string::npos) << r.nonfinite_message;
  EXPECT_NE(r.nonfinite_message.find("after step " + std::to_string(kept) + ","), std::string::npos)
      << r.nonfinite_message;
  ASSERT_EQ(good.size(), m.num_params());
  EXPECT_EQ(std::memcmp(good.data(), m.params(), good.size() * 4), 0);
}

TEST(Trainer, ForcedNaNStopsAndKeepsTheLastGoodWeights) {
  forced_nan_keeps_the_last_copy(1, 4, 2);     // a copy at every step: the weights before the bad update
  forced_nan_keeps_the_last_copy(16, 4, 0);    // the default: the only copy so far is the initial weights
  forced_nan_keeps_the_last_copy(16, 20, 16);  // the copy taken in step 17's update
  forced_nan_keeps_the_last_copy(5, 16, 10);   // copies after steps 0, 5, 10, 15: 15 is the bad one
}

// Every Nth batch needs N >= 1 (N = 0 was a division by zero at the first forward pass).
TEST(Monitor, RefusesAHistogramPeriodBelowOne) {
  Model<float> m = mlp("dense(4) relu dense(2)", {3});
  MonitorConfig c;
  c.hist_every = 0;
  EXPECT_THROW({ Monitor mon(m, c); }, Error);
  c.hist_every = 1;
  c.hist_bins = 0;
  EXPECT_THROW({ Monitor mon(m, c); }, Error);
}

TEST(Monitor, CountsDeadUnitsAndSparsityByHand) {
  Model<float> m = mlp("dense(3) relu", {1});
  // unit 0: bias -100 (dead on every input); unit 1: active only when x > 0.5; unit 2: always active.
  float* W = m.layer(0).params()[0].value;
  float* b = m.layer(0).params()[1].value;
  W[0] = 1; b[0] = -100;
  W[1] = 1; b[1] = -0.5f;
  W[2] = 0; b[2] = 1;
  Monitor mon(m);
  mon.begin_epoch();
  float x[4] = {0.1f, 0.2f, 0.3f, 0.9f};
  m.forward(x, 4, true);
  mon.after_forward(4);
  auto j = mon.end_epoch();
  const auto& l = j["layers"][0];
  EXPECT_NEAR(l["dead_fraction"].get<double>(), 1.0 / 3, 1e-12);  // unit 1 was alive on one example: not dead
  EXPECT_NEAR(l["sparsity"].get<double>(), 7.0 / 12, 1e-12);      // 4 + 3 zeros of 12
  EXPECT_NEAR(l["pre_mean"].get<double>(), (4 * -99.625 + 4 * -0.125 + 4) / 12.0, 1e-3);
  // The first batch fills the histogram: all 12 pre-activations, the four near -100 alone in the lowest filled bin.
  const auto counts = l["hist"]["counts"].get<std::vector<double>>();
  double in_hist = 0;
  for (double c : counts) in_hist += c;
  EXPECT_EQ(in_hist, 12);
  size_t first = 0;
  while (first < counts.size() && counts[first] == 0) ++first;
  ASSERT_LT(first, counts.size());
  EXPECT_EQ(counts[first], 4);
  // Next epoch: unit 1 is dead, then revives in the epoch after.
  mon.begin_epoch();
  float lo[2] = {0.1f, 0.2f};
  m.forward(lo, 2, true);
  mon.after_forward(2);
  EXPECT_NEAR(mon.end_epoch()["layers"][0]["dead_fraction"].get<double>(), 2.0 / 3, 1e-12);
  mon.begin_epoch();
  m.forward(x, 4, true);
  mon.after_forward(4);
  auto k = mon.end_epoch();
  EXPECT_NEAR(k["layers"][0]["revived_fraction"].get<double>(), 1.0 / 3, 1e-12);
  ASSERT_EQ(mon.warnings().size(), 1u);  // 33% dead > 30%
  EXPECT_EQ(mon.warnings()[0].kind, "dying_relu");
}

// Gradient norms and update ratios against plain double sums, per tensor: a weight of 21,000 values (two of the
// monitor's 16K pieces, neither a multiple of the vector lanes), a bias of 70 and tensors of 3, over two steps.
TEST(Monitor, GradientNormsAndUpdateRatiosMatchPlainSums) {
  Model<float> m = mlp("dense(70) relu dense(3)", {300});
  const size_t n = m.num_params();
  MonitorConfig cfg;
  cfg.update_every = 1;
  Monitor mon(m, cfg);
  mon.begin_epoch();
  Rng rng(11);
  std::vector<double> norm_sum(m.num_layers() * 2, 0.0), ratio_sum(norm_sum.size(), 0.0);
  for (int step = 0; step < 2; ++step) {
    for (size_t i = 0; i < n; ++i) m.grads()[i] = float(rng.normal() * (step + 1));
    ASSERT_FALSE(mon.after_backward());
    mon.before_step();
    std::vector<float> was(m.params(), m.params() + n);
    for (size_t i = 0; i < n; ++i) m.params()[i] -= 0.01f * m.grads()[i];
    mon.after_step();
    size_t k = 0;
    for (size_t l = 0; l < m.num_layers(); ++l)
      for (const auto& p : m.layer(l).params()) {
        const size_t off = size_t(p.grad - m.grads());
        double g2 = 0, d2 = 0, w2 = 0;
        for (size_t i = off; i < off + p.size(); ++i) {
          g2 += double(m.grads()[i]) * m.grads()[i];
          const double d = double(m.params()[i]) - double(was[i]);
          d2 += d * d;
          w2 += double(was[i]) * was[i];
        }
        norm_sum[k] += std::sqrt(g2);
        ratio_sum[k] += std::sqrt(d2 / w2);
        ++k;
      }
  }
  const auto params = mon.end_epoch()["params"];
  ASSERT_EQ(params.size(), 4u);
  for (size_t k = 0; k < params.size(); ++k) {
    const double norm = norm_sum[k] / 2, ratio = ratio_sum[k] / 2;
    EXPECT_NEAR(params[k]["grad_norm"].get<double>(), norm, 1e-5 * norm) << params[k]["name"];
    EXPECT_NEAR(params[k]["update_ratio"].get<double>(), ratio, 1e-5 * ratio) << params[k]["name"];
  }
}

// The fused path (prepare_step, the optimizer's pass, after_fused_step) against the monitor's own passes
// (after_backward, before_step, after_step) on identical models: the same gradient norms bit for bit, update ratios
// within rounding, and the same message for a NaN in the gradient.
TEST(Monitor, FusedStepGivesTheSameFiguresAsItsOwnPasses) {
  Model<float> a = mlp("dense(70) relu dense(3)", {300}), b = mlp("dense(70) relu dense(3)", {300});
  const size_t n = a.num_params();
  MonitorConfig cfg;
  cfg.update_every = 2;  // steps 1 and 3 measure the ratio
  Monitor ma(a, cfg), mb(b, cfg);
  ma.begin_epoch();
  mb.begin_epoch();
  OptimizerConfig oc;
  oc.momentum = 0.9;
  Optimizer<float> oa(oc, n), ob(oc, n);
  Rng rng(5);
  for (int step = 0; step < 3; ++step) {
    for (size_t i = 0; i < n; ++i) a.grads()[i] = b.grads()[i] = float(rng.normal());
    ASSERT_FALSE(ma.after_backward());
    ma.before_step();
    oa.step_and_clear(a.params(), a.grads(), 0.01);
    ma.after_step();
    StepStats* st = mb.prepare_step();
    ASSERT_NE(st, nullptr);
    ob.step_and_clear(b.params(), b.grads(), 0.01, nullptr, st);
    ASSERT_FALSE(mb.after_fused_step());
    ASSERT_EQ(std::memcmp(a.params(), b.params(), n * 4), 0);
  }
  const auto ja = ma.end_epoch(), jb = mb.end_epoch();
  for (size_t k = 0; k < ja["params"].size(); ++k) {
    EXPECT_EQ(ja["params"][k]["grad_norm"].get<double>(), jb["params"][k]["grad_norm"].get<double>()) << k;
    const double ra = ja["params"][k]["update_ratio"].get<double>(), rb = jb["params"][k]["update_ratio"].get<double>();
    EXPECT_NEAR(ra, rb, 1e-12 * ra) << k;
  }
  EXPECT_EQ(ja["grad_norm"].get<double>(), jb["grad_norm"].get<double>());
  EXPECT_EQ(ja["grad_norm_max"].get<double>(), jb["grad_norm_max"].get<double>());
  // A NaN at element 40 of the first weight, an infinity at element 3 of the second: both paths name the first.
  for (size_t i = 0; i < n; ++i) a.grads()[i] = b.grads()[i] = 0.5f;
  const size_t w2 = size_t(a.layer(2).params()[0].grad - a.grads());
  a.grads()[40] = b.grads()[40] = std::nanf("");
  a.grads()[w2 + 3] = b.grads()[w2 + 3] = INFINITY;
  const auto bad_a = ma.after_backward();
  StepStats* st = mb.prepare_step();
  ob.step_and_clear(b.params(), b.grads(), 0.01, nullptr, st);
  const auto bad_b = mb.after_fused_step();
  ASSERT_TRUE(bad_a && bad_b);
  EXPECT_EQ(*bad_a, *bad_b);
  EXPECT_NE(bad_a->find("'0.weight' is NaN at element 40"), std::string::npos) << *bad_a;
}

// Conv channels: a channel is dead only if zero at every position of every example; one that fires once, at the
// last position of the last example of the second batch, is alive. Sparsity counts the batch's first 64K values
// (here: 341 whole examples and 64 values of the next, all of channel 0).
// The activation figures are taken while the forward pass runs, on the threads that made each range of examples
// (a ReLU after a dense layer or a direct convolution runs in its parallel loop). Against the same figures worked
// out from the layer outputs after the forward: dead units, sparsity (every value for dense units, the first 65536
// for conv channels), pre-activation mean and spread (the first 65536 values), over two batches of different sizes.
TEST(Monitor, ActivationFiguresTakenDuringTheForwardMatchTheOutputs) {
  set_threads(2);
  for (const auto& [arch, shape] : {std::pair<std::string, Shape>{"dense(96) relu dense(64) relu dense(10)", {300}},
                                    std::pair<std::string, Shape>{"conv(8,5,pad=2) relu maxpool(2) flatten dense(10)", {1, 28, 28}}}) {
    Model<float> m = mlp(arch.c_str(), shape);
    Monitor mon(m);
    mon.begin_epoch();
    const size_t D = numel(shape), L = m.num_layers();
    std::vector<std::vector<uint8_t>> alive(L);
    std::vector<double> zeros(L), counted(L), sum(L), sq(L), sampled(L);
    for (int n : {128, 70}) {
      const auto xd = test::random_vec(size_t(n) * D, uint64_t(n));
      std::vector<float> x(xd.begin(), xd.end());
      m.forward(x.data(), n, true);
      mon.after_forward(n);
      for (size_t k = 0; k < L; ++k) {
        if (!m.layer(k).activation()) continue;
        const Shape& os = m.layer(k).out_shape();
        const size_t U = os.size() == 3 ? size_t(os[0]) : numel(os), P = numel(os) / U, total = U * P * size_t(n);
        const float* y = m.layer_output(k);
        const float* pre = m.layer_input(k);
        alive[k].resize(U);
        for (size_t j = 0; j < total; ++j) alive[k][(j / P) % U] |= y[j] != 0.0f;
        const size_t c = P == 1 ? total : std::min<size_t>(total, 65536), s = std::min<size_t>(total, 65536);
        for (size_t j = 0; j < c; ++j) zeros[k] += y[j] == 0.0f;
        counted[k] += double(c);
        for (size_t j = 0; j < s; ++j) sum[k] += pre[j], sq[k] += double(pre[j]) * pre[j];
        sampled[k] += double(s);
      }
    }
    const auto layers = mon.end_epoch()["layers"];
    size_t watched = 0;
    for (size_t k = 0; k < L; ++k) watched += m.layer(k).activation() != nullptr;
    ASSERT_EQ(layers.size(), watched) << arch;
    for (const auto& l : layers) {
      const size_t k = l["layer"].get<size_t>();
      double dead = 0;
      for (uint8_t a : alive[k]) dead += !a;
      const double mean = sum[k] / sampled[k], sd = std::sqrt(sq[k] / sampled[k] - mean * mean);
      EXPECT_NEAR(l["dead_fraction"].get<double>(), dead / double(alive[k].size()), 1e-12) << arch << " layer " << k;
      EXPECT_NEAR(l["sparsity"].get<double>(), zeros[k] / counted[k], 1e-12) << arch << " layer " << k;
      EXPECT_GT(zeros[k], 0) << arch << " layer " << k;
      EXPECT_NEAR(l["pre_mean"].get<double>(), mean, 1e-5 * (1 + std::abs(mean))) << arch << " layer " << k;
      EXPECT_NEAR(l["pre_std"].get<double>(), sd, 1e-5 * sd) << arch << " layer " << k;
    }
  }
  set_threads(0);
}

TEST(Monitor, CountsDeadConvChannelsAcrossBatchesAndSparsityOnTheSample) {
  Model<float> m = mlp("conv(3,1) relu", {1, 8, 8});
  float* W = m.layer(0).params()[0].value;
  float* b = m.layer(0).params()[1].value;
  W[0] = 1; b[0] = -100;  // channel 0: dead
  W[1] = 1; b[1] = -0.5f;  // channel 1: active where x > 0.5
  W[2] = 0; b[2] = 1;      // channel 2: always active
  const int n = 400;
  std::vector<float> x(size_t(n) * 64, 0.25f);
  Monitor mon(m);
  mon.begin_epoch();
  m.forward(x.data(), n, true);
  mon.after_forward(n);
  x.back() = 0.9f;  // channel 1 fires once, at the very end of the second batch
  m.forward(x.data(), n, true);
  mon.after_forward(n);
  auto l = mon.end_epoch()["layers"][0];
  EXPECT_NEAR(l["dead_fraction"].get<double>(), 1.0 / 3, 1e-12);
  EXPECT_NEAR(l["sparsity"].get<double>(), (341.0 * 128 + 64) / 65536, 1e-12);
  mon.begin_epoch();  // the first batch alone: channels 0 and 1 dead
  x.back() = 0.25f;
  m.forward(x.data(), n, true);
  mon.after_forward(n);
  EXPECT_NEAR(mon.end_epoch()["layers"][0]["dead_fraction"].get<double>(), 2.0 / 3, 1e-12);
}

TEST(Monitor, DyingReluWarningFiresOnProvokedCaseOnly) {
  DataSplit d = load_data("moons:2000");
  auto run = [&](double lr, double bias) {
    InitSpec init;
    init.bias = bias;
    Model<float> m = mlp("dense(64) relu dense(64) relu dense(2)", {2}, 1, init);
    Monitor mon(m);
    TrainConfig c;
    c.epochs = 3;
    c.optimizer.lr = lr;
    c.stop_on_nonfinite = false;
    auto r = train(m, d, c, {}, &mon);
    int dying = 0;
    for (const auto& e : r.epochs)
      for (const auto& w : Monitor::warnings_from_json(e.diagnostics)) dying += w.kind == "dying_relu";
    return dying;
  };
  EXPECT_GT(run(1.0, -1.0), 0);
  EXPECT_EQ(run(0.05, 0.0), 0);
}

TEST(Monitor, VanishingGradientWarningForDeepSigmoidNotForReluHe) {
  DataSplit d = load_data("moons:1000");
  auto warnings = [&](const std::string& act, InitScheme s) {
    std::string arch;
    for (int i = 0; i < 9; ++i) arch += "dense(32) " + act + " ";
    InitSpec init;
    init.scheme = s;
    Model<float> m = mlp(arch + "dense(2)", {2}, 2, init);
    Monitor mon(m);
    TrainConfig c;
    c.epochs = 1;
    train(m, d, c, {}, &mon);
    int v = 0;
    for (const auto& w : mon.warnings()) v += w.kind == "vanishing_gradient";
    return v;
  };
  EXPECT_EQ(warnings("sigmoid", InitScheme::xavier_normal), 1);
  EXPECT_EQ(warnings("relu", InitScheme::he_normal), 0);
}

}  // namespace rectifier
