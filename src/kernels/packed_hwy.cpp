// y = x W^T for a dense layer's forward in float, with W packed once per product and shared by the threads
// (kernels/packed.h), in Highway, dispatched at run time. Each thread's OpenBLAS call packed the whole of W for
// itself: a quarter of the product's time in the reference MLP's first layer (sgemm_incopy, 7.4% of a step's
// samples against sgemm_kernel's 22%). Here the threads pack half the panels each, and the register tile reads the
// rows of x where they are (broadcasts), so x is not packed at all.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/packed_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include "kernels/nonzero-inl.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>

HWY_BEFORE_NAMESPACE();
namespace rectifier::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

size_t PanelWidth() { return 2 * hn::Lanes(hn::ScalableTag<float>()); }

// Panels p0..p1 of W (n rows of k): panel p holds rows [p NR, p NR + NR) interleaved by k, P[p][kk][j] =
// W[p NR + j][kk], zero past row n.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
#undef RECTIFIER_TRANSPOSE8
#define RECTIFIER_TRANSPOSE8 1
// The 8 rows r[0..8) of 8 floats, transposed in registers: r[t] becomes column t (256-bit vectors, on AVX2 and on
// the AVX-512 targets alike).
template <class D>
HWY_INLINE void Transpose8(D d, hn::Vec<D>* r) {
  const hn::Repartition<double, D> dd;
  auto a = [&](int i, int j) { return hn::BitCast(dd, hn::InterleaveLower(d, r[i], r[j])); };
  auto b = [&](int i, int j) { return hn::BitCast(dd, hn::InterleaveUpper(d, r[i], r[j])); };
  const auto t0 = a(0, 1), t1 = b(0, 1), t2 = a(2, 3), t3 = b(2, 3);
  const auto t4 = a(4, 5), t5 = b(4, 5), t6 = a(6, 7), t7 = b(6, 7);
  // Columns 0, 1, 4, 5 (in each 128-bit half: 0 and 1 in the low half, 4 and 5 in the high) of rows 0-3 and 4-7
  const auto u0 = hn::BitCast(d, hn::InterleaveLower(dd, t0, t2)), u1 = hn::BitCast(d, hn::InterleaveUpper(dd, t0, t2));
  const auto u2 = hn::BitCast(d, hn::InterleaveLower(dd, t1, t3)), u3 = hn::BitCast(d, hn::InterleaveUpper(dd, t1, t3));
  const auto u4 = hn::BitCast(d, hn::InterleaveLower(dd, t4, t6)), u5 = hn::BitCast(d, hn::InterleaveUpper(dd, t4, t6));
  const auto u6 = hn::BitCast(d, hn::InterleaveLower(dd, t5, t7)), u7 = hn::BitCast(d, hn::InterleaveUpper(dd, t5, t7));
  r[0] = hn::ConcatLowerLower(d, u4, u0);
  r[1] = hn::ConcatLowerLower(d, u5, u1);
  r[2] = hn::ConcatLowerLower(d, u6, u2);
  r[3] = hn::ConcatLowerLower(d, u7, u3);
  r[4] = hn::ConcatUpperUpper(d, u4, u0);
  r[5] = hn::ConcatUpperUpper(d, u5, u1);
  r[6] = hn::ConcatUpperUpper(d, u6, u2);
  r[7] = hn::ConcatUpperUpper(d, u7, u3);
}
#else
#undef RECTIFIER_TRANSPOSE8
#define RECTIFIER_TRANSPOSE8 0
#endif

// Panels p0..p1 of W (n rows of k): panel p holds rows [p NR, p NR + NR) interleaved by k, P[p][kk][j] =
// W[p NR + j][kk], zero past row n. From AVX2 up, whole panels go through 8x8 transposes in registers;
// otherwise (and for a partial last panel) a scalar loop over blocks of 64 k, whose part of the panel stays in L1.
void PackPanels(const float* HWY_RESTRICT W, int n, int k, int p0, int p1, float* HWY_RESTRICT P) {
  const int nr = int(PanelWidth());
  for (int p = p0; p < p1; ++p) {
    float* HWY_RESTRICT dst = P + size_t(p) * size_t(k) * size_t(nr);
    const int rows = std::min(nr, n - p * nr);
    const float* w = W + size_t(p) * size_t(nr) * size_t(k);
    int kk = 0;
#if RECTIFIER_TRANSPOSE8
    if (rows == nr) {
      const hn::FixedTag<float, 8> d;
      for (; kk + 8 <= k; kk += 8)
        for (int g = 0; g < nr; g += 8) {
          hn::Vec<decltype(d)> r[8];
          for (int t = 0; t < 8; ++t) r[t] = hn::LoadU(d, w + size_t(g + t) * size_t(k) + size_t(kk));
          Transpose8(d, r);
          for (int t = 0; t < 8; ++t) hn::StoreU(r[t], d, dst + size_t(kk + t) * size_t(nr) + size_t(g));
        }
    }
#endif
    for (int k0 = kk; k0 < k; k0 += 64) {
      const int k1 = std::min(k, k0 + 64);
      for (int j = 0; j < nr; ++j) {
        const float* src = w + size_t(j) * size_t(k);
        for (int q = k0; q < k1; ++q) dst[size_t(q) * size_t(nr) + size_t(j)] = j < rows ? src[q] : 0.0f;
      }
    }
  }
}

// C rows [0, MR) x one panel's 2 vectors of columns += (or =, when !acc) A rows [0, MR) (k0..k1) x the panel.
// MR x 2 accumulators (12 with MR = 6, and two for the panel's row and one broadcast: 15 of AVX2's 16 registers).
// Each output is summed over k in order, whatever the tile or thread: the same bits for any split.
template <int MR, class D>
HWY_INLINE void Tile(D d, const float* HWY_RESTRICT A, size_t lda, const float* HWY_RESTRICT Pp, int k0, int k1,
                     float* HWY_RESTRICT C, size_t ldc, bool acc) {
  const size_t L = hn::Lanes(d);
  using V = hn::Vec<D>;
  V c0[MR], c1[MR];
  for (int i = 0; i < MR; ++i) {
    c0[i] = acc ? hn::LoadU(d, C + size_t(i) * ldc) : hn::Zero(d);
    c1[i] = acc ? hn::LoadU(d, C + size_t(i) * ldc + L) : hn::Zero(d);
  }
  const float* b = Pp + size_t(k0) * 2 * L;
  for (int kk = k0; kk < k1; ++kk, b += 2 * L) {
    const V b0 = hn::LoadU(d, b), b1 = hn::LoadU(d, b + L);
    for (int i = 0; i < MR; ++i) {
      const V a = hn::Set(d, A[size_t(i) * lda + size_t(kk)]);
      c0[i] = hn::MulAdd(a, b0, c0[i]);
      c1[i] = hn::MulAdd(a, b1, c1[i]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    hn::StoreU(c0[i], d, C + size_t(i) * ldc);
    hn::StoreU(c1[i], d, C + size_t(i) * ldc + L);
  }
}

template <class D>
HWY_INLINE void TileRows(D d, int rows, const float* A, size_t lda, const float* Pp, int k0, int k1, float* C,
                         size_t ldc, bool acc) {
  switch (rows) {
    case 6: Tile<6>(d, A, lda, Pp, k0, k1, C, ldc, acc); break;
    case 5: Tile<5>(d, A, lda, Pp, k0, k1, C, ldc, acc); break;
    case 4: Tile<4>(d, A, lda, Pp, k0, k1, C, ldc, acc); break;
    case 3: Tile<3>(d, A, lda, Pp, k0, k1, C, ldc, acc); break;
    case 2: Tile<2>(d, A, lda, Pp, k0, k1, C, ldc, acc); break;
    default: Tile<1>(d, A, lda, Pp, k0, k1, C, ldc, acc); break;
  }
}

// C (m, n) = A (m, k) W^T from W's panels P. k in blocks of at most 256 (a panel's block, 16 KB on AVX2, stays in
// L1 across the row tiles); a partial last panel goes through a small buffer, so C is never written past column n.
void GemmPacked(int m, int n, int k, const float* HWY_RESTRICT A, int lda, const float* HWY_RESTRICT P,
                float* HWY_RESTRICT C, int ldc) {
  const hn::ScalableTag<float> d;
  const int L = int(hn::Lanes(d)), nr = 2 * L;
  const int panels = (n + nr - 1) / nr, blocks = std::max(1, (k + 255) / 256), kc = (k + blocks - 1) / blocks;
  constexpr int kMR = 6;
  HWY_ALIGN float part[kMR * 2 * (HWY_MAX_BYTES / sizeof(float))];
  for (int k0 = 0; k0 < k; k0 += kc) {
    const int k1 = std::min(k, k0 + kc);
    const bool acc = k0 > 0;
    for (int p = 0; p < panels; ++p) {
      const float* Pp = P + size_t(p) * size_t(k) * size_t(nr);
      const int c0 = p * nr, cols = std::min(nr, n - c0);
      for (int i = 0; i < m; i += kMR) {
        const int rows = std::min(kMR, m - i);
        const float* a = A + size_t(i) * size_t(lda);
        float* c = C + size_t(i) * size_t(ldc) + size_t(c0);
        if (cols == nr) {
          TileRows(d, rows, a, size_t(lda), Pp, k0, k1, c, size_t(ldc), acc);
          continue;
        }
        for (int r = 0; r < rows && acc; ++r)
          for (int j = 0; j < cols; ++j) part[r * nr + j] = c[size_t(r) * size_t(ldc) + size_t(j)];
        TileRows(d, rows, a, size_t(lda), Pp, k0, k1, part, size_t(nr), acc);
        for (int r = 0; r < rows; ++r)
          for (int j = 0; j < cols; ++j) c[size_t(r) * size_t(ldc) + size_t(j)] = part[r * nr + j];
      }
    }
  }
}

// The same product skipping A's zeros (a layer's input behind a ReLU, or an image's background): for row i only the
// k where A (i, k) != 0. Columns go by groups of G panels (2 G vectors of accumulators), k by blocks whose part of
// the group's panels (32 KB) stays in L1 across the rows; in each block a row's non-zero k come from a bit mask of
// compares (no list is built). Each output is summed over its non-zero k in order: the same as GemmPacked's sums
// but for the zero terms, whatever the split. Needs n a multiple of the panel width.
// On one core of this project's VM (AVX-512), 64 rows of Fashion-MNIST images (48% non-zero) by 256 units: 172-190
// us against GemmPacked's 223; 64 rows at 30% non-zero by 128 (the MLP's second layer): 21-28 against 36. With P
// not 64-byte aligned it was slower than GemmPacked (250-260 us): the panels come from aligned buffers.
template <int G, class D>
HWY_INLINE void SparseGroup(D d, int m, int k, const float* HWY_RESTRICT A, size_t lda, const float* HWY_RESTRICT Pg,
                            float* HWY_RESTRICT C, size_t ldc) {
  const size_t L = hn::Lanes(d), nr = 2 * L, pstride = size_t(k) * nr;
  using V = hn::Vec<D>;
  // A group's panels hold G nr floats per k: 32 KB per block, reused by the rows (this VM's whole L1d: against
  // blocks of 16 KB, each row's loop over a block's non-zero k ends half as often, and the MLP's forward pass was 6%
  // shorter, the CNN's 3-6%; blocks of 64 KB made it 16% longer); one row (batch-1 inference) has nothing to reuse
  // and keeps its accumulators in registers over the whole of k
  const int KB = m == 1 ? k : int(8192 / (size_t(G) * nr));
  const V zero = hn::Zero(d);
  for (int k0 = 0; k0 < k; k0 += KB) {
    const int k1 = std::min(k, k0 + KB);
    for (int i = 0; i < m; ++i) {
      const float* a = A + size_t(i) * lda;
      float* c = C + size_t(i) * ldc;
      V acc[2 * G];
      for (int v = 0; v < 2 * G; ++v) acc[v] = k0 == 0 ? zero : hn::LoadU(d, c + size_t(v) * L);
      // The block's non-zero k, by words of up to 64
      for (int b0 = k0; b0 < k1; b0 += 64) {
        uint64_t bits = NonzeroBits(d, a + b0, std::min(k1, b0 + 64) - b0);
        while (bits) {
          const int j = b0 + __builtin_ctzll(bits);
          bits &= bits - 1;
          const V x = hn::Set(d, a[j]);
          const float* b = Pg + size_t(j) * nr;
          for (int g = 0; g < G; ++g) {
            acc[2 * g] = hn::MulAdd(x, hn::LoadU(d, b + size_t(g) * pstride), acc[2 * g]);
            acc[2 * g + 1] = hn::MulAdd(x, hn::LoadU(d, b + size_t(g) * pstride + L), acc[2 * g + 1]);
          }
        }
      }
      for (int v = 0; v < 2 * G; ++v) hn::StoreU(acc[v], d, c + size_t(v) * L);
    }
  }
}

void GemmPackedSparseA(int m, int n, int k, const float* HWY_RESTRICT A, int lda, const float* HWY_RESTRICT P,
                       float* HWY_RESTRICT C, int ldc) {
  const hn::ScalableTag<float> d;
  const int nr = int(PanelWidth()), panels = n / nr;
  for (int p = 0; p < panels; p += 4) {
    const float* Pg = P + size_t(p) * size_t(k) * size_t(nr);
    float* c = C + size_t(p) * size_t(nr);
    switch (std::min(4, panels - p)) {
      case 4: SparseGroup<4>(d, m, k, A, size_t(lda), Pg, c, size_t(ldc)); break;
      case 3: SparseGroup<3>(d, m, k, A, size_t(lda), Pg, c, size_t(ldc)); break;
      case 2: SparseGroup<2>(d, m, k, A, size_t(lda), Pg, c, size_t(ldc)); break;
      default: SparseGroup<1>(d, m, k, A, size_t(lda), Pg, c, size_t(ldc)); break;
    }
  }
}

}  // namespace rectifier::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/packed.h"

namespace rectifier::kernels {
HWY_EXPORT(PanelWidth);
HWY_EXPORT(PackPanels);
HWY_EXPORT(GemmPacked);
HWY_EXPORT(GemmPackedSparseA);

int packed_panel_width() { return int(HWY_DYNAMIC_DISPATCH(PanelWidth)()); }

void pack_panels(const float* W, int n, int k, int p0, int p1, float* P) {
  HWY_DYNAMIC_DISPATCH(PackPanels)(W, n, k, p0, p1, P);
}

void gemm_packed(int m, int n, int k, const float* A, int lda, const float* P, float* C, int ldc) {
  HWY_DYNAMIC_DISPATCH(GemmPacked)(m, n, k, A, lda, P, C, ldc);
}

void gemm_packed_sparse_a(int m, int n, int k, const float* A, int lda, const float* P, float* C, int ldc) {
  const int nr = packed_panel_width(), whole = n / nr * nr;
  if (whole > 0) HWY_DYNAMIC_DISPATCH(GemmPackedSparseA)(m, whole, k, A, lda, P, C, ldc);
  // a last panel of fewer than nr rows of W: the dense product (the same sums, but for the zero terms)
  if (whole < n) gemm_packed(m, n - whole, k, A, lda, P + size_t(whole) * size_t(k), C + whole, ldc);
}
}  // namespace rectifier::kernels
#endif  // HWY_ONCE
