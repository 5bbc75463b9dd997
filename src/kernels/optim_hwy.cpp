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

// The update rules on whole vectors: r(d, i, p, g) returns the new weights of lanes [i, i + L) from their weights and
// gradients, updating the rule's state (m, v) there, with the operations of the scalar rule r.scalar
// (optim_kernels.h) in its order; r.scalar does the elements past the last whole vector.

// MomentumRule: SGD (kMomentum false), or momentum (plain: a = 0, c = 1; Nesterov: a = 1, c = mu).
template <class D, bool kMomentum>
struct MomentumVec {
  using V = hn::Vec<D>;
  kernels::MomentumRule<float> scalar;
  V lr, wd, mu, a, c;
  MomentumVec(D d, const kernels::MomentumRule<float>& r)
      : scalar(r), lr(hn::Set(d, r.lr)), wd(hn::Set(d, r.wd)), mu(hn::Set(d, r.mu)), a(hn::Set(d, r.a)),
        c(hn::Set(d, r.c)) {}
  HWY_INLINE V operator()(D d, size_t i, V pi, V g0) const {
    const V gi = hn::Add(g0, hn::Mul(wd, pi));
    if constexpr (!kMomentum) {
      return hn::Sub(pi, hn::Mul(lr, gi));
    } else {
      const V mi = hn::Add(hn::Mul(mu, hn::LoadU(d, scalar.m + i)), gi);
      hn::StoreU(mi, d, scalar.m + i);
      return hn::Sub(pi, hn::Mul(lr, hn::Add(hn::Mul(a, gi), hn::Mul(c, mi))));
    }
  }
};

// AdamRule. Compiled for baseline x86-64, its plain loop stayed scalar (a square root and two divisions per
// element): the reference MLP's Adam update took 815 us on one thread, against 71 for SGD with momentum.
template <class D>
struct AdamVec {
  using V = hn::Vec<D>;
  kernels::AdamRule<float> scalar;
  V decay, l2, b1, b2, a1, a2, step, c2s, eps;
  AdamVec(D d, const kernels::AdamRule<float>& r)
      : scalar(r), decay(hn::Set(d, r.decay)), l2(hn::Set(d, r.l2)), b1(hn::Set(d, r.b1)), b2(hn::Set(d, r.b2)),
        a1(hn::Set(d, 1.0f - r.b1)), a2(hn::Set(d, 1.0f - r.b2)), step(hn::Set(d, r.step)), c2s(hn::Set(d, r.c2s)),
        eps(hn::Set(d, r.eps)) {}
  HWY_INLINE V operator()(D d, size_t i, V p0, V g0) const {
    const V pi = hn::Mul(p0, decay);
    const V gi = hn::Add(g0, hn::Mul(l2, pi));
    const V mi = hn::Add(hn::Mul(b1, hn::LoadU(d, scalar.m + i)), hn::Mul(a1, gi));
    const V vi = hn::Add(hn::Mul(b2, hn::LoadU(d, scalar.v + i)), hn::Mul(hn::Mul(a2, gi), gi));
    hn::StoreU(mi, d, scalar.m + i);
    hn::StoreU(vi, d, scalar.v + i);
    return hn::Sub(pi, hn::Div(hn::Mul(step, mi), hn::Add(hn::Div(hn::Sqrt(vi), c2s), eps)));
  }
};

// RmspropRule.
template <class D>
struct RmspropVec {
  using V = hn::Vec<D>;
  kernels::RmspropRule<float> scalar;
  V lr, wd, a, a1, eps, mu;
  RmspropVec(D d, const kernels::RmspropRule<float>& r)
      : scalar(r), lr(hn::Set(d, r.lr)), wd(hn::Set(d, r.wd)), a(hn::Set(d, r.a)), a1(hn::Set(d, 1.0f - r.a)),
        eps(hn::Set(d, r.eps)), mu(hn::Set(d, r.mu)) {}
  HWY_INLINE V operator()(D d, size_t i, V pi, V g0) const {
    const V gi = hn::Add(g0, hn::Mul(wd, pi));
    const V vi = hn::Add(hn::Mul(a, hn::LoadU(d, scalar.v + i)), hn::Mul(hn::Mul(a1, gi), gi));
    hn::StoreU(vi, d, scalar.v + i);
    V s = hn::Div(gi, hn::Add(hn::Sqrt(vi), eps));
    if (scalar.mu > 0.0f) {
      s = hn::Add(hn::Mul(mu, hn::LoadU(d, scalar.m + i)), s);
      hn::StoreU(s, d, scalar.m + i);
    }
    return hn::Sub(pi, hn::Mul(lr, s));
  }
};

// One block of a rule (kernels::rule_update_ref): bk (if not null) receives p first; g is zeroed after it is read
// when zero_g.
template <class D, class Rule>
HWY_INLINE void RuleUpdate(D d, float* HWY_RESTRICT p, float* HWY_RESTRICT g, float* HWY_RESTRICT bk, size_t n,
                           bool zero_g, const Rule& rule) {
  const size_t L = hn::Lanes(d);
  size_t i = 0;
  for (; i + L <= n; i += L) {
    const auto pi = hn::LoadU(d, p + i), g0 = hn::LoadU(d, g + i);
    if (bk) hn::StoreU(pi, d, bk + i);
    if (zero_g) hn::StoreU(hn::Zero(d), d, g + i);
    hn::StoreU(rule(d, i, pi, g0), d, p + i);
  }
  for (; i < n; ++i) {
    const float pi = p[i], g0 = g[i];
    if (bk) bk[i] = pi;
    if (zero_g) g[i] = 0.0f;
    p[i] = rule.scalar(long(i), pi, g0);
  }
}

void SgdUpdate(float* HWY_RESTRICT p, float* HWY_RESTRICT g, float* HWY_RESTRICT bk, size_t n, float lr, float wd,
               bool zero_g) {
  const hn::ScalableTag<float> d;
  RuleUpdate(d, p, g, bk, n, zero_g, MomentumVec<decltype(d), false>(d, {nullptr, lr, wd, 0.0f, 0.0f, 1.0f}));
}

void MomentumUpdate(float* HWY_RESTRICT p, float* HWY_RESTRICT g, float* HWY_RESTRICT m, float* HWY_RESTRICT bk,
                    size_t n, float lr, float wd, float mu, float a, float c, bool zero_g) {
  const hn::ScalableTag<float> d;
  RuleUpdate(d, p, g, bk, n, zero_g, MomentumVec<decltype(d), true>(d, {m, lr, wd, mu, a, c}));
}

void AdamUpdate(float* HWY_RESTRICT p, float* HWY_RESTRICT g, float* HWY_RESTRICT m, float* HWY_RESTRICT v,
                float* HWY_RESTRICT bk, size_t n, float lr, float wd, bool decoupled, float b1, float b2, float eps,
                float c1, float c2s, bool zero_g) {
  const hn::ScalableTag<float> d;
  RuleUpdate(d, p, g, bk, n, zero_g, AdamVec<decltype(d)>(d, {m, v, lr, wd, decoupled, b1, b2, eps, c1, c2s}));
}

void RmspropUpdate(float* HWY_RESTRICT p, float* HWY_RESTRICT g, float* HWY_RESTRICT m, float* HWY_RESTRICT v,
                   float* HWY_RESTRICT bk, size_t n, float lr, float wd, float a, float eps, float mu, bool zero_g) {
  const hn::ScalableTag<float> d;
  RuleUpdate(d, p, g, bk, n, zero_g, RmspropVec<decltype(d)>(d, {m, v, lr, wd, a, eps, mu}));
}

// kernels::rule_with_sums_ref (optim_kernels.h): the 32 float lanes of g2 as whole vectors (2 with AVX-512, 4 with
// AVX2, 8 with SSE4), each of du's and w's as twice as many vectors of doubles (each float vector's lower half, then
// its upper half: lane k stays lane k), the rule's operations in the reference's order. On the scalar target, the
// reference itself.
// Before, the monitor's figures took passes of their own over each block: the gradient's sum of squares, and on the
// ratio's steps a copy of the weights and double sums compiled for baseline x86-64. The reference MLP's update with
// them (235K parameters, 1 thread, caches flushed by an 8 MB pass, medians of 1000): 59-68 us against 48-60 without
// figures, 170-195 us on the ratio's steps (every 16th); fused: 49-54 and 91-94 (2 threads: 28-32 and 49-52).
template <bool kRatio, class D, class Rule>
kernels::BlockSums WithSumsT(D d, float* HWY_RESTRICT p, const float* HWY_RESTRICT g, float* HWY_RESTRICT bk,
                             size_t n, const Rule& rule) {
#if HWY_TARGET == HWY_SCALAR
  (void)d;
  return kernels::rule_with_sums_ref<float>(p, g, bk, long(n), rule.scalar, kRatio);
#else
  constexpr size_t kL = HWY_LANES(float), kV = 32 / kL;
  static_assert(kV * kL == 32, "the lanes are whole vectors");
  const hn::Half<D> dh;
  const hn::Repartition<double, D> dd;
  using V = hn::Vec<D>;
  using VD = hn::Vec<decltype(dd)>;
  const size_t L = hn::Lanes(d), LD = hn::Lanes(dd);
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
      const V now = rule(d, i, pi, g0);
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
    kernels::rule_one_with_sums(p, g, bk, long(j), rule.scalar, kRatio, fg, fu, fw);
  return kernels::finish_sums(lg, lu, lw, fg, fu, fw);
#endif
}

template <class D, class Rule>
kernels::BlockSums WithSums(D d, float* HWY_RESTRICT p, const float* HWY_RESTRICT g, float* HWY_RESTRICT bk, size_t n,
                            bool ratio, const Rule& rule) {
  return ratio ? WithSumsT<true>(d, p, g, bk, n, rule) : WithSumsT<false>(d, p, g, bk, n, rule);
}

kernels::BlockSums UpdateWithSums(float* HWY_RESTRICT p, const float* HWY_RESTRICT g, float* HWY_RESTRICT m,
                                  float* HWY_RESTRICT bk, size_t n, float lr, float wd, float mu, float a, float c,
                                  bool ratio) {
  const hn::ScalableTag<float> d;
  const kernels::MomentumRule<float> r{m, lr, wd, mu, a, c};
  if (m) return WithSums(d, p, g, bk, n, ratio, MomentumVec<decltype(d), true>(d, r));
  return WithSums(d, p, g, bk, n, ratio, MomentumVec<decltype(d), false>(d, r));
}

kernels::BlockSums AdamWithSums(float* HWY_RESTRICT p, const float* HWY_RESTRICT g, float* HWY_RESTRICT m,
                                float* HWY_RESTRICT v, float* HWY_RESTRICT bk, size_t n, float lr, float wd,
                                bool decoupled, float b1, float b2, float eps, float c1, float c2s, bool ratio) {
  const hn::ScalableTag<float> d;
  return WithSums(d, p, g, bk, n, ratio, AdamVec<decltype(d)>(d, {m, v, lr, wd, decoupled, b1, b2, eps, c1, c2s}));
}

kernels::BlockSums RmspropWithSums(float* HWY_RESTRICT p, const float* HWY_RESTRICT g, float* HWY_RESTRICT m,
                                   float* HWY_RESTRICT v, float* HWY_RESTRICT bk, size_t n, float lr, float wd, float a,
                                   float eps, float mu, bool ratio) {
  const hn::ScalableTag<float> d;
  return WithSums(d, p, g, bk, n, ratio, RmspropVec<decltype(d)>(d, {m, v, lr, wd, a, eps, mu}));
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
HWY_EXPORT(AdamWithSums);
HWY_EXPORT(RmspropWithSums);

BlockSums adam_with_sums(float* p, const float* g, float* m, float* v, float* bk, size_t n, float lr, float wd,
                         bool decoupled, float b1, float b2, float eps, float c1, float c2s, bool ratio) {
  return HWY_DYNAMIC_DISPATCH(AdamWithSums)(p, g, m, v, bk, n, lr, wd, decoupled, b1, b2, eps, c1, c2s, ratio);
}

BlockSums rmsprop_with_sums(float* p, const float* g, float* m, float* v, float* bk, size_t n, float lr, float wd,
                            float a, float eps, float mu, bool ratio) {
  return HWY_DYNAMIC_DISPATCH(RmspropWithSums)(p, g, m, v, bk, n, lr, wd, a, eps, mu, ratio);
}

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
