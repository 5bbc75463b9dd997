// The optimizer's element-wise update rules for SGD and SGD with momentum: the plain loops (the reference, and the
// double version) and the float kernels of optim_hwy.cpp, dispatched at run time, which give the same bits.
#pragma once
#include <cstddef>

// GCC would split the backup copy out of the update loops into a memcpy (reading p twice); keep one pass.
#if defined(__GNUC__) && !defined(__clang__)
#define RECTIFIER_ONE_PASS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define RECTIFIER_ONE_PASS
#endif

namespace rectifier::kernels {

// One block [0, n) of each update rule. Every pointer is restrict-qualified and every constant a value, so the
// compiler vectorises the loops (captured references made it re-load lr and mu per element and stay scalar).
// With B, bk receives p before the update, in the same pass (p is read once); with Z, g is zeroed after it is read.
// p -= lr (g + wd p)
template <bool B, bool Z, class T>
RECTIFIER_ONE_PASS void sgd_update_ref(T* __restrict p, T* __restrict g, T* __restrict bk, long n, T lr, T wd) {
  for (long i = 0; i < n; ++i) {
    const T pi = p[i], gi = g[i];
    if constexpr (B) bk[i] = pi;
    if constexpr (Z) g[i] = T(0);
    p[i] = pi - lr * (gi + wd * pi);
  }
}

// g' = g + wd p; m = mu m + g'; p -= lr (a g' + c m): plain momentum with a = 0, c = 1, Nesterov with a = 1, c = mu.
template <bool B, bool Z, class T>
RECTIFIER_ONE_PASS void momentum_update_ref(T* __restrict p, T* __restrict g, T* __restrict m, T* __restrict bk, long n,
                                            T lr, T wd, T mu, T a, T c) {
  for (long i = 0; i < n; ++i) {
    const T pi = p[i];
    if constexpr (B) bk[i] = pi;
    const T gi = g[i] + wd * pi;
    if constexpr (Z) g[i] = T(0);
    const T mi = mu * m[i] + gi;
    m[i] = mi;
    p[i] = pi - lr * (a * gi + c * mi);
  }
}

// The same in float, dispatched: bk may be null (no backup); zero_g is Z.
void sgd_update(float* p, float* g, float* bk, size_t n, float lr, float wd, bool zero_g);
void momentum_update(float* p, float* g, float* m, float* bk, size_t n, float lr, float wd, float mu, float a, float c,
                     bool zero_g);

}  // namespace rectifier::kernels
