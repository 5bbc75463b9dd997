// kernels/convert.h in Highway: a vector of bytes widened to 32-bit integers, converted and scaled. The loop the
// compiler made of the plain one for the baseline x86-64 target (SSE2) took 40-45 us of the reference MLP's step to
// gather a batch of 128 images.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/convert_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/convert.h"

HWY_BEFORE_NAMESPACE();
namespace rectifier::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void ScaleBytes(const uint8_t* HWY_RESTRICT src, size_t n, float scale, float* HWY_RESTRICT dst) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<int32_t, decltype(df)> di;
  const hn::Rebind<uint8_t, decltype(df)> db;
  const size_t L = hn::Lanes(df);
  const auto s = hn::Set(df, scale);
  size_t j = 0;
  for (; j + 2 * L <= n; j += 2 * L) {
    const auto a = hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(db, src + j)));
    const auto b = hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(db, src + j + L)));
    hn::StoreU(hn::Mul(a, s), df, dst + j);
    hn::StoreU(hn::Mul(b, s), df, dst + j + L);
  }
  scale_bytes_ref(src + j, n - j, scale, dst + j);
}

}  // namespace rectifier::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace rectifier::kernels {
HWY_EXPORT(ScaleBytes);

void scale_bytes(const uint8_t* src, size_t n, float scale, float* dst) {
  HWY_DYNAMIC_DISPATCH(ScaleBytes)(src, n, scale, dst);
}

}  // namespace rectifier::kernels
#endif  // HWY_ONCE
