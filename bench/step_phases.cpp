// Where a training step's time goes: the trainer's phases timed one by one over many steps on a synthetic batch of
// 128 (forward, the monitor after forward, the loss, backward, the monitor after backward, the update with the
// monitor's update ratio), as in src/trainer.cpp: the monitor's gradient figures taken in the optimizer's pass,
// or with --unfused in passes of their own. The figures in docs/benchmarks.md, "What changed since run 9".
// usage: step_phases [ARCH=784-256-128-10] [THREADS=2] [STEPS=2000] [--no-backup] [--unfused]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include "rectifier/activation.h"
#include "rectifier/loss.h"
#include "rectifier/monitor.h"
#include "rectifier/optimizer.h"
#include "rectifier/trainer.h"

using namespace rectifier;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  std::vector<std::string> pos;
  bool backup_on = true, fused = true;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--no-backup") == 0) backup_on = false;
    else if (std::strcmp(argv[i], "--unfused") == 0) fused = false;
    else pos.emplace_back(argv[i]);
  }
  const std::string arch = pos.size() > 0 ? pos[0] : "784-256-128-10";
  const int threads = pos.size() > 1 ? std::atoi(pos[1].c_str()) : 2, steps = pos.size() > 2 ? std::atoi(pos[2].c_str()) : 2000;
  set_threads(threads);
  const Shape in{1, 28, 28};
  ArchContext ctx{in, 10, *parse_activation("relu")};
  Model<float> m(parse_arch(arch, ctx), in);
  m.init(InitSpec{}, 0);
  const int n = 128;
  m.reserve(n);
  std::vector<float> x(size_t(n) * 784), dout(size_t(n) * 10), backup(m.num_params());
  for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 7919) % 255) / 255.0f;
  std::vector<int32_t> y(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) y[size_t(i)] = i % 10;
  OptimizerConfig oc;
  oc.lr = 0.01;
  oc.momentum = 0.9;
  Optimizer<float> opt(oc, m.num_params());
  Monitor mon(m);
  mon.begin_epoch();
  m.zero_grad();
  const char* names[] = {"forward", "monitor after forward", "loss", "backward", "monitor after backward",
                         "update (+ update ratio)"};
  double t[6] = {0, 0, 0, 0, 0, 0};
  const int warmup = std::max(1, steps / 10);
  for (int s = 0; s < warmup + steps; ++s) {
    const auto a = Clock::now();
    const float* out = m.forward(x.data(), n, true);
    const auto b = Clock::now();
    mon.after_forward(n);
    const auto c = Clock::now();
    loss_forward_backward<float>(LossKind::cross_entropy, out, y.data(), n, 10, dout.data());
    const auto d = Clock::now();
    m.backward(dout.data(), n);
    const auto e = Clock::now();
    StepStats* st = fused ? mon.prepare_step() : nullptr;
    if (!st) (void)mon.after_backward();
    const auto f = Clock::now();
    if (!st) mon.before_step();
    opt.step_and_clear(m.params(), m.grads(), 0.01, backup_on ? backup.data() : nullptr, st);
    if (st) (void)mon.after_fused_step();
    else mon.after_step();
    const auto g = Clock::now();
    if (s < warmup) continue;
    const Clock::time_point at[7] = {a, b, c, d, e, f, g};
    for (int k = 0; k < 6; ++k) t[k] += std::chrono::duration<double>(at[k + 1] - at[k]).count();
  }
  double total = 0;
  for (double v : t) total += v;
  std::printf("%s, batch %d, %d threads, %d steps%s%s\n", arch.c_str(), n, threads, steps, backup_on ? "" : ", no last-good copy",
              fused ? "" : ", the monitor's own passes");
  for (int k = 0; k < 6; ++k) std::printf("  %-24s %9.1f us  %5.1f%%\n", names[k], t[k] / steps * 1e6, 100 * t[k] / total);
  std::printf("  %-24s %9.1f us\n", "step", total / steps * 1e6);
}
