// Per-target 4 x 4 transposes shared by the Highway kernels that move images between channel planes (CHW) and
// pixels of channels (HWC): layout_hwy.cpp, winograd_hwy.cpp. Included once per target after <hwy/highway.h>, with
// Highway's per-target include guard.
#if defined(RECTIFIER_KERNELS_TRANSPOSE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef RECTIFIER_KERNELS_TRANSPOSE_INL_H_
#undef RECTIFIER_KERNELS_TRANSPOSE_INL_H_
#else
#define RECTIFIER_KERNELS_TRANSPOSE_INL_H_
#endif

#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace rectifier::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET != HWY_SCALAR
// 4 x 4 transposes within each 128-bit block: lane 4 blk + i of out[q] is lane 4 blk + q of in[i].
template <class D, class V>
HWY_INLINE void Transpose4(D d, const V* in, V* out) {
  const hn::Repartition<double, D> dd;
  const auto ab0 = hn::BitCast(dd, hn::InterleaveLower(d, in[0], in[1]));  // per block: a0 b0 a1 b1
  const auto ab1 = hn::BitCast(dd, hn::InterleaveUpper(d, in[0], in[1]));  // a2 b2 a3 b3
  const auto cd0 = hn::BitCast(dd, hn::InterleaveLower(d, in[2], in[3]));
  const auto cd1 = hn::BitCast(dd, hn::InterleaveUpper(d, in[2], in[3]));
  out[0] = hn::BitCast(d, hn::InterleaveLower(dd, ab0, cd0));  // a0 b0 c0 d0
  out[1] = hn::BitCast(d, hn::InterleaveUpper(dd, ab0, cd0));
  out[2] = hn::BitCast(d, hn::InterleaveLower(dd, ab1, cd1));
  out[3] = hn::BitCast(d, hn::InterleaveUpper(dd, ab1, cd1));
}
#endif

}  // namespace rectifier::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // RECTIFIER_KERNELS_TRANSPOSE_INL_H_
