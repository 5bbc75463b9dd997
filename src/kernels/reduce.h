// Sums the monitor and the optimizer share: the optimizer takes the monitor's figures in its own pass, and
// sum_squares gives both the same bits for the same values.
#pragma once
#include <algorithm>
#include <cstddef>

namespace rectifier::kernels {

// Float sums run in kLanes independent lanes: several vectors of partial sums, so that the adds do not wait on one
// another (a single vector accumulator made these loops latency-bound, three times slower).
constexpr size_t kLanes = 32;

// Sum of squares of x[0, n): in T within blocks of 4096, the blocks added in double in order. Serial (callers run it
// inside their own parallel loops). The plain loop: the reference, and the double version.
template <class T>
double sum_squares_ref(const T* x, size_t n) {
  double ss = 0;
  for (size_t lo = 0; lo < n; lo += 4096) {
    const size_t hi = std::min(n, lo + 4096);
    T acc[kLanes] = {};
    size_t j = lo;
    for (; j + kLanes <= hi; j += kLanes)
#pragma omp simd
      for (size_t k = 0; k < kLanes; ++k) acc[k] += x[j + k] * x[j + k];
    T f = 0;
    for (; j < hi; ++j) f += x[j] * x[j];
    for (size_t k = 0; k < kLanes; ++k) f += acc[k];
    ss += double(f);
  }
  return ss;
}

// The float version: optim_hwy.cpp, dispatched at run time, the same bits as sum_squares_ref on every target.
double sum_squares(const float* x, size_t n);
inline double sum_squares(const double* x, size_t n) { return sum_squares_ref(x, n); }

// The update-to-weight ratio's two sums over [0, n), in double: adds sum (now - was)^2 to du and sum was^2 to w.
template <class T>
void add_update_sums(const T* now, const T* was, size_t n, double& du, double& w) {
  double a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
  for (size_t j = 0; j < n; ++j) {
    const double d = double(now[j]) - double(was[j]);
    a += d * d;
    b += double(was[j]) * double(was[j]);
  }
  du += a;
  w += b;
}

}  // namespace rectifier::kernels
