// Fast activation kernels. ReLU, the hot one, goes to the Highway kernels (relu_hwy.cpp), sigmoid, tanh, ELU, SELU,
// GELU, SiLU, softplus and mish to act_hwy.cpp (both dispatched at run time); the others (and double) run the shared math
// in a loop the switch sits outside of. OpenMP splits large arrays.
#include <cstddef>
#include "kernels/parallel.h"
#include "rectifier/activation.h"

namespace rectifier {

namespace {
constexpr size_t kParallelMin = size_t(1) << 16;  // below this, threads cost more than they save

// f(begin, end) over fixed chunks of [0, n).
template <class T, class F>
void parallel_chunks(size_t n, F&& f) {
  kernels::parallel_chunks(n, size_t(1) << 14, [&](size_t lo, size_t len) { f(lo, lo + len); });
}
}  // namespace

template <class T>
void act_forward(const Activation& a, const T* x, T* y, size_t n) {
  if constexpr (std::is_same_v<T, float>) {
    if (a.kind == Act::relu) {
      relu_forward(x, y, nullptr, n);
      return;
    }
    if (a.kind == Act::sigmoid) { sigmoid_forward(x, y, n); return; }
    if (a.kind == Act::tanh) { tanh_forward(x, y, n); return; }
    if (smooth_forward(a, x, y, n)) return;
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
      relu_backward(x, dy, dx, n);
      return;
    }
    if (smooth_backward(a, x, dy, dx, n)) return;
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
