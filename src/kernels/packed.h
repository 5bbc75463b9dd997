// y = x W^T with W (a dense layer's weight, [out][in]) packed once per product into panels that every thread reads
// (packed_hwy.cpp, dispatched at run time). The reference is kernels::gemm_ref (tests/kernels_test.cpp,
// PackedGemm).
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstddef>

#include "kernels/gemm.h"

namespace rectifier::kernels {

// Rows of W per panel on the running target (two vectors: 16 floats with AVX2, 32 with AVX-512).
int packed_panel_width();
// Floats that the panels of W (n rows of k) take.
inline size_t packed_size(int n, int k) {
  const size_t nr = size_t(packed_panel_width());
  return (size_t(n) + nr - 1) / nr * nr * size_t(k);
}
// Panels p0..p1 of W (n rows of k) into P (packed_size floats): panel p holds rows [p NR, p NR + NR) interleaved
// by k, zero past row n. Panels are disjoint: threads may pack different ranges at once.
void pack_panels(const float* W, int n, int k, int p0, int p1, float* P);
// C (m, n) = A (m, k) W^T, W given by its panels P. Each output is summed over k in order: the result does not
// depend on how the rows are split between calls.
void gemm_packed(int m, int n, int k, const float* A, int lda, const float* P, float* C, int ldc);
// The same, visiting only A's non-zero entries (behind a ReLU, or an image's background): each output is the same
// sum over k in order without its zero terms (so the same bits, but for the sign of a zero sum, and an infinite or
// NaN weight facing a zero, which does not reach C). A last panel of fewer than the panel width's rows of W (n not
// a multiple of it) is multiplied in full (gemm_packed).
void gemm_packed_sparse_a(int m, int n, int k, const float* A, int lda, const float* P, float* C, int ldc);

// C (m, n) = A (m, k) W^T over the OpenMP threads, in one parallel region: each thread packs a share of W's panels
// into P (packed_size(n, k) floats), then, after a barrier, computes a block of whole rows of C (sized by
// SplitBalance, as pgemm's) and calls epilogue(row0, rows, 0, n) on it while it is in cache. Each output is summed
// in the same order whatever the split: the result does not depend on the thread count. W null: P already holds
// W's panels (weights packed once for inference, Predictor), and nothing is packed.
template <class Epilogue>
void pgemm_nt_packed(int m, int n, int k, const float* A, int lda, const float* W, float* P, float* C, int ldc,
                     Epilogue&& epilogue, bool sparse_a = false) {
  auto product = [&](int rows, const float* a, float* c) {
    if (sparse_a) gemm_packed_sparse_a(rows, n, k, a, lda, P, c, ldc);
    else gemm_packed(rows, n, k, a, lda, P, c, ldc);
  };
  const int nr = packed_panel_width(), panels = (n + nr - 1) / nr;
  const int threads = omp_in_parallel() || double(m) * n * k < 1e6 ? 1 : std::min(omp_get_max_threads(), SplitBalance::kMax);
  if (threads == 1) {
    if (W) pack_panels(W, n, k, 0, panels, P);
    product(m, A, C);
    epilogue(0, m, 0, n);
    return;
  }
  // Blocks of whole 6-row tiles for the dense product; any rows for the sparse one, which takes a row at a time:
  // 128 rows are 21 tiles and a third, so tiles could not split them closer than 66 to 62.
  balanced_blocks(m, sparse_a ? 1 : 6, threads, true /* no split changes a bit */, [&](int t, int got) {
    if (!W) return;
    pack_panels(W, n, k, int(long(panels) * t / got), int(long(panels) * (t + 1) / got), P);
#pragma omp barrier
  }, [&](int lo, int hi) {
    product(hi - lo, A + size_t(lo) * size_t(lda), C + size_t(lo) * size_t(ldc));
    epilogue(lo, hi - lo, 0, n);
  });
}

// y (n) = x (k) W^T for one example, W given by its panels P (packed once: Predictor). The panels are split over
// the threads when W is large (each thread's share of P then stays in its own core's cache from call to call);
// with sparse_x only x's non-zero entries are visited (gemm_packed_sparse_a: for an image, or the output of a ReLU,
// half the bytes of W or fewer, where the matrix-vector product reads all of them). Each output is summed over k in
// order, whatever the split.
inline void packed_gemv(int n, int k, const float* x, const float* P, float* y, bool sparse_x) {
  const int nr = packed_panel_width(), panels = (n + nr - 1) / nr;
  const int threads = omp_in_parallel() || size_t(n) * size_t(k) < 65536 ? 1 : std::min(omp_get_max_threads(), panels);
  auto part = [&](int p0, int p1) {
    const int c0 = p0 * nr, cols = std::min(n, p1 * nr) - c0;
    const float* Pp = P + size_t(p0) * size_t(k) * size_t(nr);
    if (sparse_x) gemm_packed_sparse_a(1, cols, k, x, k, Pp, y + c0, n);
    else gemm_packed(1, cols, k, x, k, Pp, y + c0, n);
  };
  if (threads == 1) return part(0, panels);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int p0 = int(long(panels) * t / nt), p1 = int(long(panels) * (t + 1) / nt);
    if (p1 > p0) part(p0, p1);
  }
}

}  // namespace rectifier::kernels
