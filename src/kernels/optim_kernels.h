// The optimizer's element-wise update rules (SGD, SGD with momentum, Adam and AdamW, RMSprop): the plain loops (the
// reference, and the double version) and the float kernels of optim_hwy.cpp, dispatched at run time, which give the
// same bits.
#pragma once
#include <cmath>
#include <cstddef>

// GCC would split the backup copy out of the update loops into a memcpy (reading p twice); keep one pass.
#if defined(__GNUC__) && !defined(__clang__)
#define RECTIFIER_ONE_PASS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define RECTIFIER_ONE_PASS
#endif

namespace rectifier::kernels {

// Adam, or AdamW when decoupled (PyTorch's rules): with c1 = 1 - beta1^t and c2s = sqrt(1 - beta2^t),
// g' = g + wd p (Adam) or p *= 1 - lr wd (AdamW); m = b1 m + (1 - b1) g'; v = b2 v + (1 - b2) g' g';
// p -= (lr / c1) m / (sqrt(v) / c2s + eps). rule(i, p, g): element i's new weight, m and v updated.
template <class T>
struct AdamRule {
  T* __restrict m;
  T* __restrict v;
  T decay, l2, b1, b2, eps, step, c2s;
  AdamRule(T* m_, T* v_, T lr, T wd, bool decoupled, T b1_, T b2_, T eps_, T c1, T c2s_)
      : m(m_), v(v_), decay(decoupled ? T(1) - lr * wd : T(1)), l2(decoupled ? T(0) : wd), b1(b1_), b2(b2_),
        eps(eps_), step(lr / c1), c2s(c2s_) {}
  T operator()(long i, T p0, T g0) const {
    const T pi = p0 * decay;
    const T gi = g0 + l2 * pi;
    const T mi = b1 * m[i] + (T(1) - b1) * gi;
    const T vi = b2 * v[i] + (T(1) - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    return pi - step * mi / (std::sqrt(vi) / c2s + eps);
  }
};

// RMSprop (PyTorch's rule): g' = g + wd p; v = a v + (1 - a) g' g'; s = g' / (sqrt(v) + eps); with momentum mu > 0,
// m = mu m + s and p -= lr m, else p -= lr s.
template <class T>
struct RmspropRule {
  T* __restrict m;
  T* __restrict v;
  T lr, wd, a, eps, mu;
  T operator()(long i, T pi, T g0) const {
    const T gi = g0 + wd * pi;
    const T vi = a * v[i] + (T(1) - a) * gi * gi;
    v[i] = vi;
    T s = gi / (std::sqrt(vi) + eps);
    if (mu > T(0)) {
      s = mu * m[i] + s;
      m[i] = s;
    }
    return pi - lr * s;
  }
};

// SGD (m null): p -= lr (g + wd p); or momentum: g' = g + wd p; m = mu m + g'; p -= lr (a g' + c m).
template <class T>
struct MomentumRule {
  T* __restrict m;
  T lr, wd, mu, a, c;
  T operator()(long i, T pi, T g0) const {
    const T gi = g0 + wd * pi;
    if (!m) return pi - lr * gi;
    const T mi = mu * m[i] + gi;
    m[i] = mi;
    return pi - lr * (a * gi + c * mi);
  }
};

// One block [0, n) of a rule: with B, bk receives p before the update, in the same pass (p is read once); g is
// read, then zeroed with Z.
template <bool B, bool Z, class T, class Rule>
RECTIFIER_ONE_PASS void rule_update_ref(T* __restrict p, T* __restrict g, T* __restrict bk, long n, const Rule& rule) {
  for (long i = 0; i < n; ++i) {
    const T pi = p[i], g0 = g[i];
    if constexpr (B) bk[i] = pi;
    if constexpr (Z) g[i] = T(0);
    p[i] = rule(i, pi, g0);
  }
}

// p -= lr (g + wd p)
template <bool B, bool Z, class T>
void sgd_update_ref(T* p, T* g, T* bk, long n, T lr, T wd) {
  rule_update_ref<B, Z>(p, g, bk, n, MomentumRule<T>{nullptr, lr, wd, T(0), T(0), T(1)});
}

// g' = g + wd p; m = mu m + g'; p -= lr (a g' + c m): plain momentum with a = 0, c = 1, Nesterov with a = 1, c = mu.
template <bool B, bool Z, class T>
void momentum_update_ref(T* p, T* g, T* m, T* bk, long n, T lr, T wd, T mu, T a, T c) {
  rule_update_ref<B, Z>(p, g, bk, n, MomentumRule<T>{m, lr, wd, mu, a, c});
}

template <bool B, bool Z, class T>
void adam_update_ref(T* p, T* g, T* m, T* v, T* bk, long n, T lr, T wd, bool decoupled, T b1, T b2, T eps, T c1,
                     T c2s) {
  rule_update_ref<B, Z>(p, g, bk, n, AdamRule<T>(m, v, lr, wd, decoupled, b1, b2, eps, c1, c2s));
}

template <bool B, bool Z, class T>
void rmsprop_update_ref(T* p, T* g, T* m, T* v, T* bk, long n, T lr, T wd, T a, T eps, T mu) {
  rule_update_ref<B, Z>(p, g, bk, n, RmspropRule<T>{m, v, lr, wd, a, eps, mu});
}

// The monitor's sums over one block of an update (Monitor::prepare_step): g2 = sum g^2, and with the ratio
// du = sum (p after - p before)^2 and w = sum (p before)^2.
struct BlockSums {
  double g2 = 0, du = 0, w = 0;
};

// The sums from their 32 lanes, added in order to those of the elements past the last 32 (fg, fu, fw).
template <class T>
inline BlockSums finish_sums(const T* lg, const double* lu, const double* lw, T fg, double fu, double fw) {
  for (int k = 0; k < 32; ++k) fg += lg[k], fu += lu[k], fw += lw[k];
  return {double(fg), fu, fw};
}

// Element i of rule_with_sums_ref: its update by rule, and its terms added to the sums sg, su, sw.
template <class T, class Rule>
inline void rule_one_with_sums(T* __restrict p, const T* __restrict g, T* __restrict bk, long i, const Rule& rule,
                               bool ratio, T& sg, double& su, double& sw) {
  const T pi = p[i], g0 = g[i];
  if (bk) bk[i] = pi;
  const T now = rule(i, pi, g0);
  p[i] = now;
  sg += g0 * g0;
  if (ratio) {
    const double d = double(now) - double(pi);
    su += d * d;
    sw += double(pi) * double(pi);
  }
}

// One block [0, n) of a rule (MomentumRule, AdamRule, RmspropRule), in the same pass as its sums, each in 32 lanes
// (lane k takes elements k, k + 32, ...), then the elements past the last 32 in order, then the lanes in order. g2
// in float lanes, to double at the end: the bits of sum_squares_ref over a block of up to 4096, which the monitor's
// own pass takes. du and w in double lanes, of the float values made double, as add_update_sums (only the order of
// the additions differs). g is only read (the caller checks g2 for a non-finite gradient before clearing it); bk,
// if not null, receives p first.
template <class T, class Rule>
BlockSums rule_with_sums_ref(T* __restrict p, const T* __restrict g, T* __restrict bk, long n, const Rule& rule,
                             bool ratio) {
  T lg[32] = {};
  double lu[32] = {}, lw[32] = {};
  long j = 0;
  for (; j + 32 <= n; j += 32)
    for (long k = 0; k < 32; ++k) rule_one_with_sums(p, g, bk, j + k, rule, ratio, lg[k], lu[k], lw[k]);
  T fg = 0;
  double fu = 0, fw = 0;
  for (; j < n; ++j) rule_one_with_sums(p, g, bk, j, rule, ratio, fg, fu, fw);
  return finish_sums(lg, lu, lw, fg, fu, fw);
}

// The SGD rule (m null) or momentum with the sums.
template <class T>
BlockSums update_with_sums_ref(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict bk, long n, T lr,
                               T wd, T mu, T a, T c, bool ratio) {
  return rule_with_sums_ref(p, g, bk, n, MomentumRule<T>{m, lr, wd, mu, a, c}, ratio);
}

// sgd_update_ref and momentum_update_ref in float, dispatched: bk may be null (no backup); zero_g is Z.
void sgd_update(float* p, float* g, float* bk, size_t n, float lr, float wd, bool zero_g);
void momentum_update(float* p, float* g, float* m, float* bk, size_t n, float lr, float wd, float mu, float a, float c,
                     bool zero_g);
// adam_update_ref and rmsprop_update_ref in float, dispatched: bk may be null (no backup); zero_g is Z.
void adam_update(float* p, float* g, float* m, float* v, float* bk, size_t n, float lr, float wd, bool decoupled,
                 float b1, float b2, float eps, float c1, float c2s, bool zero_g);
void rmsprop_update(float* p, float* g, float* m, float* v, float* bk, size_t n, float lr, float wd, float a, float eps,
                    float mu, bool zero_g);
// rule_with_sums_ref of Adam (AdamRule) and RMSprop (RmspropRule) in float, dispatched: the same bits on every
// target.
BlockSums adam_with_sums(float* p, const float* g, float* m, float* v, float* bk, size_t n, float lr, float wd,
                         bool decoupled, float b1, float b2, float eps, float c1, float c2s, bool ratio);
BlockSums rmsprop_with_sums(float* p, const float* g, float* m, float* v, float* bk, size_t n, float lr, float wd,
                            float a, float eps, float mu, bool ratio);
// update_with_sums_ref in float, dispatched: the same bits on every target.
BlockSums update_with_sums(float* p, const float* g, float* m, float* bk, size_t n, float lr, float wd, float mu,
                           float a, float c, bool ratio);

}  // namespace rectifier::kernels
