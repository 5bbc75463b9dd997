// The monitor's loops (kernels/monitor_kernels.h) in Highway, dispatched at run time. Built without contraction into
// FMA (CMakeLists.txt): each lane does the reference's operations in its order, so every target gives its bits.
// Before, these loops were compiled for baseline x86-64 (SSE2) inside monitor.cpp. In-process A/B on the reference
// MLP with diagnostics (steps alternated in runs of 8 at random, means of 2000 each): the monitor after the forward
// pass (the histogram, every 8th batch) 9.9-10.0 -> 2.8-3.1 us; the step 0.981-0.985 of its time on 1 thread,
// 0.986-0.992 on 2.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/monitor_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cstddef>
#include <cstdint>

#include "kernels/monitor_kernels.h"

HWY_BEFORE_NAMESPACE();
namespace rectifier::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

size_t MarkActive(const float* HWY_RESTRICT y, size_t U, int32_t* HWY_RESTRICT act) {
  const hn::ScalableTag<float> d;
  const hn::RebindToSigned<decltype(d)> di;
  const size_t L = hn::Lanes(d);
  const auto zero = hn::Zero(d);
  const auto one = hn::Set(di, 1);
  size_t nonzero = 0, u = 0;
  for (; u + L <= U; u += L) {
    // not equal to zero, a NaN included (hn::Ne is an ordered compare: false for a NaN, where C++'s != is true)
    const auto nz = hn::Not(hn::Eq(hn::LoadU(d, y + u), zero));
    hn::StoreU(hn::Or(hn::LoadU(di, act + u), hn::IfThenElseZero(hn::RebindMask(di, nz), one)), di, act + u);
    nonzero += hn::CountTrue(d, nz);
  }
  return (u - nonzero) + mark_active_ref(y + u, U - u, act + u);
}

void Moments(const float* HWY_RESTRICT x, size_t n, double& sum, double& sq) {
#if HWY_TARGET == HWY_SCALAR
  moments_ref(x, n, sum, sq);
#else
  const hn::ScalableTag<float> d;
  constexpr size_t kV = 32 / HWY_LANES(float);
  static_assert(kV * HWY_LANES(float) == 32, "the lanes are whole vectors");
  const size_t L = hn::Lanes(d);
  hn::Vec<decltype(d)> as[kV], ass[kV];
  for (size_t v = 0; v < kV; ++v) as[v] = ass[v] = hn::Zero(d);
  size_t j = 0;
  for (; j + 32 <= n; j += 32)
    for (size_t v = 0; v < kV; ++v) {
      const auto xv = hn::LoadU(d, x + j + v * L);
      as[v] = hn::Add(as[v], xv);
      ass[v] = hn::Add(ass[v], hn::Mul(xv, xv));
    }
  HWY_ALIGN float la[32], lq[32];
  for (size_t v = 0; v < kV; ++v) {
    hn::Store(as[v], d, la + v * L);
    hn::Store(ass[v], d, lq + v * L);
  }
  moments_finish(x, j, n, la, lq, sum, sq);
#endif
}

// The bins of 64 values at a time in vectors, then the increments, each into table j % 4.
void Histogram(const float* HWY_RESTRICT x, size_t n, float lo, float scale, float top, int bins,
               int32_t* HWY_RESTRICT counts) {
  const hn::ScalableTag<float> d;
  const hn::RebindToSigned<decltype(d)> di;
  const size_t L = hn::Lanes(d), B = size_t(bins);
  const auto vlo = hn::Set(d, lo), vscale = hn::Set(d, scale), vtop = hn::Set(d, top), zero = hn::Zero(d);
  HWY_ALIGN int32_t bin[64];
  size_t j = 0;
  for (; j + 64 <= n; j += 64) {
    for (size_t v = 0; v < 64; v += L) {
      const auto f = hn::Mul(hn::Sub(hn::LoadU(d, x + j + v), vlo), vscale);
      // f < 0 -> 0, f > top -> top, as hist_bin (a finite f; -0 truncates to 0 either way)
      const auto c = hn::IfThenElse(hn::Lt(f, zero), zero, hn::IfThenElse(hn::Gt(f, vtop), vtop, f));
      hn::Store(hn::ConvertTo(di, c), di, bin + v);
    }
    for (size_t v = 0; v < 64; v += 4) {
      ++counts[size_t(bin[v])];
      ++counts[B + size_t(bin[v + 1])];
      ++counts[2 * B + size_t(bin[v + 2])];
      ++counts[3 * B + size_t(bin[v + 3])];
    }
  }
  for (; j < n; ++j) ++counts[size_t(j % 4) * B + size_t(hist_bin(x[j], lo, scale, top))];
}

}  // namespace rectifier::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace rectifier::kernels {
HWY_EXPORT(MarkActive);
HWY_EXPORT(Moments);
HWY_EXPORT(Histogram);

size_t mark_active(const float* y, size_t U, int32_t* act) { return HWY_DYNAMIC_DISPATCH(MarkActive)(y, U, act); }
void moments(const float* x, size_t n, double& sum, double& sq) { HWY_DYNAMIC_DISPATCH(Moments)(x, n, sum, sq); }
void histogram(const float* x, size_t n, float lo, float scale, float top, int bins, int32_t* counts) {
  HWY_DYNAMIC_DISPATCH(Histogram)(x, n, lo, scale, top, bins, counts);
}
}  // namespace rectifier::kernels
#endif  // HWY_ONCE
