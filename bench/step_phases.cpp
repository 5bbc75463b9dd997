// Where a training step's time goes: the phases of bench/train_step.h (the trainer's step on a synthetic batch of
// 128) timed one by one over many steps; with --unfused the monitor's gradient figures come from passes of their
// own instead of the optimizer's. The figures in docs/benchmarks.md, "What changed since run 9".
// With --data SPEC (fashion-mnist, as `rectifier train --data`) each step takes the next batch of that training set,
// so that the activations are as sparse as in real training and the dense layers' sparse backward runs; the
// gathering of the batch is then the first phase.
// usage: step_phases [ARCH=784-256-128-10] [THREADS=2] [STEPS=2000] [--no-backup] [--unfused] [--no-diagnostics]
//                    [--data SPEC] [--flush-caches]
// With --flush-caches a pass over 64 MB (twice the L3, untimed) comes before each step, so that the step finds none
// of its data in any cache: an upper bound on what other guests filling the shared L3 can cost it.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>
#include "rectifier/trainer.h"
#include "train_step.h"

using namespace rectifier;
using Clock = std::chrono::steady_clock;

static int run(int argc, char** argv) {
  std::vector<std::string> pos;
  bool backup_on = true, fused = true, diagnostics = true, flush_caches = false;
  std::string data_spec, optimizer;
  double lr = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--no-backup") == 0) backup_on = false;
    else if (std::strcmp(argv[i], "--unfused") == 0) fused = false;
    else if (std::strcmp(argv[i], "--no-diagnostics") == 0) diagnostics = false;
    else if (std::strcmp(argv[i], "--flush-caches") == 0) flush_caches = true;
    else if (std::strcmp(argv[i], "--data") == 0 && i + 1 < argc) data_spec = argv[++i];
    else if (std::strcmp(argv[i], "--optimizer") == 0 && i + 1 < argc) optimizer = argv[++i];
    else if (std::strcmp(argv[i], "--lr") == 0 && i + 1 < argc) lr = std::atof(argv[++i]);
    else if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::puts("usage: step_phases [ARCH=784-256-128-10] [THREADS=2] [STEPS=2000] [--no-backup] [--unfused]\n"
                "                   [--no-diagnostics] [--data SPEC] [--flush-caches] [--optimizer NAME [--lr LR]]\n"
                "Times a training step of the reference task phase by phase (docs/benchmarks.md): SGD with momentum\n"
                "0.9, or --optimizer adam|adamw|rmsprop|sgd with the trainer's other defaults, at LR (default 0.001,\n"
                "or 0.05 for sgd).");
      return 0;
    }
    else pos.emplace_back(argv[i]);
  }
  const std::string arch = pos.size() > 0 ? pos[0] : "784-256-128-10";
  const int threads = pos.size() > 1 ? std::atoi(pos[1].c_str()) : 2, steps = pos.size() > 2 ? std::atoi(pos[2].c_str()) : 2000;
  set_threads(threads);
  std::optional<DataSplit> data;
  if (!data_spec.empty()) data = load_data(data_spec);
  std::optional<OptimizerConfig> opt;
  if (!optimizer.empty()) {
    const auto kind = parse_optimizer(optimizer);
    if (!kind) throw std::runtime_error("unknown optimizer '" + optimizer + "' (sgd, adam, adamw, rmsprop)");
    opt.emplace();
    opt->kind = *kind;
    opt->lr = lr > 0 ? lr : *kind == OptKind::sgd ? 0.05 : 0.001;
  }
  bench::TrainStep step(arch, diagnostics, fused, backup_on, data ? &data->train : nullptr, opt);
  double t[bench::kPhases] = {};
  std::vector<double> each;  // every timed step, for the spread
  each.reserve(size_t(steps));
  const int warmup = std::max(1, steps / 10);
  std::vector<float> flush(flush_caches ? size_t(64) << 20 >> 2 : 0);  // 64 MB: twice the L3
  for (int s = 0; s < warmup + steps; ++s) {
    if (!flush.empty()) {  // untimed: the step then reads all its data from memory
#pragma omp parallel for schedule(static)
      for (size_t i = 0; i < flush.size(); i += 16) flush[i] += 1.0f;
    }
    const auto first = Clock::now();
    auto last = first;
    step.run([&](bench::Phase p) {
      const auto now = Clock::now();
      if (s >= warmup) t[p] += std::chrono::duration<double>(now - last).count();
      last = now;
    });
    if (s >= warmup) each.push_back(std::chrono::duration<double>(last - first).count());
  }
  double total = 0;
  for (double v : t) total += v;
  char lr_text[32];
  std::snprintf(lr_text, sizeof lr_text, "%g", opt ? opt->lr : 0.0);
  const std::string opt_text = opt ? ", " + optimizer_name(opt->kind) + " lr " + lr_text : "";
  std::printf("%s, batch %d, %d threads, %d steps%s%s%s%s%s%s\n", arch.c_str(), bench::TrainStep::kBatch, threads,
              steps,
              opt_text.c_str(),
              data ? (", batches of " + data_spec).c_str() : ", a synthetic batch",
              backup_on ? "" : ", no last-good copy", fused ? "" : ", the monitor's own passes",
              diagnostics ? "" : ", no diagnostics", flush_caches ? ", caches flushed before each step" : "");
  for (int k = 0; k < bench::kPhases; ++k)
    std::printf("  %-24s %9.1f us  %5.1f%%\n", bench::kPhaseNames[k], t[k] / steps * 1e6, 100 * t[k] / total);
  std::printf("  %-24s %9.1f us\n", "step", total / steps * 1e6);
  // The spread: whether a slow run is every step a little slower or a few steps much slower (a stalled thread).
  std::sort(each.begin(), each.end());
  auto at = [&](double f) { return each[std::min(each.size() - 1, size_t(f * double(each.size())))] * 1e6; };
  std::printf("  steps: min %.0f, 10%% %.0f, median %.0f, 90%% %.0f, 99%% %.0f, max %.0f us\n", at(0), at(0.1), at(0.5),
              at(0.9), at(0.99), at(1));
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // a bad architecture or data spec: one line, not an abort
    std::fprintf(stderr, "step_phases: %s\n", e.what());
    return 1;
  }
}
