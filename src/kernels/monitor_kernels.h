// The training monitor's per-batch loops over a layer's outputs (Monitor::observe, Monitor::after_forward): plain
// loops here, the references and the double versions; monitor_hwy.cpp has the float kernels, dispatched at run time
// and built without contraction into FMA, which give the same bits (and counts) on every target.
#pragma once
#include <cstddef>
#include <cstdint>

namespace rectifier::kernels {

// One example's outputs y[0, U) of a dense layer: act[u] |= (y[u] != 0) (a NaN counts as non-zero), and returns the
// number of zeros.
inline size_t mark_active_ref(const float* __restrict y, size_t U, int32_t* __restrict act) {
  size_t zeros = 0;
  for (size_t u = 0; u < U; ++u) {
    const int32_t nz = y[u] != 0.0f;
    act[u] |= nz;
    zeros += size_t(1 - nz);
  }
  return zeros;
}

// The moments' last step: the elements x[j, n) past the last 32 added in double, then the 32 lanes' sums in order.
inline void moments_finish(const float* __restrict x, size_t j, size_t n, const float* as, const float* ass,
                           double& sum, double& sq) {
  double s = 0, ss = 0;
  for (; j < n; ++j) s += double(x[j]), ss += double(x[j]) * x[j];
  for (size_t k = 0; k < 32; ++k) s += as[k], ss += ass[k];
  sum = s;
  sq = ss;
}

// Sum and sum of squares of x[0, n): in 32 float lanes (lane k takes elements k, k + 32, ...), then moments_finish.
inline void moments_ref(const float* __restrict x, size_t n, double& sum, double& sq) {
  float as[32] = {}, ass[32] = {};
  size_t j = 0;
  for (; j + 32 <= n; j += 32)
    for (size_t k = 0; k < 32; ++k) {
      as[k] += x[j + k];
      ass[k] += x[j + k] * x[j + k];
    }
  moments_finish(x, j, n, as, ass, sum, sq);
}

// The bin of a finite value x among bins [0, top]: (x - lo) * scale, clamped, truncated.
inline int hist_bin(float x, float lo, float scale, float top) {
  const float f = (x - lo) * scale;
  return int(f < 0.0f ? 0.0f : (f > top ? top : f));
}

// counts[hist_bin(x[j])] += 1 for the finite values x[0, n). counts holds four tables of `bins` counts each
// (counts[t * bins + b]): element j goes to table j % 4, so that a run of values in one bin does not make each
// increment wait for the one before; the caller adds the tables.
inline void histogram_ref(const float* __restrict x, size_t n, float lo, float scale, float top, int bins,
                          int32_t* __restrict counts) {
  for (size_t j = 0; j < n; ++j) ++counts[size_t(j % 4) * size_t(bins) + size_t(hist_bin(x[j], lo, scale, top))];
}

// The float kernels (monitor_hwy.cpp)
size_t mark_active(const float* y, size_t U, int32_t* act);
void moments(const float* x, size_t n, double& sum, double& sq);
void histogram(const float* x, size_t n, float lo, float scale, float top, int bins, int32_t* counts);

}  // namespace rectifier::kernels
