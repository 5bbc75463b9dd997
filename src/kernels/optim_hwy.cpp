// The optimizer's float update rules (SGD, SGD with momentum, Adam and AdamW, RMSprop) and the sum of squares the
// optimizer and the monitor share, in Highway: compiled for every x86-64 target and dispatched at run time. Built
// without contraction into FMA (CMakeLists.txt), each lane does the plain loops' operations in their order, so every
// target gives the bits of the references in optim_kernels.h and reduce.h: training results do not depend on the
// CPU's vector width.
//
// Why: compiled for baseline x86-64 (SSE2), the momentum update took 19 instructions per 4 floats and was partly
// bound by instructions, not memory: these kernels took the update phase of an MLP step (2 threads, with the
// monitor's sums) from 359 to 244 us, medians of 14 alternating pairs (bench/step_phases).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/optim_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cmath>
#include <cstddef>

#include "kernels/optim_kernels.h"

HWY_BEFORE_NAMESPACE();
namespace rectifier::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// p -= lr * (g + wd * p); bk (if not null) receives p first; g is zeroed after it is read when zero_g.
void SgdUpdate(float* HWY_RESTRICT p, float* HWY_RESTRICT g, float* HWY_RESTRICT bk, size_t n, float lr, float wd,
               bool zero_g) {
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d);
  const auto vlr = hn::Set(d, lr), vwd = hn::Set(d, wd), zero = hn::Zero(d);
  size_t i = 0;
  for (; i + L <= n; i += L) {
    const auto pi = hn::LoadU(d, p + i), gi = hn::LoadU(d, g + i);
    if (bk) hn::StoreU(pi, d, bk + i);
    if (zero_g) hn::StoreU(zero, d, g + i);
    hn::StoreU(hn::Sub(pi, hn::Mul(vlr, hn::Add(gi, hn::Mul(vwd, pi)))), d, p + i);
  }
  for (; i < n; ++i) {
    const float pi = p[i], gi = g[i];
    if (bk) bk[i] = pi;
    if (zero_g) g[i] = 0.0f;
    p[i] = pi - lr * (gi + wd * pi);
  }
}

// The start of the momentum and RMSprop rules at lane block i: pi = p (copied to bk first, if not null), and
// gi = g + wd p, g then zeroed if zero_g.
template <class D, class V = hn::Vec<D>>
HWY_INLINE void LoadDecayed(D d, const float* HWY_RESTRICT p, float* HWY_RESTRICT g, float* HWY_RESTRICT bk, size_t i,
                            V vwd, bool zero_g, V& pi, V& gi) {
  pi = hn::LoadU(d, p + i);
  if (bk) hn::StoreU(pi, d, bk + i);
  gi = hn::Add(hn::LoadU(d, g + i), hn::Mul(vwd, pi));
  if (zero_g) hn::StoreU(hn::Zero(d), d, g + i);
}

// g' = g + wd p; m = mu m + g'; p -= lr (a g' + c m): plain momentum with a = 0, c = 1, Nesterov with a = 1, c = mu.
void MomentumUpdate(float* HWY_RESTRICT p, float* HWY_RESTRICT g, float* HWY_RESTRICT m, float* HWY_RESTRICT bk,
                    size_t n, float lr, float wd, float mu, float a, float c, bool zero_g) {
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d);
  const auto vlr = hn::Set(d, lr), vwd = hn::Set(d, wd), vmu = hn::Set(d, mu), va = hn::Set(d, a), vc = hn::Set(d, c);
  size_t i = 0;
  for (; i + L <= n; i += L) {
    hn::Vec<decltype(d)> pi, gi;
    LoadDecayed(d, p, g, bk, i, vwd, zero_g, pi, gi);
    const auto mi = hn::Add(hn::Mul(vmu, hn::LoadU(d, m + i)), gi);
    hn::StoreU(mi, d, m + i);
    hn::StoreU(hn::Sub(pi, hn::Mul(vlr, hn::Add(hn::Mul(va, gi), hn::Mul(vc, mi)))), d, p + i);
  }
  for (; i < n; ++i) {
    const float pi = p[i];
    if (bk) bk[i] = pi;
    const float gi = g[i] + wd * pi;
    if (zero_g) g[i] = 0.0f;
    const float mi = mu * m[i] + gi;
    m[i] = mi;
    p[i] = pi - lr * (a * gi + c * mi);
  }
}

// adam_update_ref (optim_kernels.h): Adam, or AdamW when decoupled; the same operations in the same order.
// Compiled for baseline x86-64, the plain loop stayed scalar (a square root and a division per element): the
// reference MLP's Adam update took 815 us on one thread, against 71 for SGD with momentum.
void AdamUpdate(float* HWY_RESTRICT p, float* HWY_RESTRICT g, float* HWY_RESTRICT m, float* HWY_RESTRICT v,
                float* HWY_RESTRICT bk, size_t n, float lr, float wd, bool decoupled, float b1, float b2, float eps,
                float c1, float c2s, bool zero_g) {
  const float decay = decoupled ? 1.0f - lr * wd : 1.0f, l2 = decoupled ? 0.0f : wd, step = lr / c1;
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d);
  const auto vdecay = hn::Set(d, decay), vl2 = hn::Set(d, l2), vb1 = hn::Set(d, b1), vb2 = hn::Set(d, b2);
  const auto va1 = hn::Set(d, 1.0f - b1), va2 = hn::Set(d, 1.0f - b2), vstep = hn::Set(d, step);
  const auto vc2s = hn::Set(d, c2s), veps = hn::Set(d, eps), zero = hn::Zero(d);
  size_t i = 0;
  for (; i + L <= n; i += L) {
    const auto p0 = hn::LoadU(d, p + i);
    if (bk) hn::StoreU(p0, d, bk + i);
    const auto pi = hn::Mul(p0, vdecay);
    const auto gi = hn::Add(hn::LoadU(d, g + i), hn::Mul(vl2, pi));
    if (zero_g) hn::StoreU(zero, d, g + i);
    const auto mi = hn::Add(hn::Mul(vb1, hn::LoadU(d, m + i)), hn::Mul(va1, gi));
    const auto vi = hn::Add(hn::Mul(vb2, hn::LoadU(d, v + i)), hn::Mul(hn::Mul(va2, gi), gi));
    hn::StoreU(mi, d, m + i);
    hn::StoreU(vi, d, v + i);
    hn::StoreU(hn::Sub(pi, hn::Div(hn::Mul(vstep, mi), hn::Add(hn::Div(hn::Sqrt(vi), vc2s), veps))), d, p + i);
  }
  for (; i < n; ++i) {
    if (bk) bk[i] = p[i];
    const float pi = p[i] * decay;
    const float gi = g[i] + l2 * pi;
    if (zero_g) g[i] = 0.0f;
    const float mi = b1 * m[i] + (1.0f - b1) * gi;
    const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - step * mi / (std::sqrt(vi) / c2s + eps);
  }
}

// rmsprop_update_ref (optim_kernels.h), the same operations in the same order.
void RmspropUpdate(float* HWY_RESTRICT p, float* HWY_RESTRICT g, float* HWY_RESTRICT m, float* HWY_RESTRICT v,
                   float* HWY_RESTRICT bk, size_t n, float lr, float wd, float a, float eps, float mu, bool zero_g) {
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d);
  const auto vlr = hn::Set(d, lr), vwd = hn::Set(d, wd), va = hn::Set(d, a), va1 = hn::Set(d, 1.0f - a);
  const auto veps = hn::Set(d, eps), vmu = hn::Set(d, mu);
  const bool momentum = mu > 0.0f;
  size_t i = 0;
  for (; i + L <= n; i += L) {
    hn::Vec<decltype(d)> pi, gi;
    LoadDecayed(d, p, g, bk, i, vwd, zero_g, pi, gi);
    const auto vi = hn::Add(hn::Mul(va, hn::LoadU(d, v + i)), hn::Mul(hn::Mul(va1, gi), gi));
    hn::StoreU(vi, d, v + i);
    auto s = hn::Div(gi, hn::Add(hn::Sqrt(vi), veps));
    if (momentum) {
      s = hn::Add(hn::Mul(vmu, hn::LoadU(d, m + i)), s);
      hn::StoreU(s, d, m + i);
    }
    hn::StoreU(hn::Sub(pi, hn::Mul(vlr, s)), d, p + i);
  }
  for (; i < n; ++i) {
    const float pi = p[i];
    if (bk) bk[i] = pi;
    const float gi = g[i] + wd * pi;
    if (zero_g) g[i] = 0.0f;
    const float vi = a * v[i] + (1.0f - a) * gi * gi;
    v[i] = vi;
    float s = gi / (std::sqrt(vi) + eps);
    if (momentum) {
      s = mu * m[i] + s;
      m[i] = s;
    }
    p[i] = pi - lr * s;
  }
}

// update_with_sums_ref (optim_kernels.h): the 32 float lanes of g2 as whole vectors (2 with AVX-512, 4 with AVX2,
// 8 with SSE4), each of du's and w's as twice as many vectors of doubles (each float vector's lower half, then its
// upper half: lane k stays lane k), the rule's operations in the reference's order. On the scalar target, the
// reference itself.
// Before, the monitor's figures took passes of their own over each block: the gradient's sum of squares, and on the
// ratio's steps a copy of the weights and double sums compiled for baseline x86-64. The reference MLP's update with
// them (235K parameters, 1 thread, caches flushed by an 8 MB pass, medians of 1000): 59-68 us against 48-60 without
// figures, 170-195 us on the ratio's steps (every 16th); fused: 49-54 and 91-94 (2 threads: 28-32 and 49-52).
template <bool kMomentum, bool kRatio>
kernels::BlockSums UpdateWithSumsT(float* HWY_RESTRICT p, const float* HWY_RESTRICT g, float* HWY_RESTRICT m,
                                   float* HWY_RESTRICT bk, size_t n, float lr, float wd, float mu, float a, float c) {
#if HWY_TARGET == HWY_SCALAR
  return kernels::update_with_sums_ref<float>(p, g, kMomentum ? m : nullptr, bk, long(n), lr, wd, mu, a, c, kRatio);
#else
  constexpr size_t kL = HWY_LANES(float), kV = 32 / kL;
  static_assert(kV * kL == 32, "the lanes are whole vectors");
  const hn::ScalableTag<float> d;
  const hn::Half<decltype(d)> dh;
  const hn::Repartition<double, decltype(d)> dd;
  using V = hn::Vec<decltype(d)>;
  using VD = hn::Vec<decltype(dd)>;
  const size_t L = hn::Lanes(d), LD = hn::Lanes(dd);
  const V vlr = hn::Set(d, lr), vwd = hn::Set(d, wd), vmu = hn::Set(d, mu), va = hn::Set(d, a), vc = hn::Set(d, c);
  V ag[kV];
  VD au[2 * kV], aw[2 * kV];
  for (size_t v = 0; v < kV; ++v) ag[v] = hn::Zero(d);
  for (size_t v = 0; v < 2 * kV; ++v) au[v] = aw[v] = hn::Zero(dd);
  size_t j = 0;
  for (; j + 32 <= n; j += 32)
    for (size_t v = 0; v < kV; ++v) {
      const size_t i = j + v * L;
      const V pi = hn::LoadU(d, p + i), g0 = hn::LoadU(d, g + i);
      if (bk) hn::StoreU(pi, d, bk + i);
      const V gi = hn::Add(g0, hn::Mul(vwd, pi));
      V now;
      if constexpr (kMomentum) {
        const V mi = hn::Add(hn::Mul(vmu, hn::LoadU(d, m + i)), gi);
        hn::StoreU(mi, d, m + i);
        now = hn::Sub(pi, hn::Mul(vlr, hn::Add(hn::Mul(va, gi), hn::Mul(vc, mi))));
      } else {
        now = hn::Sub(pi, hn::Mul(vlr, gi));
      }
      hn::StoreU(now, d, p + i);
      ag[v] = hn::Add(ag[v], hn::Mul(g0, g0));
      if constexpr (kRatio) {
        const VD wl = hn::PromoteTo(dd, hn::LowerHalf(dh, pi)), wu = hn::PromoteTo(dd, hn::UpperHalf(dh, pi));
        const VD dl = hn::Sub(hn::PromoteTo(dd, hn::LowerHalf(dh, now)), wl);
        const VD du = hn::Sub(hn::PromoteTo(dd, hn::UpperHalf(dh, now)), wu);
        au[2 * v] = hn::Add(au[2 * v], hn::Mul(dl, dl));
        au[2 * v + 1] = hn::Add(au[2 * v + 1], hn::Mul(du, du));
        aw[2 * v] = hn::Add(aw[2 * v], hn::Mul(wl, wl));
        aw[2 * v + 1] = hn::Add(aw[2 * v + 1], hn::Mul(wu, wu));
      }
    }
  HWY_ALIGN float lg[32];
  HWY_ALIGN double lu[32], lw[32];
  for (size_t v = 0; v < kV; ++v) hn::Store(ag[v], d, lg + v * L);
  for (size_t v = 0; v < 2 * kV; ++v) {
    hn::Store(au[v], dd, lu + v * LD);
    hn::Store(aw[v], dd, lw + v * LD);
  }
  float fg = 0;
  double fu = 0, fw = 0;
  for (; j < n; ++j)  // the last elements, as the reference
    kernels::update_one_with_sums(p, g, kMomentum ? m : nullptr, bk, long(j), lr, wd, mu, a, c, kRatio, fg, fu, fw);
  return kernels::finish_sums(lg, lu, lw, fg, fu, fw);
#endif
}

kernels::BlockSums UpdateWithSums(float* HWY_RESTRICT p, const float* HWY_RESTRICT g, float* HWY_RESTRICT m,
                                  float* HWY_RESTRICT bk, size_t n, float lr, float wd, float mu, float a, float c,
                                  bool ratio) {
  if (m) return ratio ? UpdateWithSumsT<true, true>(p, g, m, bk, n, lr, wd, mu, a, c)
                      : UpdateWithSumsT<true, false>(p, g, m, bk, n, lr, wd, mu, a, c);
  return ratio ? UpdateWithSumsT<false, true>(p, g, m, bk, n, lr, wd, mu, a, c)
               : UpdateWithSumsT<false, false>(p, g, m, bk, n, lr, wd, mu, a, c);
}

// Sum of squares as kernels::sum_squares_ref (reduce.h): 32 float lanes within blocks of 4096, the blocks added in
// double. The lanes are whole vectors (L divides 32 on every target), up to four of them accumulated at a time in
// registers: one sweep of a block with AVX2, two with SSE4, 2 vectors in one sweep with AVX-512.
double SumSquares(const float* HWY_RESTRICT x, size_t n) {
  const hn::ScalableTag<float> d;
  constexpr size_t kLanes = 32;
  const size_t L = hn::Lanes(d);
  double ss = 0;
  HWY_ALIGN float acc[kLanes];
  for (size_t lo = 0; lo < n; lo += 4096) {
    const size_t hi = n < lo + 4096 ? n : lo + 4096, whole = lo + (hi - lo) / kLanes * kLanes;
    for (size_t k0 = 0; k0 < kLanes; k0 += 4 * L) {
      const bool four = k0 + 4 * L <= kLanes;
      auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
      for (size_t j = lo; j < whole; j += kLanes) {
        const float* q = x + j + k0;
        const auto v0 = hn::LoadU(d, q), v1 = hn::LoadU(d, q + L);
        a0 = hn::Add(a0, hn::Mul(v0, v0));
        a1 = hn::Add(a1, hn::Mul(v1, v1));
        if (four) {
          const auto v2 = hn::LoadU(d, q + 2 * L), v3 = hn::LoadU(d, q + 3 * L);
          a2 = hn::Add(a2, hn::Mul(v2, v2));
          a3 = hn::Add(a3, hn::Mul(v3, v3));
        }
      }
      hn::Store(a0, d, acc + k0);
      hn::Store(a1, d, acc + k0 + L);
      if (four) {
        hn::Store(a2, d, acc + k0 + 2 * L);
        hn::Store(a3, d, acc + k0 + 3 * L);
      }
    }
    float f = 0;
    for (size_t j = whole; j < hi; ++j) f += x[j] * x[j];
    for (size_t k = 0; k < kLanes; ++k) f += acc[k];
    ss += double(f);
  }
  return ss;
}

}  // namespace rectifier::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/optim_kernels.h"
#include "kernels/reduce.h"

namespace rectifier::kernels {
HWY_EXPORT(SgdUpdate);
HWY_EXPORT(MomentumUpdate);
HWY_EXPORT(SumSquares);
HWY_EXPORT(UpdateWithSums);
HWY_EXPORT(AdamUpdate);
HWY_EXPORT(RmspropUpdate);

void adam_update(float* p, float* g, float* m, float* v, float* bk, size_t n, float lr, float wd, bool decoupled,
                 float b1, float b2, float eps, float c1, float c2s, bool zero_g) {
  HWY_DYNAMIC_DISPATCH(AdamUpdate)(p, g, m, v, bk, n, lr, wd, decoupled, b1, b2, eps, c1, c2s, zero_g);
}

void rmsprop_update(float* p, float* g, float* m, float* v, float* bk, size_t n, float lr, float wd, float a, float eps,
                    float mu, bool zero_g) {
  HWY_DYNAMIC_DISPATCH(RmspropUpdate)(p, g, m, v, bk, n, lr, wd, a, eps, mu, zero_g);
}

BlockSums update_with_sums(float* p, const float* g, float* m, float* bk, size_t n, float lr, float wd, float mu,
                           float a, float c, bool ratio) {
  return HWY_DYNAMIC_DISPATCH(UpdateWithSums)(p, g, m, bk, n, lr, wd, mu, a, c, ratio);
}

void sgd_update(float* p, float* g, float* bk, size_t n, float lr, float wd, bool zero_g) {
  HWY_DYNAMIC_DISPATCH(SgdUpdate)(p, g, bk, n, lr, wd, zero_g);
}

void momentum_update(float* p, float* g, float* m, float* bk, size_t n, float lr, float wd, float mu, float a, float c,
                     bool zero_g) {
  HWY_DYNAMIC_DISPATCH(MomentumUpdate)(p, g, m, bk, n, lr, wd, mu, a, c, zero_g);
}

double sum_squares(const float* x, size_t n) { return HWY_DYNAMIC_DISPATCH(SumSquares)(x, n); }

}  // namespace rectifier::kernels
#endif  // HWY_ONCE
