// spmm_rows and spmm_rows_at (kernels/sparse.h) in Highway, dispatched at run time. For each block of 4 vectors of C's columns, two
// rows of C at a time keep 8 accumulators while their lists' rows of B stream past; the block of B's columns (32
// floats of each row on AVX2: 16 KB for a batch of 128) stays in L1 across the rows of C; a last group of 5 vectors
// goes in one pass.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/sparse_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cstddef>
#include <cstdint>

#include "kernels/sparse.h"

HWY_BEFORE_NAMESPACE();
namespace rectifier::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Rows r0..r1 of C, columns q..q+V*L: two rows at a time (2V accumulators: enough independent chains to hide the
// FMA latency with V = 4), then the longer list's rest, then an odd last row alone. Row r of C starts at
// C + row(r); rows r and r + 1 are each loaded, summed into and stored as a pair, so those two must not overlap.
template <int V, class D, class Row>
HWY_INLINE void Block(D d, int r0, int r1, const int32_t* HWY_RESTRICT count, size_t cap,
                      const int32_t* HWY_RESTRICT idx, const float* HWY_RESTRICT val, const float* HWY_RESTRICT B,
                      size_t ldb, size_t q, float* HWY_RESTRICT C, const Row& row, bool accumulate) {
  const size_t L = hn::Lanes(d);
  using Vec = hn::Vec<D>;
  auto start = [&](int r, Vec* acc) {
    const float* c = C + row(r) + q;
    for (int k = 0; k < V; ++k) acc[k] = accumulate ? hn::LoadU(d, c + k * L) : hn::Zero(d);
  };
  auto add = [&](int r, int j, Vec* acc) {
    const float* b = B + size_t(idx[size_t(r) * cap + size_t(j)]) * ldb + q;
    const auto s = hn::Set(d, val[size_t(r) * cap + size_t(j)]);
    for (int k = 0; k < V; ++k) acc[k] = hn::MulAdd(s, hn::LoadU(d, b + k * L), acc[k]);
  };
  auto finish = [&](int r, const Vec* acc) {
    float* c = C + row(r) + q;
    for (int k = 0; k < V; ++k) hn::StoreU(acc[k], d, c + k * L);
  };
  int r = r0;
  for (; r + 2 <= r1; r += 2) {
    const int n0 = count[r], n1 = count[r + 1];
    if (accumulate && n0 == 0 && n1 == 0) continue;  // nothing to add (units that did not fire in the batch)
    Vec a0[V], a1[V];
    start(r, a0);
    start(r + 1, a1);
    const int both = n0 < n1 ? n0 : n1;
    int j = 0;
    for (; j < both; ++j) {
      add(r, j, a0);
      add(r + 1, j, a1);
    }
    for (int j0 = j; j0 < n0; ++j0) add(r, j0, a0);
    for (int j1 = j; j1 < n1; ++j1) add(r + 1, j1, a1);
    finish(r, a0);
    finish(r + 1, a1);
  }
  if (r < r1 && !(accumulate && count[r] == 0)) {
    Vec a0[V];
    start(r, a0);
    for (int j = 0; j < count[r]; ++j) add(r, j, a0);
    finish(r, a0);
  }
}

template <class Row>
HWY_INLINE void Rows(int r0, int r1, const int32_t* HWY_RESTRICT count, int cap, const int32_t* HWY_RESTRICT idx,
                     const float* HWY_RESTRICT val, const float* HWY_RESTRICT B, size_t ldb, int ncols,
                     float* HWY_RESTRICT C, const Row& row, bool accumulate) {
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d), n = size_t(ncols), ucap = size_t(cap);
  size_t q = 0;
  // 5 vectors (a 5x5 convolution's rows of 16 channels' taps: 80 floats) in one pass rather than 4 and then 1,
  // whose pass keeps only 2 chains of FMAs and walks the lists again
  const bool five = (n / L) % 4 == 1 && n / L >= 5;
  for (; q + 4 * L <= n - (five ? 5 * L : 0); q += 4 * L) Block<4>(d, r0, r1, count, ucap, idx, val, B, ldb, q, C, row, accumulate);
  if (five) {
    Block<5>(d, r0, r1, count, ucap, idx, val, B, ldb, q, C, row, accumulate);
    q += 5 * L;
  }
  switch ((n - q) / L) {  // the last 1-3 vectors in one pass
    case 3: Block<3>(d, r0, r1, count, ucap, idx, val, B, ldb, q, C, row, accumulate); q += 3 * L; break;
    case 2: Block<2>(d, r0, r1, count, ucap, idx, val, B, ldb, q, C, row, accumulate); q += 2 * L; break;
    case 1: Block<1>(d, r0, r1, count, ucap, idx, val, B, ldb, q, C, row, accumulate); q += L; break;
    default: break;
  }
  if (q == n) return;
  for (int r = r0; r < r1; ++r) {  // the columns past the last whole vector
    float* c = C + row(r);
    const int32_t* ix = idx + size_t(r) * ucap;
    const float* v = val + size_t(r) * ucap;
    for (size_t p = q; p < n; ++p) {
      float s = accumulate ? c[p] : 0.0f;
      for (int j = 0; j < count[r]; ++j) s = hn::GetLane(hn::MulAdd(hn::Set(d, v[j]), hn::Set(d, B[size_t(ix[j]) * ldb + p]), hn::Set(d, s)));
      c[p] = s;
    }
  }
}

void SpmmRows(int r0, int r1, const int32_t* HWY_RESTRICT count, int cap, const int32_t* HWY_RESTRICT idx,
              const float* HWY_RESTRICT val, const float* HWY_RESTRICT B, size_t ldb, int ncols, float* HWY_RESTRICT C,
              size_t ldc, bool accumulate) {
  Rows(r0, r1, count, cap, idx, val, B, ldb, ncols, C, [ldc](int r) { return size_t(r) * ldc; }, accumulate);
}

// J entries of a row (values v[0..J), rows of B at b[0..J)) into its segments: each vector of C loaded once, the J
// products added in order, stored once (the same sums as adding the entries one by one).
template <int J, class D>
HWY_INLINE void ScatterEntries(D d, const float* HWY_RESTRICT v, const float* const* b, size_t bseg, float* c0,
                               size_t cseg, int segs, size_t n) {
  const size_t L = hn::Lanes(d), whole = n / L * L;
  hn::Vec<D> s[J];
  for (int j = 0; j < J; ++j) s[j] = hn::Set(d, v[j]);
  for (int sg = 0; sg < segs; ++sg) {
    float* c = c0 + size_t(sg) * cseg;
    const size_t off = size_t(sg) * bseg;
    size_t q = 0;
    for (; q < whole; q += L) {
      auto acc = hn::LoadU(d, c + q);
      for (int j = 0; j < J; ++j) acc = hn::MulAdd(s[j], hn::LoadU(d, b[j] + off + q), acc);
      hn::StoreU(acc, d, c + q);
    }
    for (; q < n; ++q) {
      auto acc = hn::Set(d, c[q]);
      for (int j = 0; j < J; ++j) acc = hn::MulAdd(s[j], hn::Set(d, b[j][off + q]), acc);
      c[q] = hn::GetLane(acc);
    }
  }
}

void SpmmScatter(int r0, int r1, const int32_t* HWY_RESTRICT count, int cap, const int32_t* HWY_RESTRICT idx,
                 const float* HWY_RESTRICT val, const float* HWY_RESTRICT B, size_t ldb, size_t bseg, float* HWY_RESTRICT C,
                 const int32_t* HWY_RESTRICT at, size_t cseg, int segs, int ncols) {
  const hn::ScalableTag<float> d;
  const size_t n = size_t(ncols);
  for (int r = r0; r < r1; ++r) {
    float* c0 = C + size_t(at[r]);
    const int32_t* ix = idx + size_t(r) * size_t(cap);
    const float* vr = val + size_t(r) * size_t(cap);
    // The row's entries by fours (a few per row: one switch per row, not a loop of 1-2 turns per vector)
    for (int j = 0; j < count[r]; j += 4) {
      const float* b[4];
      const int J = count[r] - j < 4 ? count[r] - j : 4;
      for (int e = 0; e < J; ++e) b[e] = B + size_t(ix[j + e]) * ldb;
      switch (J) {
        case 4: ScatterEntries<4>(d, vr + j, b, bseg, c0, cseg, segs, n); break;
        case 3: ScatterEntries<3>(d, vr + j, b, bseg, c0, cseg, segs, n); break;
        case 2: ScatterEntries<2>(d, vr + j, b, bseg, c0, cseg, segs, n); break;
        default: ScatterEntries<1>(d, vr + j, b, bseg, c0, cseg, segs, n); break;
      }
    }
  }
}

void SpmmRowsAt(int r0, int r1, const int32_t* HWY_RESTRICT count, int cap, const int32_t* HWY_RESTRICT idx,
                const float* HWY_RESTRICT val, const float* HWY_RESTRICT B, size_t ldb, int ncols, float* HWY_RESTRICT C,
                const int32_t* HWY_RESTRICT at, bool accumulate) {
  Rows(r0, r1, count, cap, idx, val, B, ldb, ncols, C, [at](int r) { return size_t(at[r]); }, accumulate);
}

size_t CountNonzero(const float* HWY_RESTRICT x, size_t n) {
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d);
  const auto zero = hn::Zero(d);
  size_t zeros = 0, j = 0;  // counted as equal to zero: a NaN is not (Ne would not count it either)
  for (; j + 2 * L <= n; j += 2 * L)
    zeros += hn::CountTrue(d, hn::Eq(hn::LoadU(d, x + j), zero)) + hn::CountTrue(d, hn::Eq(hn::LoadU(d, x + j + L), zero));
  return j - zeros + count_nonzero_ref(x + j, n - j);
}

}  // namespace rectifier::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE

namespace rectifier::kernels {
HWY_EXPORT(SpmmRows);
HWY_EXPORT(SpmmRowsAt);
HWY_EXPORT(SpmmScatter);
HWY_EXPORT(CountNonzero);

size_t count_nonzero(const float* x, size_t n) { return HWY_DYNAMIC_DISPATCH(CountNonzero)(x, n); }

void spmm_rows(int r0, int r1, const int32_t* count, int cap, const int32_t* idx, const float* val, const float* B,
               size_t ldb, int ncols, float* C, size_t ldc, bool accumulate) {
  HWY_DYNAMIC_DISPATCH(SpmmRows)(r0, r1, count, cap, idx, val, B, ldb, ncols, C, ldc, accumulate);
}

void spmm_rows_at(int r0, int r1, const int32_t* count, int cap, const int32_t* idx, const float* val, const float* B,
                  size_t ldb, int ncols, float* C, const int32_t* at, bool accumulate) {
  HWY_DYNAMIC_DISPATCH(SpmmRowsAt)(r0, r1, count, cap, idx, val, B, ldb, ncols, C, at, accumulate);
}

void spmm_scatter(int r0, int r1, const int32_t* count, int cap, const int32_t* idx, const float* val, const float* B,
                  size_t ldb, size_t bseg, float* C, const int32_t* at, size_t cseg, int segs, int ncols) {
  HWY_DYNAMIC_DISPATCH(SpmmScatter)(r0, r1, count, cap, idx, val, B, ldb, bseg, C, at, cseg, segs, ncols);
}
}  // namespace rectifier::kernels
#endif  // HWY_ONCE
