// Products with a sparse left operand, for the gradients behind a ReLU. After a ReLU most of a dense layer's output
// gradient is exactly zero (the units that did not fire: 70-80% in the reference MLP after a few epochs), and the
// multiply-adds with those zeros are wasted. The layer gathers each row's non-zero entries into a list
// (nonzero_list), then C (r, :) = [C (r, :) +] sum over the list of val * B (idx, :) walks only those rows of B.
// A convolution behind a ReLU and a max pooling has even fewer (93-95% zero for the reference CNN's second one):
// with its input in HWC order a window's row of taps is a row of consecutive floats, and both its gradients are
// such products (src/layers_conv.cpp, Conv2D::sparse_backward), the input gradient's with overlapping rows of C
// (spmm_rows_at).
//
// The plain loop here is the reference the tests use; spmm_rows (sparse_hwy.cpp, dispatched at run time) is the
// kernel. Both add each row's terms in list order, one row of C by one thread, so the result does not depend on
// the number of threads.
#pragma once
#include <cstddef>
#include <cstdint>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace rectifier::kernels {

// Rows r0..r1 of C (ldc) from the lists of rows r: count[r] entries at idx/val + r * cap; B has ldb and ncols.
void spmm_rows(int r0, int r1, const int32_t* count, int cap, const int32_t* idx, const float* val, const float* B,
               size_t ldb, int ncols, float* C, size_t ldc, bool accumulate);

// The same with row r of C at C + at[r] (rows may overlap, as the windows of a convolution's input: each row is
// loaded, summed into and stored in turn, two at a time, so rows r and r + 1 for even r - r0 must not overlap).
void spmm_rows_at(int r0, int r1, const int32_t* count, int cap, const int32_t* idx, const float* val, const float* B,
                  size_t ldb, int ncols, float* C, const int32_t* at, bool accumulate);

// For short lists (a few entries per row: a convolution's input gradient, 1-2 channels per position): for each row r,
// in order, and each of its entries j, for each of segs segments s,
//   C (at[r] + s cseg + q) += val[j] B (idx[j] ldb + s bseg + q), q < ncols,
// a row's entries by groups of up to 4 (one switch on the group's size per row, where a loop over 1-2 entries per
// vector of C would mostly mispredict), each vector of C loaded and stored once per group: the same sums, in the same
// order, as one entry at a time (which stored every vector of C once per entry: the reference CNN's step was 2-3%
// longer). Rows may overlap anywhere (they are added one after the other); the segments of a row must not.
void spmm_scatter(int r0, int r1, const int32_t* count, int cap, const int32_t* idx, const float* val, const float* B,
                  size_t ldb, size_t bseg, float* C, const int32_t* at, size_t cseg, int segs, int ncols);

template <class T>
void spmm_scatter_ref(int r0, int r1, const int32_t* count, int cap, const int32_t* idx, const float* val, const T* B,
                      size_t ldb, size_t bseg, T* C, const int32_t* at, size_t cseg, int segs, int ncols) {
  for (int r = r0; r < r1; ++r)
    for (int j = 0; j < count[r]; ++j) {
      const size_t e = size_t(r) * size_t(cap) + size_t(j);
      for (int s = 0; s < segs; ++s)
        for (int q = 0; q < ncols; ++q)
          C[size_t(at[r]) + size_t(s) * cseg + size_t(q)] += T(val[e]) * B[size_t(idx[e]) * ldb + size_t(s) * bseg + size_t(q)];
    }
}

// How many of x[0..n) are non-zero (-0 is zero, a NaN is not): the sparse paths' test of a matrix's density.
// count_nonzero_ref is the plain loop and the oracle; count_nonzero (sparse_hwy.cpp) counts a vector's comparison
// at a time, dispatched at run time (over the convolutions' dy it made the reference CNN's step 1-2% shorter than
// the compiler's loop for the baseline SSE2 target, with its 64-bit count).
inline size_t count_nonzero_ref(const float* __restrict x, size_t n) {
  size_t nnz = 0;
  for (size_t j = 0; j < n; ++j) nnz += x[j] != 0.0f;
  return nnz;
}
size_t count_nonzero(const float* x, size_t n);

// The non-zero entries of row[0..len), in order: their positions into idx and values into val; returns how many.
// Branch-free (every entry is written, the count moves on for a non-zero): at 25% non-zero a branch would miss
// about every third entry. Highway's CompressStore was 2.6 times slower than a plain branching loop on this
// project's machine (250 against 94 us for 128 rows of 256; this loop: 28).
inline int nonzero_list(const float* __restrict row, int len, int32_t* __restrict idx, float* __restrict val) {
  int k = 0;
  for (int u = 0; u < len; ++u) {
    const float v = row[u];
    idx[k] = u;
    val[k] = v;
    k += v != 0.0f;
  }
  return k;
}

// f(j) for each j in [lo, hi) where row[j] != 0, in order: words of 64 entries are tested at once, and only the
// non-zero ones are visited (the loop over a word's set bits ends once per word: with groups of 8, whose loops
// ended every few entries, most of those ends mispredicted), then groups of 8, then one by one.
template <class F>
inline void for_each_nonzero(const float* __restrict row, int lo, int hi, F&& f) {
  // bit j of the result set where row[u + j] != 0, j < 4 g
  auto mask = [row](int u, int g) {
    uint64_t m = 0;
#ifdef __SSE2__  // every x86-64: a compare and a sign mask per 4 entries, instead of four scalar compares
    const __m128 z = _mm_setzero_ps();
    for (int q = 0; q < g; ++q)
      m |= uint64_t(unsigned(_mm_movemask_ps(_mm_cmpneq_ps(_mm_loadu_ps(row + u + 4 * q), z)))) << (4 * q);
#else
    for (int j = 0; j < 4 * g; ++j) m |= uint64_t(row[u + j] != 0.0f) << j;
#endif
    return m;
  };
  int u = lo;
  for (; u + 64 <= hi; u += 64)
    for (uint64_t m = mask(u, 16); m; m &= m - 1) f(u + __builtin_ctzll(m));
  for (; u + 8 <= hi; u += 8)
    for (uint64_t m = mask(u, 2); m; m &= m - 1) f(u + __builtin_ctzll(m));
  for (; u < hi; ++u)
    if (row[u] != 0.0f) f(u);
}

// The same as nonzero_list for rows that are almost all zero (a convolution's dy behind a ReLU and a max pooling:
// 93-95% zero), by for_each_nonzero.
inline int nonzero_list_sparse(const float* __restrict row, int len, int32_t* __restrict idx, float* __restrict val) {
  int k = 0;
  for_each_nonzero(row, 0, len, [&](int j) {
    idx[k] = j;
    val[k++] = row[j];
  });
  return k;
}

// The reference for spmm_rows and spmm_rows_at: row r of C at C + at[r], or at C + r * ldc when at is null.
template <class T>
void spmm_rows_ref(int r0, int r1, const int32_t* count, int cap, const int32_t* idx, const float* val, const T* B,
                   size_t ldb, int ncols, T* C, size_t ldc, bool accumulate, const int32_t* at = nullptr) {
  for (int r = r0; r < r1; ++r) {
    T* c = C + (at ? size_t(at[r]) : size_t(r) * ldc);
    const int32_t* ix = idx + size_t(r) * size_t(cap);
    const float* v = val + size_t(r) * size_t(cap);
    for (int q = 0; q < ncols; ++q) {
      T s = accumulate ? c[q] : T(0);
      for (int j = 0; j < count[r]; ++j) s += T(v[j]) * B[size_t(ix[j]) * ldb + size_t(q)];
      c[q] = s;
    }
  }
}

}  // namespace rectifier::kernels
