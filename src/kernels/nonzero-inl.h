// Per-target helpers shared by the Highway kernels that walk a row's non-zero entries (packed_hwy.cpp: the dense
// layers' sparse-input product; conv_hwy.cpp: the first convolution's weight gradient). Included once per target
// after <hwy/highway.h>, with Highway's per-target include guard.
#if defined(RECTIFIER_KERNELS_NONZERO_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RECTIFIER_KERNELS_NONZERO_INL_H_
#undef RECTIFIER_KERNELS_NONZERO_INL_H_
#else
#define RECTIFIER_KERNELS_NONZERO_INL_H_
#endif

#include <hwy/highway.h>

#include <cstddef>
#include <cstdint>

HWY_BEFORE_NAMESPACE();
namespace rectifier::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Bit j set where x[j] != 0, for j < n <= 64 (-0 counts as zero; a NaN as non-zero): whole vectors compared at
// once, the last fewer than a vector's lanes one by one (nothing past x[n) is read; Highway's MaskedLoad would not
// do: on SSE4 and below it is an aligned load of the whole vector). The callers visit the set bits in order
// (__builtin_ctzll), so only the non-zero entries cost anything more.
template <class D>
HWY_INLINE uint64_t NonzeroBits(D d, const float* HWY_RESTRICT x, int n) {
  const int L = int(hn::Lanes(d));
  const auto zero = hn::Zero(d);
  uint64_t bits = 0;
  int j = 0;
  for (; j + L <= n; j += L) {
    uint8_t mb[8] = {};
    // Not(Eq), not Ne: Highway's Ne is an ordered compare on AVX2 and AVX-512 (false for a NaN), where C++'s != is
    // true; with Ne, a NaN input was skipped there, and did not reach the product.
    hn::StoreMaskBits(d, hn::Not(hn::Eq(hn::LoadU(d, x + j), zero)), mb);
    uint64_t w = 0;
    for (int b = 0; b < (L + 7) / 8; ++b) w |= uint64_t(mb[b]) << (8 * b);
    bits |= w << j;
  }
  for (; j < n; ++j) bits |= uint64_t(x[j] != 0.0f) << j;
  return bits;
}

}  // namespace rectifier::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // RECTIFIER_KERNELS_NONZERO_INL_H_
