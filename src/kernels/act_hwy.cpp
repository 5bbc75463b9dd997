// Sigmoid and tanh forward in Highway (vector exp and tanh from hwy/contrib/math, about 1-4 ulp), dispatched at
// run time like the ReLU kernels. Their derivatives need no exp: the layers compute them from the output.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/act_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <cmath>
#include <cstddef>

HWY_BEFORE_NAMESPACE();
namespace rectifier::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// y = 1 / (1 + exp(-x)), with -x clamped to the range where exp is defined (the result is then 0 or 1 to float
// precision anyway).
void SigmoidForward(const float* HWY_RESTRICT x, float* HWY_RESTRICT y, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d);
  const auto one = hn::Set(d, 1.0f), lo = hn::Set(d, -88.0f), hi = hn::Set(d, 88.0f);
  size_t i = 0;
  for (; i + L <= n; i += L) {
    const auto v = hn::LoadU(d, x + i);
    const auto e = hn::Exp(d, hn::Neg(hn::Min(hn::Max(v, lo), hi)));
    // NaN passes through as the scalar reference lets it
    hn::StoreU(hn::IfThenElse(hn::IsNaN(v), v, hn::Div(one, hn::Add(one, e))), d, y + i);
  }
  for (; i < n; ++i) {
    const float v = x[i];
    y[i] = v >= 0 ? 1.0f / (1.0f + std::exp(-v)) : std::exp(v) / (1.0f + std::exp(v));
  }
}

void TanhForward(const float* HWY_RESTRICT x, float* HWY_RESTRICT y, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d);
  size_t i = 0;
  for (; i + L <= n; i += L) hn::StoreU(hn::Tanh(d, hn::LoadU(d, x + i)), d, y + i);
  for (; i < n; ++i) y[i] = std::tanh(x[i]);
}

}  // namespace rectifier::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/parallel.h"
#include "rectifier/activation.h"

namespace rectifier {
namespace kernels {
HWY_EXPORT(SigmoidForward);
HWY_EXPORT(TanhForward);
}  // namespace kernels

namespace {
template <class F>
void chunks(size_t n, F&& f) { kernels::parallel_chunks(n, size_t(1) << 14, f); }
}  // namespace

void sigmoid_forward(const float* x, float* y, size_t n) {
  chunks(n, [&](size_t lo, size_t len) { HWY_DYNAMIC_DISPATCH(kernels::SigmoidForward)(x + lo, y + lo, len); });
}
void tanh_forward(const float* x, float* y, size_t n) {
  chunks(n, [&](size_t lo, size_t len) { HWY_DYNAMIC_DISPATCH(kernels::TanhForward)(x + lo, y + lo, len); });
}

template <class T>
bool act_backward_from_output(const Activation& a, const T* y, const T* dy, T* dx, size_t n) {
  if (a.kind != Act::sigmoid && a.kind != Act::tanh) return false;
  const bool sig = a.kind == Act::sigmoid;
  chunks(n, [&](size_t lo, size_t len) {
    const T* yy = y + lo;
    const T* g = dy + lo;
    T* o = dx + lo;
    if (sig)
      for (size_t i = 0; i < len; ++i) o[i] = g[i] * (yy[i] * (T(1) - yy[i]));
    else
      for (size_t i = 0; i < len; ++i) o[i] = g[i] * (T(1) - yy[i] * yy[i]);
  });
  return true;
}
template bool act_backward_from_output<float>(const Activation&, const float*, const float*, float*, size_t);
template bool act_backward_from_output<double>(const Activation&, const double*, const double*, double*, size_t);

}  // namespace rectifier
#endif  // HWY_ONCE
