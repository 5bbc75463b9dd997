// Smooth activations in Highway (vector exp, expm1, log1p and tanh from hwy/contrib/math, about 1-4 ulp), dispatched
// at run time like the ReLU kernels: sigmoid and tanh forward (their layers take the derivative from the output, no
// exp), leaky ReLU, ReLU6, ELU, SELU, GELU, SiLU, softplus and mish forward and backward, and the backward from the
// input of ReLU with ReLU'(0) != 0, sigmoid and tanh.
// NaN passes through as in the scalar reference; exp arguments are clamped where the result no longer changes.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/act_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <cmath>
#include <cstddef>

#include "rectifier/activation.h"

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

// 1 / (1 + exp(-v)) with the exp argument clamped to [-88, 88].
template <class D, class V>
HWY_INLINE V Sigmoid(D d, V v) {
  const V one = hn::Set(d, 1.0f);
  return hn::Div(one, hn::Add(one, hn::Exp(d, hn::Neg(hn::Min(hn::Max(v, hn::Set(d, -88.0f)), hn::Set(d, 88.0f))))));
}
// PyTorch's softplus: v where beta v > 20, else log1p(exp(beta v)) / beta.
template <class D, class V>
HWY_INLINE V Softplus(D d, V v, V beta) {
  const V bx = hn::Mul(beta, v), t = hn::Set(d, 20.0f);
  return hn::IfThenElse(hn::Gt(bx, t), v, hn::Div(hn::Log1p(d, hn::Exp(d, hn::Min(bx, t))), beta));
}

// The standard normal CDF, 0.5 erfc(-v / sqrt 2), with erfc from Numerical Recipes' Chebyshev fit (relative error
// under 1.2e-7 for every argument, so the left tail keeps its digits, unlike 1 + erf).
template <class D, class V>
HWY_INLINE V NormalCdf(D d, V v) {
  const V one = hn::Set(d, 1.0f), half = hn::Set(d, 0.5f);
  const V z = hn::Mul(hn::Abs(v), hn::Set(d, 0.70710678118654752f));
  const V t = hn::Div(one, hn::MulAdd(half, z, one));
  V q = hn::Set(d, 0.17087277f);
  for (float c : {-0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f, -0.18628806f, 0.09678418f, 0.37409196f,
                  1.00002368f, -1.26551223f})
    q = hn::MulAdd(q, t, hn::Set(d, c));
  const V erfc = hn::Mul(t, hn::Exp(d, hn::Max(hn::Sub(q, hn::Mul(z, z)), hn::Set(d, -88.0f))));
  const V tail = hn::Mul(half, erfc);
  return hn::IfThenElse(hn::Lt(v, hn::Zero(d)), tail, hn::Sub(one, tail));
}

// f(v) on every full vector (NaN lanes keep v), the scalar reference s(x) on the tail.
template <class D, class VF, class SF>
HWY_INLINE void Map(D d, const float* HWY_RESTRICT x, float* HWY_RESTRICT y, size_t n, VF f, SF s) {
  const size_t L = hn::Lanes(d);
  size_t i = 0;
  for (; i + L <= n; i += L) {
    const auto v = hn::LoadU(d, x + i);
    hn::StoreU(hn::IfThenElse(hn::IsNaN(v), v, f(v)), d, y + i);
  }
  for (; i < n; ++i) y[i] = s(x[i]);
}
// dx = dy * f'(v) on every full vector (NaN in x gives NaN), the scalar reference on the tail.
template <class D, class VF, class SF>
HWY_INLINE void MapBackward(D d, const float* HWY_RESTRICT x, const float* HWY_RESTRICT dy, float* HWY_RESTRICT dx,
                            size_t n, VF f, SF s) {
  const size_t L = hn::Lanes(d);
  size_t i = 0;
  for (; i + L <= n; i += L) {
    const auto v = hn::LoadU(d, x + i);
    hn::StoreU(hn::Mul(hn::LoadU(d, dy + i), hn::IfThenElse(hn::IsNaN(v), v, f(v))), d, dx + i);
  }
  for (; i < n; ++i) dx[i] = dy[i] * s(x[i]);
}

// The constants the smooth activations use, as vectors.
template <class D>
struct Consts {
  hn::Vec<D> zero, one, p, lambda, alpha;
  Consts(D d, float param)
      : zero(hn::Zero(d)), one(hn::Set(d, 1.0f)), p(hn::Set(d, param)), lambda(hn::Set(d, float(act_math::kSeluLambda))),
        alpha(hn::Set(d, float(act_math::kSeluAlpha))) {}
};

// kind: an Act; p its parameter. Returns false for the kinds this does not cover.
bool SmoothForward(int kind, float p, const float* HWY_RESTRICT x, float* HWY_RESTRICT y, size_t n) {
  const hn::ScalableTag<float> d;
  using V = hn::Vec<decltype(d)>;
  const Consts<decltype(d)> k(d, p);
  const V zero = k.zero, one = k.one, P = k.p, lambda = k.lambda, alpha = k.alpha;
  switch (Act(kind)) {
    case Act::elu:
      Map(d, x, y, n, [&](V v) { return hn::IfThenElse(hn::Gt(v, zero), v, hn::Mul(P, hn::Expm1(d, hn::Min(v, zero)))); },
          [&](float v) { return act_value_k<Act::elu, float>(v, p); });
      return true;
    case Act::selu:
      Map(d, x, y, n, [&](V v) {
            return hn::Mul(lambda, hn::IfThenElse(hn::Gt(v, zero), v, hn::Mul(alpha, hn::Expm1(d, hn::Min(v, zero)))));
          },
          [&](float v) { return act_value_k<Act::selu, float>(v, p); });
      return true;
    case Act::leaky_relu:
      Map(d, x, y, n, [&](V v) { return hn::IfThenElse(hn::Gt(v, zero), v, hn::Mul(P, v)); },
          [&](float v) { return act_value_k<Act::leaky_relu, float>(v, p); });
      return true;
    case Act::relu6:
      Map(d, x, y, n, [&](V v) { return hn::Min(hn::Max(v, zero), hn::Set(d, 6.0f)); },
          [&](float v) { return act_value_k<Act::relu6, float>(v, p); });
      return true;
    case Act::gelu:
      Map(d, x, y, n, [&](V v) { return hn::Mul(v, NormalCdf(d, v)); },
          [&](float v) { return act_value_k<Act::gelu, float>(v, p); });
      return true;
    case Act::silu:
      Map(d, x, y, n, [&](V v) { return hn::Mul(v, Sigmoid(d, v)); },
          [&](float v) { return act_value_k<Act::silu, float>(v, p); });
      return true;
    case Act::softplus:
      Map(d, x, y, n, [&](V v) { return Softplus(d, v, P); },
          [&](float v) { return act_value_k<Act::softplus, float>(v, p); });
      return true;
    case Act::mish:
      Map(d, x, y, n, [&](V v) { return hn::Mul(v, hn::Tanh(d, Softplus(d, v, one))); },
          [&](float v) { return act_value_k<Act::mish, float>(v, p); });
      return true;
    default:
      return false;
  }
}

bool SmoothBackward(int kind, float p, const float* HWY_RESTRICT x, const float* HWY_RESTRICT dy,
                    float* HWY_RESTRICT dx, size_t n) {
  const hn::ScalableTag<float> d;
  using V = hn::Vec<decltype(d)>;
  const Consts<decltype(d)> k(d, p);
  const V zero = k.zero, one = k.one, P = k.p, lambda = k.lambda, alpha = k.alpha;
  switch (Act(kind)) {
    case Act::elu:
      MapBackward(d, x, dy, dx, n, [&](V v) { return hn::IfThenElse(hn::Gt(v, zero), one, hn::Mul(P, hn::Exp(d, hn::Min(v, zero)))); },
                  [&](float v) { return act_derivative_k<Act::elu, float>(v, p); });
      return true;
    case Act::selu:
      MapBackward(d, x, dy, dx, n, [&](V v) {
                    return hn::Mul(lambda, hn::IfThenElse(hn::Gt(v, zero), one, hn::Mul(alpha, hn::Exp(d, hn::Min(v, zero)))));
                  },
                  [&](float v) { return act_derivative_k<Act::selu, float>(v, p); });
      return true;
    case Act::relu:  // ReLU'(0) = p (ReLU with p = 0 has its own mask kernels)
      MapBackward(d, x, dy, dx, n, [&](V v) { return hn::IfThenElse(hn::Gt(v, zero), one, hn::IfThenElseZero(hn::Eq(v, zero), P)); },
                  [&](float v) { return act_derivative_k<Act::relu, float>(v, p); });
      return true;
    case Act::leaky_relu:
      MapBackward(d, x, dy, dx, n, [&](V v) { return hn::IfThenElse(hn::Gt(v, zero), one, P); },
                  [&](float v) { return act_derivative_k<Act::leaky_relu, float>(v, p); });
      return true;
    case Act::relu6:
      MapBackward(d, x, dy, dx, n, [&](V v) { return hn::IfThenElseZero(hn::And(hn::Gt(v, zero), hn::Lt(v, hn::Set(d, 6.0f))), one); },
                  [&](float v) { return act_derivative_k<Act::relu6, float>(v, p); });
      return true;
    case Act::sigmoid:  // from the input (the layers use the output instead)
      MapBackward(d, x, dy, dx, n, [&](V v) {
                    const V s = Sigmoid(d, v);
                    return hn::Mul(s, hn::Sub(one, s));
                  },
                  [&](float v) { return act_derivative_k<Act::sigmoid, float>(v, p); });
      return true;
    case Act::tanh:
      MapBackward(d, x, dy, dx, n, [&](V v) {
                    const V t = hn::Tanh(d, v);
                    return hn::NegMulAdd(t, t, one);
                  },
                  [&](float v) { return act_derivative_k<Act::tanh, float>(v, p); });
      return true;
    case Act::gelu:  // Phi(v) + v phi(v)
      MapBackward(d, x, dy, dx, n, [&](V v) {
                    const V pdf = hn::Mul(hn::Set(d, 0.39894228040143268f),
                                          hn::Exp(d, hn::Max(hn::Mul(hn::Set(d, -0.5f), hn::Mul(v, v)), hn::Set(d, -88.0f))));
                    return hn::MulAdd(v, pdf, NormalCdf(d, v));
                  },
                  [&](float v) { return act_derivative_k<Act::gelu, float>(v, p); });
      return true;
    case Act::silu:
      MapBackward(d, x, dy, dx, n, [&](V v) {
                    const V s = Sigmoid(d, v);
                    return hn::Mul(s, hn::Add(one, hn::Mul(v, hn::Sub(one, s))));
                  },
                  [&](float v) { return act_derivative_k<Act::silu, float>(v, p); });
      return true;
    case Act::softplus:
      MapBackward(d, x, dy, dx, n, [&](V v) {
                    const V bx = hn::Mul(P, v);
                    return hn::IfThenElse(hn::Gt(bx, hn::Set(d, 20.0f)), one, Sigmoid(d, bx));
                  },
                  [&](float v) { return act_derivative_k<Act::softplus, float>(v, p); });
      return true;
    case Act::mish:
      MapBackward(d, x, dy, dx, n, [&](V v) {
                    const V t = hn::Tanh(d, Softplus(d, v, one));
                    return hn::Add(t, hn::Mul(hn::Mul(v, hn::Sub(one, hn::Mul(t, t))), Sigmoid(d, v)));
                  },
                  [&](float v) { return act_derivative_k<Act::mish, float>(v, p); });
      return true;
    default:
      return false;
  }
}

}  // namespace rectifier::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/parallel.h"

namespace rectifier {
namespace kernels {
HWY_EXPORT(SigmoidForward);
HWY_EXPORT(TanhForward);
HWY_EXPORT(SmoothForward);
HWY_EXPORT(SmoothBackward);
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

// A call on zero elements asks the kernel's switch whether it covers the activation.
bool smooth_forward(const Activation& a, const float* x, float* y, size_t n) {
  if (!HWY_DYNAMIC_DISPATCH(kernels::SmoothForward)(int(a.kind), float(a.param), x, y, 0)) return false;
  chunks(n, [&](size_t lo, size_t len) {
    HWY_DYNAMIC_DISPATCH(kernels::SmoothForward)(int(a.kind), float(a.param), x + lo, y + lo, len);
  });
  return true;
}
bool smooth_backward(const Activation& a, const float* x, const float* dy, float* dx, size_t n) {
  if (!HWY_DYNAMIC_DISPATCH(kernels::SmoothBackward)(int(a.kind), float(a.param), x, dy, dx, 0)) return false;
  chunks(n, [&](size_t lo, size_t len) {
    HWY_DYNAMIC_DISPATCH(kernels::SmoothBackward)(int(a.kind), float(a.param), x + lo, dy + lo, dx + lo, len);
  });
  return true;
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
