// How fast each core computes, over time: one thread pinned to each core runs independent multiply-add chains and
// counts its rounds in windows of 200 ms. On a shared host the cores can slow down independently of one another
// (presumably a hardware twin busy with another guest); this shows by how much and for how long, which decides how
// the threads of a parallel product should share it (see SplitBalance in src/kernels/gemm.h and docs/benchmarks.md).
// usage: core_speed [SECONDS]   prints one line per window (each core's rate relative to the best window seen on
// any core) and a summary.
//        core_speed [SECONDS] --throughput
//   The same cores, but each thread keeps the multiply-add units full (12 independent 8-wide FMA chains with AVX2,
//   else 4-wide multiply and add), and the windows take turns: each core alone, then all of them at once. The
//   chains above are bound by latency, and a hardware twin busy with another guest hardly slows them; this mode sees
//   what a matrix product sees: how much of a core's throughput a thread gets alone and with the others running.
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

std::atomic<bool> stop{false};

void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

// Throughput mode: while active is set, rounds of 2000 steps of 12 independent chains, their floating-point
// operations added to flops; idle (sleeping) while it is not. One kernel for AVX2 with FMA, one for plain SSE, each
// a whole round in one function so that its chains stay in registers.
__attribute__((target("avx2,fma"))) void round_avx2(float* state) {
  __m256 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm256_loadu_ps(state + 8 * i);
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (int r = 0; r < 2000; ++r)
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], m, c);
  for (int i = 0; i < 12; ++i) _mm256_storeu_ps(state + 8 * i, a[i]);
}
void round_sse(float* state) {
  __m128 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm_loadu_ps(state + 4 * i);
  const __m128 m = _mm_set1_ps(0.999999f), c = _mm_set1_ps(1e-7f);
  for (int r = 0; r < 2000; ++r)
    for (int i = 0; i < 12; ++i) a[i] = _mm_add_ps(_mm_mul_ps(a[i], m), c);
  for (int i = 0; i < 12; ++i) _mm_storeu_ps(state + 4 * i, a[i]);
}
void fill(int cpu, const std::atomic<bool>* active, std::atomic<double>* flops) {
  pin(cpu);
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const double per_round = 2000.0 * 12 * (avx2 ? 8 : 4) * 2;
  std::vector<float> state(96);
  for (size_t i = 0; i < state.size(); ++i) state[i] = 1.0f + float(i) * 1e-3f;
  while (!stop.load(std::memory_order_relaxed)) {
    if (!active->load(std::memory_order_relaxed)) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    if (avx2) round_avx2(state.data());
    else round_sse(state.data());
    flops->store(flops->load(std::memory_order_relaxed) + per_round, std::memory_order_relaxed);
  }
  volatile float sink = state[0];
  (void)sink;
}

// Windows of 200 ms in turn: core 0 alone, core 1 alone, ..., all cores together; GFLOP/s per core and window.
int throughput(int seconds, int cores) {
  const size_t n = size_t(cores);
  std::vector<std::atomic<bool>> active(n);
  std::vector<std::atomic<double>> flops(n);
  for (size_t c = 0; c < n; ++c) { active[c] = false; flops[c] = 0; }
  std::vector<std::thread> threads;
  for (int c = 0; c < cores; ++c) threads.emplace_back(fill, c, &active[size_t(c)], &flops[size_t(c)]);
  std::vector<std::vector<double>> alone(n), together(n);
  const int turns = cores + 1;
  for (int w = 0; w < seconds * 5; ++w) {
    const int turn = w % turns;  // < cores: that core alone; == cores: all
    for (size_t c = 0; c < n; ++c) active[c] = turn == cores || int(c) == turn;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the others stop, the chosen ones start
    std::vector<double> before(n);
    for (size_t c = 0; c < n; ++c) before[c] = flops[c].load();
    const auto t0 = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::chrono::milliseconds(180));
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%5.1f s  %-8s", 0.2 * double(w + 1), turn == cores ? "all" : ("core " + std::to_string(turn)).c_str());
    for (size_t c = 0; c < n; ++c) {
      if (!active[c]) continue;
      const double g = (flops[c].load() - before[c]) / dt / 1e9;
      (turn == cores ? together : alone)[c].push_back(g);
      std::printf("  core %zu %6.1f GFLOP/s", c, g);
    }
    std::printf("\n");
  }
  stop = true;
  for (auto& t : threads) t.join();
  auto median = [](std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  double sum_alone = 0, sum_together = 0;
  for (size_t c = 0; c < n; ++c) {
    const double a = median(alone[c]), t = median(together[c]);
    sum_alone += a;
    sum_together += t;
    std::printf("core %zu: alone %.1f GFLOP/s (median of %zu windows), with all the others running %.1f (%.0f%%)\n", c, a,
                alone[c].size(), t, a > 0 ? 100 * t / a : 0.0);
  }
  std::printf("all %d cores together: %.1f GFLOP/s, %.2fx one core alone (the medians)\n", cores, sum_together,
              sum_alone > 0 ? sum_together / (sum_alone / double(cores)) : 0.0);
  return 0;
}

void spin(int cpu, std::atomic<long>* rounds) {
  pin(cpu);
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
  int seconds = 20;
  bool thru = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--throughput") == 0) thru = true;
    else if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::puts("usage: core_speed [SECONDS=20] [--throughput]\n"
                "Each core's compute rate over time, in windows of 200 ms (bench/core_speed.cpp, docs/benchmarks.md).");
      return 0;
    } else if (std::atoi(argv[i]) > 0) seconds = std::atoi(argv[i]);
    else {
      std::fprintf(stderr, "core_speed: unknown argument '%s' (usage: core_speed [SECONDS=20] [--throughput])\n", argv[i]);
      return 2;
    }
  }
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  if (thru) return throughput(seconds, cores);
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
