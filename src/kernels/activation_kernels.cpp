// Fast activation kernels. ReLU, the hot one, has hand-shaped loops compiled for AVX-512, AVX2 and baseline x86-64
// and picked at load time (target_clones); the other activations run the shared math in a loop the switch sits
// outside of. OpenMP splits large arrays over the cores.
#include <cstddef>
#include "rectifier/activation.h"

namespace rectifier {

namespace {
constexpr size_t kParallelMin = size_t(1) << 16;  // below this, threads cost more than they save

#define RECTIFIER_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

RECTIFIER_CLONES void relu_forward_f32(const float* __restrict x, float* __restrict y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}
RECTIFIER_CLONES void relu_backward_f32(const float* __restrict x, const float* __restrict dy, float* __restrict dx,
                                        size_t n) {
  for (size_t i = 0; i < n; ++i) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

template <class T, class F>
void parallel_chunks(size_t n, F&& f) {
  if (n < kParallelMin) { f(size_t(0), n); return; }
  constexpr size_t chunk = 1 << 14;
  const long chunks = long((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(static)
  for (long c = 0; c < chunks; ++c) {
    size_t lo = size_t(c) * chunk, hi = lo + chunk < n ? lo + chunk : n;
    f(lo, hi);
  }
}
}  // namespace

template <class T>
void act_forward(const Activation& a, const T* x, T* y, size_t n) {
  if constexpr (std::is_same_v<T, float>) {
    if (a.kind == Act::relu) {
      parallel_chunks<T>(n, [&](size_t lo, size_t hi) { relu_forward_f32(x + lo, y + lo, hi - lo); });
      return;
    }
  }
  const T p = T(a.param);
  dispatch_act(a.kind, [&]<Act K>() {
    parallel_chunks<T>(n, [&](size_t lo, size_t hi) {
      for (size_t i = lo; i < hi; ++i) y[i] = act_value_k<K, T>(x[i], p);
    });
  });
}

template <class T>
void act_backward(const Activation& a, const T* x, const T* dy, T* dx, size_t n) {
  if constexpr (std::is_same_v<T, float>) {
    if (a.kind == Act::relu && a.param == 0) {
      parallel_chunks<T>(n, [&](size_t lo, size_t hi) { relu_backward_f32(x + lo, dy + lo, dx + lo, hi - lo); });
      return;
    }
  }
  const T p = T(a.param);
  dispatch_act(a.kind, [&]<Act K>() {
    parallel_chunks<T>(n, [&](size_t lo, size_t hi) {
      for (size_t i = lo; i < hi; ++i) dx[i] = dy[i] * act_derivative_k<K, T>(x[i], p);
    });
  });
}

template void act_forward<float>(const Activation&, const float*, float*, size_t);
template void act_forward<double>(const Activation&, const double*, double*, size_t);
template void act_backward<float>(const Activation&, const float*, const float*, float*, size_t);
template void act_backward<double>(const Activation&, const double*, const double*, double*, size_t);

}  // namespace rectifier
