// Sums the monitor and the optimizer share, so that both give the same bits for the same values.
#pragma once
#include <algorithm>
#include <cstddef>

namespace rectifier::kernels {

// Float sums run in kLanes independent lanes: several vectors of partial sums, so that the adds do not wait on one
// another (a single vector accumulator made these loops latency-bound, three times slower).
constexpr size_t kLanes = 32;

// Sum of squares of x[0, n): in T within blocks of 4096, the blocks added in double in order. Serial (callers run it
// inside their own parallel loops).
template <class T>
double sum_squares(const T* x, size_t n) {
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

}  // namespace rectifier::kernels
