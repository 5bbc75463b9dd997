// Matrix products with one side of at most 16 (a classifier's output layer: 10 units), in Highway, dispatched at
// run time. OpenBLAS packs both operands and pads the thin side to its register tile, and spends 10-20 us on a
// 128x10x128 product that is 2.6 us of multiply-adds at this machine's rate; these loops read the operands where
// they are. Each keeps 8 vector accumulators (A B^T: 8 rows of C by its 16 columns, against B transposed by
// blocks; A^T B: 4 rows by 2 vectors; A B: 2 rows by 4 vectors) so the FMA units stay busy.
// The reference is kernels::gemm_ref (tests/kernels_test.cpp, ThinGemm).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/thin_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cstddef>

HWY_BEFORE_NAMESPACE();
namespace rectifier::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// R rows of C = rows of A times Bt (kb x W, W = NV L floats per row: B's block transposed, zero past n), added to C
// when add: NV vectors of accumulators per row, each A (r, p) broadcast against Bt's row p.
template <int R, int NV, class D>
HWY_INLINE void ThinRows(D d, const float* HWY_RESTRICT A, int lda, const float* HWY_RESTRICT bt, int kb, int n,
                         float* HWY_RESTRICT C, int ldc, bool add) {
  const size_t L = hn::Lanes(d), W = NV * L;
  hn::Vec<D> c[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) c[r][v] = hn::Zero(d);
  for (int p = 0; p < kb; ++p) {
    hn::Vec<D> b[NV];
    for (int v = 0; v < NV; ++v) b[v] = hn::Load(d, bt + size_t(p) * W + size_t(v) * L);
    for (int r = 0; r < R; ++r) {
      const auto a = hn::Set(d, A[size_t(r) * size_t(lda) + size_t(p)]);
      for (int v = 0; v < NV; ++v) c[r][v] = hn::MulAdd(a, b[v], c[r][v]);
    }
  }
  HWY_ALIGN float row[16];
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < NV; ++v) hn::Store(c[r][v], d, row + size_t(v) * L);
    float* cr = C + size_t(r) * size_t(ldc);
    for (int j = 0; j < n; ++j) cr[j] = add ? cr[j] + row[j] : row[j];
  }
}

// C (m, n) = A (m, k) B (n, k)^T + (acc ? C : 0), n <= 16. B is transposed by blocks of k into a buffer of n floats
// per k, padded to 16, then each row of A is a sum of its entries times those rows (8 rows at a time
// with one vector per row, fewer with more): no horizontal sums. The dot products of rows, each summed across its
// lanes at the end, took 10.3 us for the MLP's 128 x 10 x 128 output layer; this, 4-5.
template <int NV, class D>
HWY_INLINE void ThinNTBy(D d, int m, int n, int k, const float* HWY_RESTRICT A, int lda, const float* HWY_RESTRICT B,
                         int ldb, float* HWY_RESTRICT C, int ldc, bool acc) {
  constexpr int kKB = 128, R = NV == 1 ? 8 : NV == 2 ? 4 : NV == 4 ? 2 : 1;  // 8 vectors of accumulators
  const size_t W = NV * hn::Lanes(d);  // 16
  HWY_ALIGN float bt[kKB * 16];
  for (int p0 = 0; p0 < k; p0 += kKB) {
    const int kb = std::min(kKB, k - p0);
    for (int p = 0; p < kb; ++p)
      for (size_t j = 0; j < W; ++j) bt[size_t(p) * W + j] = int(j) < n ? B[j * size_t(ldb) + size_t(p0 + p)] : 0.0f;
    const bool add = acc || p0 > 0;
    const float* a = A + p0;
    int i = 0;
    for (; i + R <= m; i += R) ThinRows<R, NV>(d, a + size_t(i) * lda, lda, bt, kb, n, C + size_t(i) * ldc, ldc, add);
    for (; i < m; ++i) ThinRows<1, NV>(d, a + size_t(i) * lda, lda, bt, kb, n, C + size_t(i) * ldc, ldc, add);
  }
}

void ThinNT(int m, int n, int k, const float* HWY_RESTRICT A, int lda, const float* HWY_RESTRICT B, int ldb,
            float* HWY_RESTRICT C, int ldc, bool acc) {
  const hn::ScalableTag<float> d;
  if (k == 0) {
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) C[size_t(i) * ldc + j] = acc ? C[size_t(i) * ldc + j] : 0.0f;
    return;
  }
  constexpr int kNV = int(16 / hn::MaxLanes(d));  // the vectors of 16 floats (n <= 16) on this target
  ThinNTBy<kNV>(d, m, n, k, A, lda, B, ldb, C, ldc, acc);
}

// C (m, n) = A (k, m)^T B (k, n) + (acc ? C : 0), m <= 16: for 4 rows of C and 2 vectors of its columns at a time,
// the k rows of B scaled by A's entries and summed.
void ThinTN(int m, int n, int k, const float* HWY_RESTRICT A, int lda, const float* HWY_RESTRICT B, int ldb,
            float* HWY_RESTRICT C, int ldc, bool acc) {
  const hn::ScalableTag<float> d;
  const int L = int(hn::Lanes(d)), nv = n / (2 * L) * (2 * L);
  for (int o = 0; o < m; o += 4) {
    const int outs = std::min(4, m - o);
    int c4[4];
    for (int j = 0; j < 4; ++j) c4[j] = o + std::min(j, outs - 1);
    for (int q = 0; q < nv; q += 2 * L) {
      auto a00 = hn::Zero(d), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
      for (int p = 0; p < k; ++p) {
        const float* b = B + size_t(p) * ldb + q;
        const float* a = A + size_t(p) * lda;
        const auto b0 = hn::LoadU(d, b), b1 = hn::LoadU(d, b + L);
        const auto s0 = hn::Set(d, a[c4[0]]), s1 = hn::Set(d, a[c4[1]]), s2 = hn::Set(d, a[c4[2]]), s3 = hn::Set(d, a[c4[3]]);
        a00 = hn::MulAdd(s0, b0, a00); a01 = hn::MulAdd(s0, b1, a01);
        a10 = hn::MulAdd(s1, b0, a10); a11 = hn::MulAdd(s1, b1, a11);
        a20 = hn::MulAdd(s2, b0, a20); a21 = hn::MulAdd(s2, b1, a21);
        a30 = hn::MulAdd(s3, b0, a30); a31 = hn::MulAdd(s3, b1, a31);
      }
      const decltype(a00) lo[4] = {a00, a10, a20, a30}, hi[4] = {a01, a11, a21, a31};
      for (int j = 0; j < outs; ++j) {
        float* c = C + size_t(o + j) * ldc + q;
        hn::StoreU(acc ? hn::Add(hn::LoadU(d, c), lo[j]) : lo[j], d, c);
        hn::StoreU(acc ? hn::Add(hn::LoadU(d, c + L), hi[j]) : hi[j], d, c + L);
      }
    }
    for (int q = nv; q < n; ++q)  // the columns past the last pair of vectors
      for (int j = 0; j < outs; ++j) {
        float s = 0;
        for (int p = 0; p < k; ++p) s += A[size_t(p) * lda + o + j] * B[size_t(p) * ldb + q];
        float& c = C[size_t(o + j) * ldc + q];
        c = acc ? c + s : s;
      }
  }
}

// C (m, n) = A (m, k) B (k, n) + (acc ? C : 0), k <= 16: for 2 rows of C and 4 vectors of its columns at a time,
// the k rows of B scaled by the rows' entries of A and summed.
void ThinNN(int m, int n, int k, const float* HWY_RESTRICT A, int lda, const float* HWY_RESTRICT B, int ldb,
            float* HWY_RESTRICT C, int ldc, bool acc) {
  const hn::ScalableTag<float> d;
  const int L = int(hn::Lanes(d)), nv = n / (4 * L) * (4 * L);
  for (int i = 0; i < m; i += 2) {
    const int rows = std::min(2, m - i);
    const float* a[2] = {A + size_t(i) * lda, A + size_t(i + rows - 1) * lda};
    for (int q = 0; q < nv; q += 4 * L) {
      auto c00 = hn::Zero(d), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
      for (int p = 0; p < k; ++p) {
        const float* b = B + size_t(p) * ldb + q;
        const auto b0 = hn::LoadU(d, b), b1 = hn::LoadU(d, b + L), b2 = hn::LoadU(d, b + 2 * L), b3 = hn::LoadU(d, b + 3 * L);
        const auto s0 = hn::Set(d, a[0][p]), s1 = hn::Set(d, a[1][p]);
        c00 = hn::MulAdd(s0, b0, c00); c01 = hn::MulAdd(s0, b1, c01);
        c02 = hn::MulAdd(s0, b2, c02); c03 = hn::MulAdd(s0, b3, c03);
        c10 = hn::MulAdd(s1, b0, c10); c11 = hn::MulAdd(s1, b1, c11);
        c12 = hn::MulAdd(s1, b2, c12); c13 = hn::MulAdd(s1, b3, c13);
      }
      const decltype(c00) out[2][4] = {{c00, c01, c02, c03}, {c10, c11, c12, c13}};
      for (int r = 0; r < rows; ++r) {
        float* c = C + size_t(i + r) * ldc + q;
        for (int v = 0; v < 4; ++v)
          hn::StoreU(acc ? hn::Add(hn::LoadU(d, c + v * L), out[r][v]) : out[r][v], d, c + v * L);
      }
    }
    for (int r = 0; r < rows; ++r)  // the columns past the last group of 4 vectors
      for (int q = nv; q < n; ++q) {
        float s = 0;
        for (int p = 0; p < k; ++p) s += a[r][p] * B[size_t(p) * ldb + q];
        float& c = C[size_t(i + r) * ldc + q];
        c = acc ? c + s : s;
      }
  }
}

}  // namespace rectifier::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/gemm.h"

namespace rectifier::kernels {
HWY_EXPORT(ThinNT);
HWY_EXPORT(ThinTN);
HWY_EXPORT(ThinNN);

bool thin_gemm(bool ta, bool tb, int m, int n, int k, const float* A, int lda, const float* B, int ldb, float beta,
               float* C, int ldc) {
  if (beta != 0.0f && beta != 1.0f) return false;
  const bool acc = beta == 1.0f;
  if (!ta && tb && n <= kThin) {
    HWY_DYNAMIC_DISPATCH(ThinNT)(m, n, k, A, lda, B, ldb, C, ldc, acc);
    return true;
  }
  // A^T B walks B's columns in strips, ceil(m / 4) times: past L2 (64K floats) OpenBLAS's packing wins (a
  // 10x4096x1024 product: 19 ms against 3.7).
  if (ta && !tb && m <= kThin && size_t(k) * size_t(n) <= (size_t(1) << 16)) {
    HWY_DYNAMIC_DISPATCH(ThinTN)(m, n, k, A, lda, B, ldb, C, ldc, acc);
    return true;
  }
  if (!ta && !tb && k <= kThin) {
    HWY_DYNAMIC_DISPATCH(ThinNN)(m, n, k, A, lda, B, ldb, C, ldc, acc);
    return true;
  }
  return false;
}
}  // namespace rectifier::kernels
#endif  // HWY_ONCE
