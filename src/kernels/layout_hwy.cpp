// kernels/layout.h in Highway: 4 channels by 4 pixels per 4 x 4 transpose (16-byte loads and stores), the channels
// and pixels left over (C or W not a multiple of 4) one at a time. On the reference CNN's second convolution, the
// Winograd forward's copy into its grid was 13% of that kernel one float at a time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/layout_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cstddef>

#include "kernels/layout.h"
#include "kernels/transpose-inl.h"

HWY_BEFORE_NAMESPACE();
namespace rectifier::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET != HWY_SCALAR
// Four runs of 4 floats, ss apart from src, into four runs of 4, os apart from dst, transposed: run q of dst holds
// element q of each source run.
HWY_INLINE void Block4(const float* HWY_RESTRICT src, size_t ss, float* HWY_RESTRICT dst, size_t os) {
  const hn::CappedTag<float, 4> d4;
  hn::Vec<decltype(d4)> in[4], out[4];
  for (int q = 0; q < 4; ++q) in[q] = hn::LoadU(d4, src + size_t(q) * ss);
  Transpose4(d4, in, out);
  for (int q = 0; q < 4; ++q) hn::StoreU(out[q], d4, dst + size_t(q) * os);
}
#endif

void ChwToHwc(const float* HWY_RESTRICT x, int C, int H, int W, float* HWY_RESTRICT g, size_t wg, size_t cp) {
  const size_t plane = size_t(H) * size_t(W);
  for (int y = 0; y < H; ++y) {
    float* row = g + size_t(y) * wg * cp;
    const float* src = x + size_t(y) * size_t(W);  // channel 0's row y
    int c = 0;
#if HWY_TARGET != HWY_SCALAR
    for (; hn::Lanes(hn::CappedTag<float, 4>()) == 4 && c + 4 <= C; c += 4) {
      const float* s = src + size_t(c) * plane;
      int j = 0;
      // 4 channels' rows of 4 pixels into 4 pixels' runs of 4 channels
      for (; j + 4 <= W; j += 4) Block4(s + size_t(j), plane, row + size_t(j) * cp + size_t(c), cp);
      for (; j < W; ++j)
        for (int q = 0; q < 4; ++q) row[size_t(j) * cp + size_t(c + q)] = s[size_t(q) * plane + size_t(j)];
    }
#endif
    for (; c < C; ++c)
      for (int j = 0; j < W; ++j) row[size_t(j) * cp + size_t(c)] = src[size_t(c) * plane + size_t(j)];
  }
}

void HwcToChw(const float* HWY_RESTRICT g, size_t wg, size_t cp, int C, int H, int W, float* HWY_RESTRICT x) {
  const size_t plane = size_t(H) * size_t(W);
  for (int y = 0; y < H; ++y) {
    const float* row = g + size_t(y) * wg * cp;
    float* dst = x + size_t(y) * size_t(W);  // channel 0's row y
    int c = 0;
#if HWY_TARGET != HWY_SCALAR
    for (; hn::Lanes(hn::CappedTag<float, 4>()) == 4 && c + 4 <= C; c += 4) {
      float* o = dst + size_t(c) * plane;
      int j = 0;
      // 4 pixels' runs of 4 channels into 4 channels' rows of 4 pixels
      for (; j + 4 <= W; j += 4) Block4(row + size_t(j) * cp + size_t(c), cp, o + size_t(j), plane);
      for (; j < W; ++j)
        for (int q = 0; q < 4; ++q) o[size_t(q) * plane + size_t(j)] = row[size_t(j) * cp + size_t(c + q)];
    }
#endif
    for (; c < C; ++c)
      for (int j = 0; j < W; ++j) dst[size_t(c) * plane + size_t(j)] = row[size_t(j) * cp + size_t(c)];
  }
}

}  // namespace rectifier::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace rectifier::kernels {
HWY_EXPORT(ChwToHwc);
HWY_EXPORT(HwcToChw);

void chw_to_hwc(const float* x, int C, int H, int W, float* g, size_t wg, size_t cp) {
  HWY_DYNAMIC_DISPATCH(ChwToHwc)(x, C, H, W, g, wg, cp);
}

void hwc_to_chw(const float* g, size_t wg, size_t cp, int C, int H, int W, float* x) {
  HWY_DYNAMIC_DISPATCH(HwcToChw)(g, wg, cp, C, H, W, x);
}

}  // namespace rectifier::kernels
#endif  // HWY_ONCE
