// Matrix products through OpenBLAS (and thin_hwy.cpp for a side of at most 16), with a plain reference for the
// tests. Row-major throughout.
#pragma once
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstddef>

namespace rectifier::kernels {

// Products whose thin side (n of A B^T, m of A^T B, k of A B) is at most kThin: thin_hwy.cpp. Returns false (and
// does nothing) for other shapes, for A^T B with B over 64K floats, and for beta other than 0 or 1; alpha is 1.
constexpr int kThin = 16;
bool thin_gemm(bool ta, bool tb, int m, int n, int k, const float* A, int lda, const float* B, int ldb, float beta,
               float* C, int ldc);

// C (m, n) = alpha * op(A) (m, k) * op(B) (k, n) + beta * C
inline void gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* A, int lda, const float* B, int ldb,
                 float beta, float* C, int ldc) {
  if (alpha == 1.0f && thin_gemm(ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc)) return;
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, A, lda,
              B, ldb, beta, C, ldc);
}
inline void gemm(bool ta, bool tb, int m, int n, int k, double alpha, const double* A, int lda, const double* B,
                 int ldb, double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, A, lda,
              B, ldb, beta, C, ldc);
}

// How the threads of a parallel product share it. On a shared host one core can run a third slower than the other
// for seconds at a time (presumably its hardware twin busy with another guest); an even split then makes every
// product wait for the slow core. The split follows each thread's measured speed instead: after every product, each
// thread's speed relative to the others' (its block's size over its time) moves a running average, and the next
// product's blocks are sized from it, so the threads finish together and the slow core does less. Where the blocks
// end changes OpenBLAS's rounding: with more than one thread the last bits of a run depend on timing.
// set_adaptive(false) (rectifier::set_deterministic(true)) splits evenly: bit-identical runs at a fixed thread
// count. Products whose every output is computed the same way whichever block it falls in (the packed forward, the
// sparse backward) ask with any_split_exact and follow the measured speeds in either mode.
class SplitBalance {
 public:
  static constexpr int kMax = 64;
  SplitBalance() {
    for (auto& s : speed_) s.store(1.0, std::memory_order_relaxed);
  }
  static SplitBalance& get() {  // the one pgemm uses
    static SplitBalance b;
    return b;
  }
  // bounds[0..nt]: nt contiguous blocks of [0, len), each a multiple of align but the last. Even while not adaptive,
  // unless any_split_exact (the caller's results do not depend on where the blocks end).
  void split(int len, int align, int nt, int* bounds, bool any_split_exact = false) const {  // nt <= kMax
    const int units = (len + align - 1) / align;
    const bool measured = any_split_exact || adaptive();
    double total = 0, share[kMax];
    for (int t = 0; t < nt; ++t) total += share[t] = measured ? speed_[t].load(std::memory_order_relaxed) : 1.0;
    bounds[0] = 0;
    double acc = 0;
    for (int t = 0; t < nt; ++t) {
      acc += share[t];
      bounds[t + 1] = t + 1 == nt ? len : std::min(len, int(units * acc / total + 0.5) * align);
    }
  }
  // After a product: work and seconds of each thread's block
  void record(int nt, const double* work, const double* seconds) {
    if (nt > kMax) return;  // measured in either mode: split(..., any_split_exact) uses it even when not adaptive
    double rate[kMax], sum = 0;
    int measured = 0;
    for (int t = 0; t < nt; ++t) {
      rate[t] = work[t] > 0 && seconds[t] > 0 ? work[t] / seconds[t] : 0;
      if (rate[t] > 0) sum += rate[t], ++measured;
    }
    if (measured < nt) return;  // a thread without work gives no comparison
    for (int t = 0; t < nt; ++t) {
      const double rel = std::clamp(rate[t] * nt / sum, 0.25, 4.0);
      const double old = speed_[t].load(std::memory_order_relaxed);
      speed_[t].store(old + kWeight * (rel - old), std::memory_order_relaxed);
    }
  }
  bool adaptive() const { return on_.load(std::memory_order_relaxed); }
  void set_adaptive(bool on) {
    on_.store(on, std::memory_order_relaxed);
    for (auto& s : speed_) s.store(1.0, std::memory_order_relaxed);
  }

 private:
  static constexpr double kWeight = 0.2;  // a core's change of speed is followed within a few products
  std::atomic<double> speed_[kMax];
  std::atomic<bool> on_{true};
};

// One parallel region of nt threads over [0, len) in nt blocks sized by SplitBalance (each a multiple of align but
// the last; any_split_exact as for SplitBalance::split): each thread first calls before(t, got) (its share of work
// that all blocks need, with a barrier of its own if the blocks must wait for it), then block(lo, hi) for its block.
// With fewer threads than asked, blocks go round-robin and are not timed; otherwise their times move the balance.
template <class Before, class Block>
void balanced_blocks(int len, int align, int nt, bool any_split_exact, Before&& before, Block&& block) {
  int bounds[SplitBalance::kMax + 1];
  double work[SplitBalance::kMax], seconds[SplitBalance::kMax];
  SplitBalance& balance = SplitBalance::get();
  balance.split(len, align, nt, bounds, any_split_exact);
  int ran = nt;  // threads the region got
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), got = omp_get_num_threads();
    if (t == 0) ran = got;
    before(t, got);
    for (int b = t; b < nt; b += got) {
      const int lo = bounds[b], hi = bounds[b + 1];
      const double t0 = omp_get_wtime();
      if (hi > lo) block(lo, hi);
      work[b] = hi - lo;
      seconds[b] = omp_get_wtime() - t0;
    }
  }
  if (ran == nt) balance.record(nt, work, seconds);
}

// C = alpha op(A) op(B) + beta C with the work split over the OpenMP threads by blocks of C's rows or columns (the
// larger side, or rows when whole_rows), each block one single-threaded GEMM (OpenBLAS's OpenMP build runs
// single-threaded inside a parallel region), sized by SplitBalance. For the batch-sized products of training this
// beats OpenBLAS's own threading, which barely scales on them. After its block, a thread calls
// epilogue(row0, rows, col0, cols) while the block is still in cache; with whole_rows every block is whole rows of C
// (examples, for a layer's output), so the epilogue can run the layers that follow on them.
template <class T, class Epilogue>
void pgemm(bool ta, bool tb, int m, int n, int k, T alpha, const T* A, int lda, const T* B, int ldb, T beta, T* C, int ldc,
           Epilogue&& epilogue, bool whole_rows = false) {
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads == 1 || double(m) * n * k < 1e6) {
    gemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
    epilogue(0, m, 0, n);
    return;
  }
  const bool split_rows = whole_rows || m >= n;
  balanced_blocks(split_rows ? m : n, split_rows ? 4 : 16, std::min(threads, SplitBalance::kMax), false,
                  [](int, int) {}, [&](int lo, int hi) {
    if (split_rows) {
      gemm(ta, tb, hi - lo, n, k, alpha, ta ? A + lo : A + size_t(lo) * lda, lda, B, ldb, beta, C + size_t(lo) * ldc, ldc);
      epilogue(lo, hi - lo, 0, n);
    } else {
      gemm(ta, tb, m, hi - lo, k, alpha, A, lda, tb ? B + size_t(lo) * ldb : B + lo, ldb, beta, C + lo, ldc);
      epilogue(0, m, lo, hi - lo);
    }
  });
}

template <class T>
void pgemm(bool ta, bool tb, int m, int n, int k, T alpha, const T* A, int lda, const T* B, int ldb, T beta, T* C, int ldc) {
  pgemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, [](int, int, int, int) {});
}

// y (m) = A (m, k) x (k), rows split over the threads when the matrix is large (each thread's rows then stay in its
// own L2 from call to call): the batch-1 inference path.
inline void pgemv(int m, int k, const float* A, const float* x, float* y) {
  // OpenBLAS's GEMV kernels are picked for the running CPU; inside the parallel region each call is single-threaded.
  const int threads = omp_in_parallel() || size_t(m) * k < 65536 ? 1 : omp_get_max_threads();
  if (threads == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, m, k, 1.0f, A, k, x, 1, 0.0f, y, 1);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int lo = int(size_t(m) * t / nt), hi = int(size_t(m) * (t + 1) / nt);
    if (hi > lo) cblas_sgemv(CblasRowMajor, CblasNoTrans, hi - lo, k, 1.0f, A + size_t(lo) * k, k, x, 1, 0.0f, y + lo, 1);
  }
}
inline void pgemv(int m, int k, const double* A, const double* x, double* y) {
  cblas_dgemv(CblasRowMajor, CblasNoTrans, m, k, 1.0, A, k, x, 1, 0.0, y, 1);
}

// The reference: three loops, accumulated in double.
template <class T>
void gemm_ref(bool ta, bool tb, int m, int n, int k, T alpha, const T* A, int lda, const T* B, int ldb, T beta, T* C,
              int ldc) {
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double s = 0;
      for (int p = 0; p < k; ++p) s += double(ta ? A[p * lda + i] : A[i * lda + p]) * double(tb ? B[j * ldb + p] : B[p * ldb + j]);
      C[i * ldc + j] = T(alpha * s + (beta == T(0) ? 0.0 : double(beta) * C[i * ldc + j]));
    }
}

}  // namespace rectifier::kernels
