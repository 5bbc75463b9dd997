// How fast each core computes, over time: one thread pinned to each core runs independent multiply-add chains and
// counts its rounds in windows of 200 ms. On a shared host the cores can slow down independently of one another
// (presumably a hardware twin busy with another guest); this shows by how much and for how long, which decides how
// the threads of a parallel product should share it (see SplitBalance in src/kernels/gemm.h and docs/benchmarks.md).
// usage: core_speed [SECONDS]   prints one line per window (each core's rate relative to the best window seen on
// any core) and a summary.
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

std::atomic<bool> stop{false};

void spin(int cpu, std::atomic<long>* rounds) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  float a[16];
  for (int i = 0; i < 16; ++i) a[i] = 1.0f + float(i) * 1e-3f;
  while (!stop.load(std::memory_order_relaxed)) {
    for (int r = 0; r < 20000; ++r)
      for (int i = 0; i < 16; ++i) a[i] = a[i] * 0.999999f + 1e-7f;  // 16 independent chains
    rounds->fetch_add(1, std::memory_order_relaxed);
  }
  volatile float sink = a[0];
  (void)sink;
}

}  // namespace

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 20;
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  const size_t n = static_cast<size_t>(cores);
  std::vector<std::atomic<long>> rounds(n);
  std::vector<std::thread> threads;
  for (int c = 0; c < cores; ++c) threads.emplace_back(spin, c, &rounds[size_t(c)]);
  std::vector<long> last(n, 0);
  std::vector<std::vector<long>> rate(n);
  for (int w = 0; w < seconds * 5; ++w) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    for (int c = 0; c < cores; ++c) {
      const long now = rounds[size_t(c)].load();
      rate[size_t(c)].push_back(now - last[size_t(c)]);
      last[size_t(c)] = now;
    }
  }
  stop = true;
  for (auto& t : threads) t.join();
  long best = 1;
  for (const auto& r : rate) best = std::max(best, *std::max_element(r.begin(), r.end()));
  const size_t windows = rate[0].size();
  size_t uneven = 0;
  for (size_t w = 0; w < windows; ++w) {
    long lo = rate[0][w], hi = rate[0][w];
    std::printf("%5.1f s", 0.2 * double(w + 1));
    for (int c = 0; c < cores; ++c) {
      lo = std::min(lo, rate[size_t(c)][w]);
      hi = std::max(hi, rate[size_t(c)][w]);
      std::printf("  core %d %3.0f%%", c, 100.0 * double(rate[size_t(c)][w]) / double(best));
    }
    std::printf("\n");
    uneven += double(lo) < 0.85 * double(hi);
  }
  for (int c = 0; c < cores; ++c) {
    std::vector<long> r = rate[size_t(c)];
    std::sort(r.begin(), r.end());
    std::printf("core %d: slowest %.0f%%, median %.0f%%, fastest %.0f%% of the best window\n", c,
                100.0 * double(r.front()) / double(best), 100.0 * double(r[r.size() / 2]) / double(best),
                100.0 * double(r.back()) / double(best));
  }
  std::printf("windows where the slowest core ran below 85%% of the fastest: %zu of %zu (%.0f%%)\n", uneven, windows,
              100.0 * double(uneven) / double(windows));
}
