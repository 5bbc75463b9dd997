// Every fast kernel against its plain scalar reference.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <tuple>
#include <omp.h>
#include "kernels/conv_direct.h"
#include "kernels/conv_kernels.h"
#include "kernels/gemm.h"
#include "kernels/monitor_kernels.h"
#include "kernels/optim_kernels.h"
#include "kernels/packed.h"
#include "kernels/reduce.h"
#include "rectifier/activation.h"
#include "rectifier/trainer.h"
#include "test_util.h"

namespace rectifier {

class ActivationKernel : public ::testing::TestWithParam<std::string> {};

// Sizes around the SIMD widths, the parallel threshold (64K) and the chunking.
TEST_P(ActivationKernel, MatchesScalarReference) {
  const Activation a = *parse_activation(GetParam());
  for (size_t n : {size_t(1), size_t(7), size_t(16), size_t(33), size_t(65535), size_t(65536), size_t(200003)}) {
    Rng rng(n);
    std::vector<float> x(n), dy(n), y(n), dx(n);
    for (size_t i = 0; i < n; ++i) { x[i] = float(4 * rng.normal()); dy[i] = float(rng.normal()); }
    if (n > 3) { x[0] = 0.0f; x[1] = -0.0f; x[2] = 6.0f; }
    act_forward(a, x.data(), y.data(), n);
    act_backward(a, x.data(), dy.data(), dx.data(), n);
    // The reference in double; the kernels (SIMD exp, expm1, log1p, tanh) and the float scalar loop must both be
    // within 2e-6 of it, relative above 1 (a few float ulps; mish's derivative, 1 - tanh^2 near 1, needs that).
    for (size_t i = 0; i < n; ++i) {
      const double ry = act_value(a, double(x[i])), rdx = double(dy[i]) * act_derivative(a, double(x[i]));
      const double ty = 2e-6 * std::max(1.0, std::abs(ry)), tdx = 2e-6 * std::max(1.0, std::abs(rdx));
      ASSERT_NEAR(y[i], ry, ty) << GetParam() << " n=" << n << " i=" << i << " x=" << x[i];
      ASSERT_NEAR(dx[i], rdx, tdx) << GetParam() << " n=" << n << " i=" << i << " x=" << x[i];
      ASSERT_NEAR(act_value(a, x[i]), ry, ty) << GetParam() << " float reference, x=" << x[i];
      ASSERT_NEAR(dy[i] * act_derivative(a, x[i]), rdx, tdx) << GetParam() << " float reference, x=" << x[i];
    }
    if (a.kind == Act::relu) {  // ReLU is exact: the input itself or zero
      for (size_t i = 0; i < n; ++i) ASSERT_TRUE(std::memcmp(&y[i], &x[i], 4) == 0 || y[i] == 0.0f);
    }
  }
}
INSTANTIATE_TEST_SUITE_P(All, ActivationKernel,
                         ::testing::Values("relu", "relu(prime0=1)", "leaky_relu", "elu", "selu", "gelu", "silu", "relu6",
                                           "softplus", "mish", "sigmoid", "tanh", "identity"));

// The mask path (forward keeps x > 0 as bits, backward reads them) and the streaming-store path for large arrays.
TEST(ActivationKernel, ReluMaskAndStreamingMatchReference) {
  const size_t streamed = relu_stream_bytes() / sizeof(float) + 5;  // the first size written with streaming stores
  const size_t streamed_from_x = relu_stream_bytes() * 2 / 3 / sizeof(float) + 5;  // by relu_backward alone
  ASSERT_LE(streamed, size_t(1) << 28) << "a last-level cache of over 2 GB?";
  for (size_t n : {size_t(1), size_t(15), size_t(65536 + 7), streamed_from_x, streamed}) {
    Rng rng(n);
    std::vector<float> x(n), y(n), dy(n), dx(n), dx2(n);
    for (size_t i = 0; i < n; ++i) { x[i] = float(rng.normal()); dy[i] = float(rng.normal()); }
    x[0] = 0.0f;
    std::vector<uint8_t> mask(relu_mask_bytes(n));
    relu_forward(x.data(), y.data(), mask.data(), n);
    relu_backward_mask(mask.data(), dy.data(), dx.data(), n);
    relu_backward(x.data(), dy.data(), dx2.data(), n);
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(y[i], x[i] < 0 ? 0.0f : x[i]) << n << " " << i;
      ASSERT_EQ(dx[i], x[i] > 0 ? dy[i] : 0.0f) << n << " " << i;
      ASSERT_EQ(dx2[i], dx[i]) << n << " " << i;
    }
  }
}

// Sigmoid and tanh backward from the output against the derivative at the input.
TEST(ActivationKernel, BackwardFromOutputMatchesReference) {
  for (const char* name : {"sigmoid", "tanh"}) {
    const Activation a = *parse_activation(name);
    const size_t n = 100003;
    Rng rng(3);
    std::vector<float> x(n), y(n), dy(n), dx(n);
    for (size_t i = 0; i < n; ++i) { x[i] = float(6 * rng.normal()); dy[i] = float(rng.normal()); }
    act_forward(a, x.data(), y.data(), n);
    ASSERT_TRUE(act_backward_from_output(a, y.data(), dy.data(), dx.data(), n));
    for (size_t i = 0; i < n; ++i) {
      const float ref = dy[i] * act_derivative(a, x[i]);
      ASSERT_NEAR(dx[i], ref, 1e-6f * std::max(1.0f, std::abs(ref))) << name << " at x=" << x[i];
    }
  }
  float y = 0.5f, dy = 1, dx = 0;
  EXPECT_FALSE(act_backward_from_output(*parse_activation("relu"), &y, &dy, &dx, 1));
}

TEST(ActivationKernel, ReluPropagatesNaN) {
  float x[2] = {std::nanf(""), -1.0f}, y[2];
  act_forward(*parse_activation("relu"), x, y, 2);
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], 0.0f);
}

TEST(Gemm, MatchesReferenceInAllTranspositions) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const int m = 13, n = 17, k = 29;
      auto A = test::random_vec(size_t(m * k), 1), B = test::random_vec(size_t(k * n), 2), C = test::random_vec(size_t(m * n), 3);
      auto R = C;
      const int lda = ta ? m : k, ldb = tb ? k : n;
      kernels::gemm(ta, tb, m, n, k, 0.5, A.data(), lda, B.data(), ldb, 2.0, C.data(), n);
      kernels::gemm_ref(ta, tb, m, n, k, 0.5, A.data(), lda, B.data(), ldb, 2.0, R.data(), n);
      for (size_t i = 0; i < C.size(); ++i) ASSERT_NEAR(C[i], R[i], 1e-12);
      std::vector<float> Af(A.begin(), A.end()), Bf(B.begin(), B.end()), Cf(size_t(m * n)), Rf(size_t(m * n));
      kernels::gemm(ta, tb, m, n, k, 1.0f, Af.data(), lda, Bf.data(), ldb, 0.0f, Cf.data(), n);
      kernels::gemm_ref(ta, tb, m, n, k, 1.0f, Af.data(), lda, Bf.data(), ldb, 0.0f, Rf.data(), n);
      for (size_t i = 0; i < Cf.size(); ++i) ASSERT_NEAR(Cf[i], Rf[i], 1e-4);
    }
}

// The split of a parallel product follows the threads' measured speeds: even at first and when turned off, two
// thirds to a thread twice as fast, never nothing to a very slow one; blocks aligned, covering the range.
TEST(Gemm, SplitFollowsMeasuredSpeed) {
  kernels::SplitBalance b;
  int bounds[4];
  auto check = [&](int len, int align, int nt) {
    EXPECT_EQ(bounds[0], 0);
    EXPECT_EQ(bounds[nt], len);
    for (int t = 0; t < nt; ++t) {
      EXPECT_LE(bounds[t], bounds[t + 1]);
      if (t + 1 < nt) {
        EXPECT_EQ(bounds[t + 1] % align, 0);
      }
    }
  };
  b.split(784, 16, 2, bounds);
  check(784, 16, 2);
  EXPECT_EQ(bounds[1], 400);  // 49 blocks of 16: 25 and 24
  const double work[2] = {392, 392}, half_speed[2] = {1e-3, 2e-3}, crawl[2] = {1e-3, 1.0};
  for (int i = 0; i < 40; ++i) b.record(2, work, half_speed);
  b.split(784, 16, 2, bounds);
  check(784, 16, 2);
  EXPECT_NEAR(bounds[1], 784 * 2 / 3, 16);
  for (int i = 0; i < 40; ++i) b.record(2, work, crawl);
  b.split(128, 4, 2, bounds);
  check(128, 4, 2);
  EXPECT_GT(bounds[1], 100);
  EXPECT_LT(bounds[1], 128);  // a crawling thread still gets work, so its speed keeps being measured
  b.split(100, 4, 3, bounds);
  check(100, 4, 3);
  b.set_adaptive(false);
  b.split(784, 16, 2, bounds);
  EXPECT_EQ(bounds[1], 400);
  for (int i = 0; i < 40; ++i) b.record(2, work, half_speed);  // measured, but not used while off...
  b.split(784, 16, 2, bounds);
  EXPECT_EQ(bounds[1], 400);
  b.split(784, 16, 2, bounds, true);  // ...but by the products that no split changes
  EXPECT_NEAR(bounds[1], 784 * 2 / 3, 16);
  b.set_adaptive(true);
  b.split(784, 16, 2, bounds);
  EXPECT_EQ(bounds[1], 400);
}

// pgemm split unevenly (the shared balance told that one thread is three times slower), by rows and by columns, in
// every transposition, against the reference; the epilogue sees each block once.
TEST(Gemm, UnevenParallelSplitMatchesReference) {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(2);
  kernels::SplitBalance& b = kernels::SplitBalance::get();
  const double work[2] = {1, 1}, slow[2] = {1e-3, 3e-3};
  for (const auto& [m, n, k] : {std::tuple{200, 72, 90}, std::tuple{72, 200, 90}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        const int lda = ta ? m : k, ldb = tb ? k : n;
        const auto Ad = test::random_vec(size_t(m * k), 1), Bd = test::random_vec(size_t(k * n), 2);
        std::vector<float> A(Ad.begin(), Ad.end()), B(Bd.begin(), Bd.end()), C(size_t(m * n), 1.0f), R = C;
        std::vector<int> seen(size_t(m * n), 0);
        for (int i = 0; i < 40; ++i) b.record(2, work, slow);  // each product measures anew: set it before each
        int bounds[3];
        b.split(std::max(m, n), 4, 2, bounds);
        ASSERT_GT(bounds[1], std::max(m, n) * 2 / 3);
        kernels::pgemm(ta, tb, m, n, k, 1.0f, A.data(), lda, B.data(), ldb, 1.0f, C.data(), n, [&](int r0, int rows, int c0, int cols) {
          for (int i = r0; i < r0 + rows; ++i)
            for (int j = c0; j < c0 + cols; ++j) ++seen[size_t(i * n + j)];
        });
        kernels::gemm_ref(ta, tb, m, n, k, 1.0f, A.data(), lda, B.data(), ldb, 1.0f, R.data(), n);
        for (size_t i = 0; i < C.size(); ++i) {
          ASSERT_NEAR(C[i], R[i], 1e-4) << m << "x" << n << " ta " << ta << " tb " << tb << " at " << i;
          ASSERT_EQ(seen[i], 1) << m << "x" << n << " at " << i;
        }
      }
  b.set_adaptive(true);  // back to an even start for the other tests
  omp_set_num_threads(threads);
}

// The packed product y = x W^T (the dense layers' forward in float) against the reference: partial row tiles
// (m not a multiple of 6), partial and lone panels (n past a multiple of the panel width, and n under it), k under a
// transpose block of 8, not a multiple of 8, and over a block of 256 (three blocks); padded leading dimensions, and
// nothing written past column n.
TEST(PackedGemm, MatchesReference) {
  const int nr = kernels::packed_panel_width();
  for (int m : {1, 5, 6, 13, 64})
    for (int n : {1, nr - 1, nr, nr + 3, 2 * nr + 1, 70})
      for (int k : {1, 7, 8, 29, 300, 784}) {
        const int lda = k + 3, ldc = n + 2;
        const auto ad = test::random_vec(size_t(m) * lda, 50 + m), wd = test::random_vec(size_t(n) * k, 51 + n);
        const std::vector<float> A(ad.begin(), ad.end()), W(wd.begin(), wd.end());
        std::vector<float> P(kernels::packed_size(n, k), -1.0f), C(size_t(m) * ldc, 7.0f), R(C);
        const int panels = (n + nr - 1) / nr;
        kernels::pack_panels(W.data(), n, k, 0, panels / 2, P.data());  // in two ranges, as two threads do
        kernels::pack_panels(W.data(), n, k, panels / 2, panels, P.data());
        kernels::gemm_packed(m, n, k, A.data(), lda, P.data(), C.data(), ldc);
        kernels::gemm_ref(false, true, m, n, k, 1.0f, A.data(), lda, W.data(), k, 0.0f, R.data(), ldc);
        for (int i = 0; i < m; ++i)
          for (int j = 0; j < ldc; ++j) {
            const size_t at = size_t(i) * ldc + size_t(j);
            if (j >= n) ASSERT_EQ(C[at], 7.0f) << "wrote past column " << n << ": " << m << "x" << n << "x" << k;
            else ASSERT_NEAR(C[at], R[at], 1e-5f * (1 + std::abs(R[at])) * std::sqrt(float(k)))
                     << m << "x" << n << "x" << k << " at " << i << "," << j;
          }
      }
}

// The product that skips A's zeros: the same values as gemm_packed (its sums without their zero terms) for rows of
// every density (all zero, a few non-zero, about half, none zero), n over one to five panels and k not a multiple
// of a vector or of a block; nothing written past column n. One row alone as well (batch-1 inference: its own
// blocking of k). Rows given by pgemm_nt_packed over threads as well.
TEST(PackedGemm, SparseInputMatchesDense) {
  const int nr = kernels::packed_panel_width();
  for (int m : {19, 1})
  for (int n : {nr, 2 * nr, 5 * nr, 70})
    for (int k : {1, 13, 300, 784}) {
      const int lda = k + 5, ldc = n + 3;
      const auto ad = test::random_vec(size_t(m) * lda, 60 + k), wd = test::random_vec(size_t(n) * k, 61 + n);
      std::vector<float> A(ad.begin(), ad.end());
      const std::vector<float> W(wd.begin(), wd.end());
      for (int i = 0; i < m; ++i)  // row i: all zero (i = 0), then denser and denser, none zero for the last
        for (int j = 0; j < k; ++j) {
          float& a = A[size_t(i) * lda + size_t(j)];
          if (m == 1 ? j % 3 != 1 : i == 0 || (i < m - 1 && (j * 7 + i * 3) % (m - 1) >= i)) a = 0.0f;
        }
      std::vector<float> P(kernels::packed_size(n, k)), C(size_t(m) * ldc, 7.0f), R(C);
      kernels::pack_panels(W.data(), n, k, 0, (n + nr - 1) / nr, P.data());
      kernels::gemm_packed_sparse_a(m, n, k, A.data(), lda, P.data(), C.data(), ldc);
      kernels::gemm_packed(m, n, k, A.data(), lda, P.data(), R.data(), ldc);
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < ldc; ++j) {
          const size_t at = size_t(i) * ldc + size_t(j);
          if (j >= n) ASSERT_EQ(C[at], 7.0f) << "wrote past column " << n << ": " << n << "x" << k;
          else ASSERT_EQ(C[at], R[at]) << n << "x" << k << " at " << i << "," << j;
        }
      std::vector<float> T(size_t(m) * n);
      kernels::pgemm_nt_packed(m, n, k, A.data(), lda, W.data(), P.data(), T.data(), n, [](int, int, int, int) {}, true);
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) ASSERT_EQ(T[size_t(i) * n + size_t(j)], R[size_t(i) * ldc + size_t(j)]) << i << "," << j;
    }
}

// A NaN or an infinity in A is not a zero to skip: it reaches its row's outputs, as in the dense product, on every
// target (Highway's Ne is false for a NaN on AVX2 and AVX-512: the bit masks use Not(Eq)). One row alone as well.
TEST(PackedGemm, SparseInputKeepsNaNAndInfinity) {
  const int nr = kernels::packed_panel_width();
  for (int m : {3, 1})
    for (int k : {100, 784}) {
      const int n = 2 * nr;
      std::vector<float> A(size_t(m) * k, 0.0f), W(size_t(n) * k, 0.5f), P(kernels::packed_size(n, k)), C(size_t(m) * n);
      A[5] = std::numeric_limits<float>::quiet_NaN();
      A[7] = 1.0f;
      if (m > 1) {
        A[size_t(k) + 70] = std::numeric_limits<float>::infinity();
        A[2 * size_t(k) + 3] = 2.0f;
      }
      kernels::pack_panels(W.data(), n, k, 0, 2, P.data());
      kernels::gemm_packed_sparse_a(m, n, k, A.data(), k, P.data(), C.data(), n);
      for (int j = 0; j < n; ++j) {
        EXPECT_TRUE(std::isnan(C[size_t(j)])) << "row 0, column " << j << ", k " << k;
        if (m > 1) {
          EXPECT_EQ(C[size_t(n) + size_t(j)], std::numeric_limits<float>::infinity()) << "row 1, column " << j;
          EXPECT_EQ(C[2 * size_t(n) + size_t(j)], 1.0f) << "row 2, column " << j;
        }
      }
    }
}

// Split over two threads unevenly (one told three times slower), and over one: the same bits, since each output is
// summed in the same order whatever the split; the epilogue sees each row once, with all the columns. Dense, and
// skipping zeros (half of A zero), whose blocks may end at any row rather than at a 6-row tile.
TEST(PackedGemm, SplitDoesNotChangeBits) {
  const int threads = omp_get_max_threads();
  kernels::SplitBalance& b = kernels::SplitBalance::get();
  const int m = 130, n = 256, k = 784;
  const auto ad = test::random_vec(size_t(m) * k, 3), wd = test::random_vec(size_t(n) * k, 4);
  std::vector<float> A(ad.begin(), ad.end());
  const std::vector<float> W(wd.begin(), wd.end());
  for (size_t j = 0; j < A.size(); j += 2) A[j] = 0.0f;
  for (bool sparse : {false, true}) {
    std::vector<float> P(kernels::packed_size(n, k)), one(size_t(m) * n), two(one.size());
    std::vector<int> seen(size_t(m), 0);
    int first_end = -1;
    omp_set_num_threads(1);
    kernels::pgemm_nt_packed(m, n, k, A.data(), k, W.data(), P.data(), one.data(), n, [](int, int, int, int) {}, sparse);
    omp_set_num_threads(2);
    const double work[2] = {1, 1}, slow[2] = {1e-3, 3e-3};
    for (int i = 0; i < 40; ++i) b.record(2, work, slow);
    kernels::pgemm_nt_packed(m, n, k, A.data(), k, W.data(), P.data(), two.data(), n, [&](int r0, int rows, int c0, int cols) {
      EXPECT_EQ(c0, 0);
      EXPECT_EQ(cols, n);
      if (r0 == 0) first_end = rows;
      for (int i = r0; i < r0 + rows; ++i) ++seen[size_t(i)];
    }, sparse);
    b.set_adaptive(true);
    omp_set_num_threads(threads);
    for (int i = 0; i < m; ++i) ASSERT_EQ(seen[size_t(i)], 1) << "row " << i << (sparse ? ", sparse" : "");
    ASSERT_EQ(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)), 0) << (sparse ? "sparse" : "dense");
    // about three quarters of the rows for the fast thread (the running average is near 3:1 after 40 products):
    // whole tiles for the dense product, any row for the sparse one
    EXPECT_NEAR(first_end, 97, 3);
    if (sparse) {
      EXPECT_NE(first_end % 6, 0);
    } else {
      EXPECT_EQ(first_end % 6, 0);
    }
  }
}

// One example against panels packed once (inference): packed_gemv on one thread and split over two, dense and
// skipping zeros, is the row gemm_packed computes, bit for bit (each output summed over k in order); n over whole
// panels and not (a last panel of a few rows), small (one thread whatever the count) and large. And
// pgemm_nt_packed given no W uses the panels as they are: the same bits as packing them itself.
TEST(PackedGemm, PrepackedOneExample) {
  const int threads = omp_get_max_threads(), nr = kernels::packed_panel_width();
  for (int n : {nr, 8 * nr, 8 * nr + 5, 70})
    for (int k : {13, 784}) {
      const auto xd = test::random_vec(size_t(k), 70 + k), wd = test::random_vec(size_t(n) * k, 71 + n);
      std::vector<float> x(xd.begin(), xd.end());
      for (int j = 0; j < k; ++j)
        if (j % 5 < 3) x[size_t(j)] = 0.0f;  // 40% non-zero, as an image
      const std::vector<float> W(wd.begin(), wd.end());
      std::vector<float> P(kernels::packed_size(n, k)), R(static_cast<size_t>(n)), y(static_cast<size_t>(n));
      kernels::pack_panels(W.data(), n, k, 0, (n + nr - 1) / nr, P.data());
      kernels::gemm_packed(1, n, k, x.data(), k, P.data(), R.data(), n);
      for (int t : {1, 2})
        for (bool sparse : {false, true}) {
          omp_set_num_threads(t);
          std::fill(y.begin(), y.end(), -1.0f);
          kernels::packed_gemv(n, k, x.data(), P.data(), y.data(), sparse);
          ASSERT_EQ(std::memcmp(y.data(), R.data(), R.size() * sizeof(float)), 0)
              << n << "x" << k << ", " << t << " threads, sparse " << sparse;
        }
      omp_set_num_threads(threads);
      const int m = 9;
      std::vector<float> A(size_t(m) * k), C1(size_t(m) * n), C2(C1.size()), P2(P.size());
      for (size_t i = 0; i < A.size(); ++i) A[i] = x[i % size_t(k)] * float(1 + i % 3);
      kernels::pgemm_nt_packed(m, n, k, A.data(), k, W.data(), P2.data(), C1.data(), n, [](int, int, int, int) {}, true);
      kernels::pgemm_nt_packed(m, n, k, A.data(), k, nullptr, P.data(), C2.data(), n, [](int, int, int, int) {}, true);
      ASSERT_EQ(std::memcmp(C1.data(), C2.data(), C1.size() * sizeof(float)), 0) << n << "x" << k;
    }
}

// The im2col + GEMM convolution layer against direct convolution, in float, over strides, padding and batch sizes
// large enough to need several image groups.
TEST(ConvKernel, LayerMatchesDirectConvolution) {
  struct Case { const char* text; Shape in; int n; };
  for (const auto& c : {Case{"conv(16,5,pad=2)", {1, 28, 28}, 3}, Case{"conv(8,3,stride=2,pad=1)", {4, 9, 11}, 5},
                        Case{"conv(4,3)", {6, 14, 14}, 70}}) {  // 6 channels: not Winograd's (winograd_test.cpp)
    auto spec = parse_arch(c.text, ArchContext{}).at(0);
    Model<float> m({spec}, c.in);
    m.init(InitSpec{}, 1);
    const auto& out = m.output_shape();
    kernels::ConvGeometry g{c.in[0], c.in[1], c.in[2], spec.units, spec.kernel, spec.stride, spec.pad, out[1], out[2]};
    auto xd = test::random_vec(size_t(c.n) * numel(c.in), 2);
    for (size_t i = 0; i < 4 && i < size_t(spec.units); ++i) m.params()[m.num_params() - 1 - i] = 0.1f * float(i);  // bias
    for (int sparse = 0; sparse < 2; ++sparse) {
      // sparse: the inputs zero by bands of 3 rows alternating with the channel, and in the other bands but for
      // one value in 23 (the direct path skips the rows of taps that read only zeros: a lone value must still reach
      // every window that holds it), the first image all zero, -0 in some zero places, and a NaN, which must reach
      // the outputs whose windows hold it
      std::vector<float> x(xd.begin(), xd.end()), ref(size_t(c.n) * numel(out));
      const size_t plane = size_t(c.in[1]) * size_t(c.in[2]);
      if (sparse) {
        for (size_t i = 0; i < x.size(); ++i) {
          const size_t img = i / (plane * size_t(c.in[0])), ch = i / plane % size_t(c.in[0]), row = i % plane / size_t(c.in[2]);
          if (img == 0 || (row / 3 + ch) % 2 == 0 || (img % 2 == 1 && (i * 2654435761u) % 23 != 0))
            x[i] = i % 7 == 0 ? -0.0f : 0.0f;
        }
        x[x.size() - plane / 2] = std::nanf("");
      }
      const float* y = m.forward(x.data(), c.n, true);
      const float* W = m.params();
      const float* b = W + size_t(spec.units) * c.in[0] * spec.kernel * spec.kernel;
      kernels::conv2d_ref(g, x.data(), W, b, ref.data(), c.n);
      for (size_t i = 0; i < ref.size(); ++i) {
        if (std::isnan(ref[i])) ASSERT_TRUE(std::isnan(y[i])) << c.text << " at " << i << ": the NaN was skipped";
        else ASSERT_NEAR(y[i], ref[i], 1e-4) << c.text << (sparse ? " (sparse)" : "") << " at " << i;
      }
    }
  }
}

// Both max-pooling paths (the 2x2 fast one and the general loop) against the reference, on values with many ties
// (small integers), negative windows and NaNs: the same maxima and the same argmax.
TEST(PoolKernel, MaxPoolMatchesReferenceWithTiesAndNaN) {
  for (int k : {2, 3, 5})
  for (int w : {6, 10, 14, 28, 40}) {  // rows narrower than a vector, the reference CNN's, several vectors plus a tail
    const int h = 12, c = 3, n = 2, s = 2, oh = (h - k) / s + 1, ow = (w - k) / s + 1;
    kernels::ConvGeometry g{c, h, w, c, k, s, 0, oh, ow};
    Rng rng{uint64_t(k * w)};
    std::vector<float> x(size_t(n) * c * h * w);
    for (auto& v : x) v = float(int(rng.below(7))) - 4.0f;
    for (size_t i = 5; i < x.size(); i += 37) x[i] = std::nanf("");
    const size_t m = size_t(n) * c * oh * ow;
    std::vector<float> y(m), ry(m);
    std::vector<uint8_t> am(m), ram(m);
    kernels::maxpool_forward(g, x.data(), y.data(), am.data(), n);
    kernels::maxpool_ref(g, x.data(), ry.data(), ram.data(), n);
    for (size_t i = 0; i < m; ++i) {
      ASSERT_EQ(am[i], ram[i]) << "k=" << k << " w=" << w << " at " << i;
      ASSERT_TRUE(y[i] == ry[i] || (std::isnan(y[i]) && std::isnan(ry[i]))) << "k=" << k << " w=" << w << " at " << i;
    }
  }
}

// The SIMD 2x2 max-pool backward against the plain loop, with and without the ReLU gate (pooled values negative,
// zero, positive and NaN), on rows narrower than a vector and rows of several vectors plus a tail (the last vector
// overlapping the one before).
TEST(PoolKernel, MaxPoolBackwardMatchesReference) {
  for (int w : {6, 10, 14, 28, 32, 40, 46}) {  // 3 to 23 windows a row: scalar, vectors of 4, whole vectors, overlaps
    const int h = 8, c = 3, n = 2, oh = h / 2, ow = w / 2;
    kernels::ConvGeometry g{c, h, w, c, 2, 2, 0, oh, ow};
    Rng rng{uint64_t(w)};
    const size_t in = size_t(n) * c * h * w, m = size_t(n) * c * oh * ow;
    std::vector<float> x(in), y(m), dy(m), gate(m), got(in), want(in);
    std::vector<uint8_t> am(m);
    for (auto& v : x) v = float(int(rng.below(7))) - 3.0f;
    for (auto& v : dy) v = float(int(rng.below(9))) - 4.0f + 0.5f;
    kernels::maxpool_forward(g, x.data(), y.data(), am.data(), n);
    for (size_t i = 0; i < m; ++i) gate[i] = i % 11 == 3 ? std::nanf("") : y[i];
    for (const float* gp : {static_cast<const float*>(nullptr), static_cast<const float*>(gate.data())}) {
      std::fill(got.begin(), got.end(), 99.0f);  // every value must be written
      kernels::maxpool_backward(g, dy.data(), am.data(), got.data(), n, gp);
      kernels::maxpool_backward_ref(g, dy.data(), am.data(), want.data(), n, gp);
      for (size_t i = 0; i < in; ++i) ASSERT_EQ(got[i], want[i]) << "w=" << w << (gp ? " gated" : "") << " at " << i;
    }
  }
}

// Average pooling's SIMD 2x2 kernels against the plain loops, bit for bit (the same additions in the same order), on
// random values with signed zeros, infinities and NaNs, rows narrower than a vector and rows of several vectors plus a
// tail; the forward's input ends at the last plane (no read past it), and every dx value is written.
TEST(PoolKernel, AvgPool2x2MatchesReferenceBitForBit) {
  for (int w : {2, 6, 10, 14, 28, 32, 40, 46})
  for (int h : {2, 8}) {
    const int c = 3, n = 2, oh = h / 2, ow = w / 2;
    kernels::ConvGeometry g{c, h, w, c, 2, 2, 0, oh, ow};
    Rng rng{uint64_t(w * 16 + h)};
    const size_t in = size_t(n) * c * h * w, m = size_t(n) * c * oh * ow;
    std::vector<float> x(in), dy(m), y(m, 99.0f), ry(m), got(in, 99.0f), want(in);
    for (auto& v : x) v = float(rng.uniform() * 8.0 - 4.0);
    for (auto& v : dy) v = float(rng.uniform() * 2.0 - 1.0);
    for (size_t i = 0; i < in; i += 13) x[i] = -0.0f;
    x[in / 3] = std::numeric_limits<float>::infinity();
    x[in / 2] = std::nanf("");
    dy[m / 2] = -0.0f;
    kernels::avgpool_forward(g, x.data(), y.data(), n);
    kernels::avgpool_forward_ref(g, x.data(), ry.data(), n);
    kernels::avgpool_backward(g, dy.data(), got.data(), n);
    kernels::avgpool_backward_ref(g, dy.data(), want.data(), n);
    ASSERT_EQ(std::memcmp(y.data(), ry.data(), m * sizeof(float)), 0) << "forward, w=" << w << " h=" << h;
    ASSERT_EQ(std::memcmp(got.data(), want.data(), in * sizeof(float)), 0) << "backward, w=" << w << " h=" << h;
  }
}

// The ReLU backward taken inside the max-pool backward (gated by the pooled maximum) against the two run in turn:
// the ReLU's forward, max pooling, max-pool backward, then the ReLU's backward from its input. Values are small
// integers (ties, exact zeros, negative windows), on both pooling paths and overlapping windows.
TEST(PoolKernel, MaxPoolBackwardThroughReluEqualsTheTwoInTurn) {
  for (int k : {2, 3})
  for (int s : {1, 2}) {
    const int h = 12, w = 18, c = 2, n = 3, oh = (h - k) / s + 1, ow = (w - k) / s + 1;
    kernels::ConvGeometry g{c, h, w, c, k, s, 0, oh, ow};
    Rng rng{uint64_t(10 * k + s)};
    const size_t in = size_t(n) * c * h * w, m = size_t(n) * c * oh * ow;
    std::vector<float> x(in), r(in), y(m), dy(m), dr(in), want(in), got(in);
    std::vector<uint8_t> am(m);
    for (auto& v : x) v = float(int(rng.below(5))) - 3.0f;  // -3 .. 1: most windows tie or are not positive
    for (auto& v : dy) v = float(int(rng.below(9))) - 4.0f;
    relu_forward(x.data(), r.data(), nullptr, in);
    kernels::maxpool_forward(g, r.data(), y.data(), am.data(), n);
    kernels::maxpool_backward(g, dy.data(), am.data(), dr.data(), n);
    relu_backward(x.data(), dr.data(), want.data(), in);
    kernels::maxpool_backward(g, dy.data(), am.data(), got.data(), n, y.data());
    size_t passed = 0;
    for (size_t i = 0; i < in; ++i) {
      ASSERT_EQ(got[i], want[i]) << "k=" << k << " s=" << s << " at " << i;
      passed += want[i] != 0;
    }
    EXPECT_GT(passed, size_t(10)) << "the case must route some gradient";
  }
}

// The float convolution (direct kernels for stride 1: forward, input gradient, weight gradient; Winograd for 3x3 and
// 5x5 forward with at least 8 channels in, and input gradient with at least 8 channels out) against the double one
// (im2col + GEMM, itself gradient-checked) on the same weights: outputs, input gradients, weight and bias gradients.
// Shapes cover odd sizes, channel counts that are not a multiple of the kernels' tile, no padding (the input
// gradient's padding k - 1), full padding (k - 1), even kernels, many channels, a strided case (the im2col path in
// both) and a batch that splits into uneven chunks.
TEST(ConvKernel, FloatLayerMatchesDoubleLayerForwardAndBackward) {
  struct Case { const char* text; Shape in; int n; };
  for (const auto& c : {Case{"conv(16,5,pad=2)", {1, 28, 28}, 3}, Case{"conv(32,5,pad=2)", {16, 14, 14}, 19},
                        Case{"conv(5,3)", {3, 9, 11}, 2}, Case{"conv(6,3,pad=2)", {2, 7, 5}, 4},
                        Case{"conv(3,7,pad=3)", {2, 8, 13}, 1}, Case{"conv(4,3,stride=2,pad=1)", {3, 9, 9}, 2},
                        Case{"conv(4,3,pad=1)", {3, 6, 9}, 3},  // 60 positions: 2 tiles of 3 vectors and 1 of 2 (AVX2)
                        Case{"conv(9,2,pad=1)", {3, 6, 7}, 3}, Case{"conv(4,4)", {2, 5, 9}, 2},
                        Case{"conv(12,3,pad=1)", {40, 33, 5}, 2}, Case{"conv(8,3)", {4, 9, 10}, 2},
                        Case{"conv(10,5)", {3, 12, 11}, 3}}) {
    auto spec = parse_arch(c.text, ArchContext{}).at(0);
    Model<float> mf({spec}, c.in);
    Model<double> md({spec}, c.in);
    mf.init(InitSpec{}, 7);
    for (size_t i = 0; i < md.num_params(); ++i) md.params()[i] = double(mf.params()[i]);
    mf.set_input_grad(true);
    md.set_input_grad(true);
    const size_t nin = size_t(c.n) * numel(c.in), nout = size_t(c.n) * numel(mf.output_shape());
    const auto x = test::random_vec(nin, 3), dy = test::random_vec(nout, 4);
    std::vector<float> xf(x.begin(), x.end()), dyf(dy.begin(), dy.end());
    const float* yf = mf.forward(xf.data(), c.n, true);
    const double* yd = md.forward(x.data(), c.n, true);
    for (size_t i = 0; i < nout; ++i) ASSERT_NEAR(yf[i], yd[i], 1e-4 * (1 + std::abs(yd[i]))) << c.text << " y " << i;
    mf.zero_grad();
    md.zero_grad();
    mf.backward(dyf.data(), c.n);
    md.backward(dy.data(), c.n);
    // Each gradient's scale, the sum of its terms' absolute values (the double layer on |W|, |x| and |dy|): the
    // Winograd paths' rounding grows with it (a sum over 19 images that nearly cancels is off by 1.7e-4 in 0.56, at
    // 1.8e-7 of its scale), as a float sum's bound does.
    Model<double> ms({spec}, c.in);
    for (size_t i = 0; i < ms.num_params(); ++i) ms.params()[i] = std::abs(md.params()[i]);
    ms.set_input_grad(true);
    std::vector<double> ax(x), ady(dy);
    for (double& v : ax) v = std::abs(v);
    for (double& v : ady) v = std::abs(v);
    ms.forward(ax.data(), c.n, true);
    ms.zero_grad();
    ms.backward(ady.data(), c.n);
    auto tol = [](double want, double scale) { return 1e-4 * (1 + std::abs(want)) + 1e-6 * scale; };
    for (size_t i = 0; i < nin; ++i)
      ASSERT_NEAR(mf.input_grad()[i], md.input_grad()[i], tol(md.input_grad()[i], ms.input_grad()[i])) << c.text << " dx " << i;
    for (size_t i = 0; i < md.num_params(); ++i)
      ASSERT_NEAR(mf.grads()[i], md.grads()[i], tol(md.grads()[i], ms.grads()[i])) << c.text << " grad " << i;
  }
}

// The direct convolution's copies onto its grids (kernels::ToGrid in conv_hwy.cpp, vector by vector with masked row
// ends) against the layout written out in plain loops: the padded input planes, dy on the output grid with its bias
// sums, and, without fill, nothing written outside the rows. Widths around the vector sizes (4, 8, 16 lanes).
TEST(ConvKernel, GridCopiesMatchPlainLoops) {
  const float kSentinel = 12345.0f;
  for (const auto& [c, h, w, oc, k, pad] : {std::tuple{1, 28, 28, 16, 5, 2}, std::tuple{16, 14, 14, 32, 5, 2},
                                           std::tuple{3, 9, 11, 5, 3, 0}, std::tuple{2, 7, 5, 6, 3, 2},
                                           std::tuple{2, 8, 13, 3, 7, 3}, std::tuple{3, 5, 17, 2, 2, 1},
                                           std::tuple{1, 3, 33, 9, 4, 3}}) {
    kernels::ConvGeometry g{c, h, w, oc, k, 1, pad, h + 2 * pad - k + 1, w + 2 * pad - k + 1};
    const auto l = kernels::direct_layout(g);
    const auto xd = test::random_vec(size_t(c) * h * w, 11), dyd = test::random_vec(size_t(oc) * g.oh * g.ow, 12);
    const std::vector<float> x(xd.begin(), xd.end()), dy(dyd.begin(), dyd.end());
    // the layouts, in plain loops: input row iy at (iy + pad) wp + pad, dy row oy at gpre + oy wp, zero elsewhere
    std::vector<float> want_x(size_t(c) * l.cs, 0.0f), want_dy(size_t(l.ocpad) * l.gs, 0.0f);
    std::vector<double> want_db(size_t(oc), 0.0);
    for (int ch = 0; ch < c; ++ch)
      for (int iy = 0; iy < h; ++iy)
        for (int ix = 0; ix < w; ++ix)
          want_x[size_t(ch) * l.cs + size_t(iy + pad) * l.wp + size_t(pad + ix)] = x[(size_t(ch) * h + iy) * w + ix];
    for (int o = 0; o < oc; ++o)
      for (int oy = 0; oy < g.oh; ++oy)
        for (int ox = 0; ox < g.ow; ++ox) {
          const float v = dy[(size_t(o) * g.oh + oy) * g.ow + ox];
          want_dy[size_t(o) * l.gs + l.gpre + size_t(oy) * l.wp + size_t(ox)] = v;
          want_db[size_t(o)] += v;
        }
    for (bool fill : {true, false}) {
      // with fill every value is written (start from the sentinel); without, only the rows (start from zero, as the
      // layer's buffers do, and check the padding is still zero)
      std::vector<float> got_x(want_x.size(), fill ? kSentinel : 0.0f), got_dy(want_dy.size(), fill ? kSentinel : 0.0f);
      std::vector<float> db(size_t(oc), 1.0f);
      kernels::direct_pad_input(g, x.data(), got_x.data(), fill);
      kernels::direct_grid_output(g, dy.data(), got_dy.data(), db.data(), fill);
      for (size_t i = 0; i < want_x.size(); ++i) ASSERT_EQ(got_x[i], want_x[i]) << "x plane value " << i << " fill " << fill;
      for (size_t i = 0; i < want_dy.size(); ++i) ASSERT_EQ(got_dy[i], want_dy[i]) << "dy grid value " << i << " fill " << fill;
      for (int o = 0; o < oc; ++o) ASSERT_NEAR(db[size_t(o)], 1.0 + want_db[size_t(o)], 1e-5 * (1 + std::abs(want_db[size_t(o)])));
    }
  }
}

// The convolution's results do not depend on the thread count: images are independent in forward, and weight
// gradients go to accumulators per fixed chunk of images, summed in chunk order. One thread and two give the same
// bits, for the direct path (stride 1) and the im2col path (stride 2).
TEST(ConvKernel, SameBitsForOneAndTwoThreads) {
  for (const char* text : {"conv(8,5,pad=2)", "conv(6,3,stride=2,pad=1)"}) {
    const Shape in{3, 12, 12};
    const int n = 37;
    std::vector<std::vector<float>> results;
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      Model<float> m(parse_arch(text, ArchContext{}), in);
      m.init(InitSpec{}, 5);
      m.set_input_grad(true);
      const auto xd = test::random_vec(size_t(n) * numel(in), 8);
      const auto dyd = test::random_vec(size_t(n) * numel(m.output_shape()), 9);
      std::vector<float> x(xd.begin(), xd.end()), dy(dyd.begin(), dyd.end());
      const float* y = m.forward(x.data(), n, true);
      std::vector<float> r(y, y + dy.size());
      m.zero_grad();
      m.backward(dy.data(), n);
      r.insert(r.end(), m.grads(), m.grads() + m.num_params());
      r.insert(r.end(), m.input_grad(), m.input_grad() + x.size());
      results.push_back(std::move(r));
    }
    omp_set_num_threads(2);
    ASSERT_EQ(results[0].size(), results[1].size());
    EXPECT_EQ(std::memcmp(results[0].data(), results[1].data(), sizeof(float) * results[0].size()), 0) << text;
  }
}

// The thin products (one side of at most 16: A B^T with n, A^T B with m, A B with k) against the three-loop
// reference in double: every thin size 1-16, the other sizes around the vector lengths (1, 7, 33, 130), leading
// dimensions wider than the matrices, beta 0 and 1. Larger thin sides go to OpenBLAS (thin_gemm returns false).
TEST(ThinGemm, MatchesReference) {
  struct Case { bool ta, tb; };
  for (const Case c : {Case{false, true}, Case{true, false}, Case{false, false}})
    for (int thin = 1; thin <= kernels::kThin + 1; ++thin)
      for (int a : {1, 7, 33, 130})
        for (int b : {1, 7, 33, 130}) {
          // the thin side: n for A B^T, m for A^T B, k for A B
          const int m = c.ta ? thin : a, n = !c.ta && c.tb ? thin : b, k = !c.ta && !c.tb ? thin : (c.ta ? a : b);
          const int lda = (c.ta ? m : k) + 3, ldb = (c.tb ? k : n) + 5, ldc = n + 2;
          const auto ad = test::random_vec(size_t(c.ta ? k : m) * lda, 40 + thin);
          const auto bd = test::random_vec(size_t(c.tb ? n : k) * ldb, 41 + a);
          const auto cd = test::random_vec(size_t(m) * ldc, 42 + b);
          const std::vector<float> A(ad.begin(), ad.end()), B(bd.begin(), bd.end());
          for (float beta : {0.0f, 1.0f}) {
            std::vector<float> C(cd.begin(), cd.end()), R(C);
            const bool took = kernels::thin_gemm(c.ta, c.tb, m, n, k, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
            ASSERT_EQ(took, thin <= kernels::kThin) << c.ta << c.tb << " " << m << "x" << n << "x" << k;  // B <= 64K
            if (!took) continue;
            kernels::gemm_ref(c.ta, c.tb, m, n, k, 1.0f, A.data(), lda, B.data(), ldb, beta, R.data(), ldc);
            for (int i = 0; i < m; ++i)
              for (int j = 0; j < ldc; ++j) {
                const size_t at = size_t(i) * ldc + size_t(j);
                if (j >= n) ASSERT_EQ(C[at], R[at]) << "wrote past column " << n;  // untouched
                else ASSERT_NEAR(C[at], R[at], 1e-5f * (1 + std::abs(R[at])) * std::sqrt(float(k)))
                         << c.ta << c.tb << " " << m << "x" << n << "x" << k << " beta " << beta << " at " << i << "," << j;
              }
          }
        }
}

// A^T B with a large B goes to OpenBLAS (its strips would be walked from memory several times).
TEST(ThinGemm, LargeTransposedProductGoesToOpenBlas) {
  std::vector<float> A(300 * 10, 1.0f), B(300 * 300, 1.0f), C(10 * 300, 0.0f);
  EXPECT_FALSE(kernels::thin_gemm(true, false, 10, 300, 300, A.data(), 10, B.data(), 300, 0.0f, C.data(), 300));
  EXPECT_TRUE(kernels::thin_gemm(true, false, 10, 200, 300, A.data(), 10, B.data(), 200, 0.0f, C.data(), 200));
}

// Runs m forward and backward on a batch of n, then the same layers one at a time, each with its own forward and
// backward (a ReLU with its mask): the same bits for every layer output, the parameter gradients and the input
// gradient. Returns the model's layer output gradients (null where a ReLU's backward ran inside the next layer's).
std::vector<const float*> expect_chain_equals_layer_by_layer(Model<float>& m, int n) {
  const Shape in = m.input_shape();
  const size_t k = numel(m.output_shape());
  m.set_input_grad(true);
  const auto xd = test::random_vec(size_t(n) * numel(in), 10);
  const auto dyd = test::random_vec(size_t(n) * k, 11);
  std::vector<float> x(xd.begin(), xd.end()), dy(dyd.begin(), dyd.end());
  m.forward(x.data(), n, true);
  m.zero_grad();
  m.backward(dy.data(), n);
  const size_t L = m.num_layers();
  std::vector<std::vector<float>> out(L), model_out(L);
  std::vector<const float*> output_grads(L);
  for (size_t i = 0; i < L; ++i) {
    const size_t sz = size_t(n) * numel(m.layer(i).out_shape());
    model_out[i].assign(m.layer_output(i), m.layer_output(i) + sz);
    out[i].resize(sz);
    output_grads[i] = m.layer_output_grad(i);
  }
  std::vector<float> grads(m.grads(), m.grads() + m.num_params()), dinput(m.input_grad(), m.input_grad() + x.size());
  // Layer by layer.
  const float* cur = x.data();
  for (size_t i = 0; i < L; ++i) {
    m.layer(i).forward(cur, out[i].data(), n, true);
    cur = out[i].data();
    EXPECT_EQ(std::memcmp(out[i].data(), model_out[i].data(), out[i].size() * 4), 0) << "output of layer " << i;
  }
  m.zero_grad();
  std::vector<float> d(dy), dx;
  for (size_t i = L; i-- > 0;) {
    dx.assign(size_t(n) * numel(m.layer(i).in_shape()), 0.0f);
    m.layer(i).backward(i ? out[i - 1].data() : x.data(), out[i].data(), d.data(), dx.data(), n);
    d = dx;
  }
  EXPECT_EQ(std::memcmp(m.grads(), grads.data(), grads.size() * 4), 0);
  EXPECT_EQ(std::memcmp(d.data(), dinput.data(), d.size() * 4), 0);
  return output_grads;
}

// The model chains activations and pooling after a convolution (run image by image inside its loop) and takes a
// ReLU's backward inside the max pooling after it. The net has a ReLU before a convolution (backward from its
// input, no mask), GELU before average pooling, and a ReLU before max pooling.
TEST(ModelChain, ChainedForwardAndFusedBackwardEqualLayerByLayer) {
  Model<float> m(parse_arch("conv(4,3,pad=1) relu conv(4,3,pad=1) gelu avgpool(2) conv(3,3,pad=1) relu maxpool(2) "
                            "flatten dense(3)", ArchContext{}), Shape{2, 8, 8});
  m.init(InitSpec{}, 6);
  const auto grads = expect_chain_equals_layer_by_layer(m, 5);
  EXPECT_EQ(grads[6], nullptr);  // the ReLU before max pooling: fused
  EXPECT_EQ(grads[5], nullptr);  // the convolution before them: its dy made chunk by chunk (backward_chained)
  EXPECT_NE(grads[1], nullptr);  // the ReLU before a convolution: its own backward
}

// A ReLU after a dense layer runs on each thread's rows of the product, and its backward inside the next dense
// layer's (dx masked where the ReLU's output is positive). The products are large enough to be split over the
// threads (rows, the batch being larger than the units, as the layers alone split them), with the even split so
// that the two runs cut at the same rows. Bias -0.05: many units are zero, so the mask matters.
TEST(ModelChain, DenseThenReluEqualsLayerByLayer) {
  set_threads(2);
  set_deterministic(true);
  Model<float> m(parse_arch("dense(96) relu dense(64) relu dense(10)", ArchContext{}), Shape{300});
  InitSpec init;
  init.bias = -0.05;
  m.init(init, 7);
  const auto grads = expect_chain_equals_layer_by_layer(m, 128);
  EXPECT_EQ(grads[1], nullptr);  // both ReLUs: inside the next dense layer's backward
  EXPECT_EQ(grads[3], nullptr);
  const float* relu = m.layer_output(1);
  size_t zeros = 0;
  for (size_t j = 0; j < size_t(128) * 96; ++j) zeros += relu[j] == 0.0f;
  EXPECT_GT(zeros, size_t(128) * 96 / 5);
  set_deterministic(false);
  set_threads(0);
}

// A dense layer big enough for pgemm to split its weight gradient over the threads, by columns (70 x 300) and by
// rows (300 x 70): the bias gradient, summed in the GEMM's epilogue by shares of rows, is the batch sum of dy, and
// the weight gradient is dy^T x.
TEST(DenseKernel, GradientsWhenSplitOverThreads) {
  for (const auto& [in, out] : {std::pair{300, 70}, std::pair{70, 300}}) {
    const int n = 64;
    Model<float> m(parse_arch("dense(" + std::to_string(out) + ")", ArchContext{}), Shape{in});
    m.init(InitSpec{}, 3);
    const auto xd = test::random_vec(size_t(n) * size_t(in), 4), dyd = test::random_vec(size_t(n) * size_t(out), 5);
    std::vector<float> x(xd.begin(), xd.end()), dy(dyd.begin(), dyd.end());
    m.forward(x.data(), n, true);
    m.zero_grad();
    m.backward(dy.data(), n);
    const float* dW = m.grads();
    const float* db = dW + size_t(in) * size_t(out);
    for (int j = 0; j < out; ++j) {
      double s = 0;
      for (int i = 0; i < n; ++i) s += dyd[size_t(i) * size_t(out) + size_t(j)];
      ASSERT_NEAR(db[j], s, 1e-4) << in << "->" << out << " bias " << j;
      for (int c = 0; c < in; c += 37) {
        double w = 0;
        for (int i = 0; i < n; ++i) w += dyd[size_t(i) * size_t(out) + size_t(j)] * xd[size_t(i) * size_t(in) + size_t(c)];
        ASSERT_NEAR(dW[size_t(j) * size_t(in) + size_t(c)], w, 1e-3) << in << "->" << out << " weight " << j << "," << c;
      }
    }
  }
}

TEST(PoolKernel, MaxPoolPicksTheMaxAndRoutesTheGradient) {
  kernels::ConvGeometry g{1, 4, 4, 1, 2, 2, 0, 2, 2};
  float x[16] = {1, 2, 0, 0, 3, 4, 0, 9, -1, -2, 5, 5, -3, -4, 5, 6};
  float y[4], dx[16], dy[4] = {1, 2, 3, 4};
  uint8_t am[4];
  kernels::maxpool_forward(g, x, y, am, 1);
  EXPECT_EQ(y[0], 4);
  EXPECT_EQ(y[1], 9);
  EXPECT_EQ(y[2], -1);
  EXPECT_EQ(y[3], 6);
  kernels::maxpool_backward(g, dy, am, dx, 1);
  EXPECT_EQ(dx[5], 1);
  EXPECT_EQ(dx[7], 2);
  EXPECT_EQ(dx[8], 3);
  EXPECT_EQ(dx[15], 4);
  float sum = 0;
  for (float v : dx) sum += v;
  EXPECT_EQ(sum, 10);
}

// f(std::bool_constant<b>{}, std::bool_constant<z>{}): run-time flags as the compile-time ones the references take
template <class F>
void with_flags(bool b, bool z, F&& f) {
  auto inner = [&](auto B) {
    if (z) f(B, std::true_type{});
    else f(B, std::false_type{});
  };
  if (b) inner(std::true_type{});
  else inner(std::false_type{});
}

// The dispatched update rules give the plain loops' bits (no FMA contraction), for every length (vector tails),
// offset (unaligned starts), backup or not, gradient cleared or not, and plain, decayed and Nesterov momentum.
TEST(OptimKernel, UpdatesMatchPlainLoopsBitForBit) {
  const size_t N = 4096 + 37;
  std::vector<float> p0(N + 8), g0(N + 8), m0(N + 8);
  for (size_t i = 0; i < p0.size(); ++i) {
    p0[i] = std::sin(float(i) * 0.37f) * 0.3f;
    g0[i] = std::cos(float(i) * 0.11f) * 1e-2f * float(1 + i % 7);
    m0[i] = std::sin(float(i) * 0.05f) * 2e-2f;
  }
  g0[5] = 1e-40f;  // a denormal passes through both the same way
  struct Rule { float lr, wd, mu, a, c; };
  for (const Rule r : {Rule{0.05f, 0.0f, 0.9f, 0.0f, 1.0f}, Rule{0.1f, 1e-3f, 0.8f, 1.0f, 0.8f}, Rule{0.3f, 0.0f, 0.0f, 0, 0}})
    for (size_t n : {size_t(0), size_t(1), size_t(3), size_t(7), size_t(8), size_t(15), size_t(33), size_t(100), N})
      for (size_t off : {size_t(0), size_t(1), size_t(5)})
        for (int v = 0; v < 4; ++v) {
          const bool backup = v & 1, zero = v & 2;
          std::vector<float> p(p0), g(g0), m(m0), bk(N + 8, -1.0f), q(p0), h(g0), w(m0), bq(N + 8, -1.0f);
          float* b1 = backup ? bk.data() + off : nullptr;
          if (r.mu == 0.0f) {
            kernels::sgd_update(p.data() + off, g.data() + off, b1, n, r.lr, r.wd, zero);
            with_flags(backup, zero, [&](auto B, auto Z) {
              kernels::sgd_update_ref<B(), Z()>(q.data() + off, h.data() + off, bq.data() + off, long(n), r.lr, r.wd);
            });
          } else {
            kernels::momentum_update(p.data() + off, g.data() + off, m.data() + off, b1, n, r.lr, r.wd, r.mu, r.a, r.c, zero);
            with_flags(backup, zero, [&](auto B, auto Z) {
              kernels::momentum_update_ref<B(), Z()>(q.data() + off, h.data() + off, w.data() + off, bq.data() + off,
                                                     long(n), r.lr, r.wd, r.mu, r.a, r.c);
            });
          }
          const auto where = "mu " + std::to_string(r.mu) + " n " + std::to_string(n) + " offset " + std::to_string(off) +
                             " variant " + std::to_string(v);
          ASSERT_EQ(std::memcmp(p.data(), q.data(), p.size() * 4), 0) << where;  // untouched outside [off, off + n)
          ASSERT_EQ(std::memcmp(g.data(), h.data(), g.size() * 4), 0) << where;
          ASSERT_EQ(std::memcmp(m.data(), w.data(), m.size() * 4), 0) << where;
          if (backup) {
            ASSERT_EQ(std::memcmp(bk.data(), bq.data(), bk.size() * 4), 0) << where;
          }
          if (n == N) {
            ASSERT_NE(std::memcmp(p.data(), p0.data(), p.size() * 4), 0) << where;  // it did update
          }
        }
}

// Adam, AdamW and RMSprop (with and without momentum) likewise: the dispatched kernels give the plain loops' bits for
// every length, offset, backup or not and gradient cleared or not, with weight decay on and off.
TEST(OptimKernel, AdaptiveUpdatesMatchPlainLoopsBitForBit) {
  const size_t N = 4096 + 37;
  std::vector<float> p0(N + 8), g0(N + 8), m0(N + 8), v0(N + 8);
  for (size_t i = 0; i < p0.size(); ++i) {
    p0[i] = std::sin(float(i) * 0.37f) * 0.3f;
    g0[i] = std::cos(float(i) * 0.11f) * 1e-2f * float(1 + i % 7);
    m0[i] = std::sin(float(i) * 0.05f) * 2e-2f;
    v0[i] = float(i % 13) * 1e-5f;  // some zero: the square root of 0 plus eps
  }
  g0[5] = 1e-40f;  // a denormal
  g0[9] = 0.0f;
  // rule 0: Adam, 1: AdamW, 2: RMSprop with momentum, 3: RMSprop without
  for (int rule = 0; rule < 4; ++rule)
    for (float wd : {0.0f, 1e-2f})
      for (size_t n : {size_t(0), size_t(1), size_t(3), size_t(7), size_t(8), size_t(15), size_t(33), size_t(100), N})
        for (size_t off : {size_t(0), size_t(1), size_t(5)})
          for (int var = 0; var < 4; ++var) {
            const bool backup = var & 1, zero = var & 2;
            std::vector<float> p(p0), g(g0), m(m0), v(v0), bk(N + 8, -1.0f), q(p0), h(g0), w(m0), u(v0), bq(N + 8, -1.0f);
            float* b1 = backup ? bk.data() + off : nullptr;
            const float lr = 1e-3f, c1 = 1.0f - std::pow(0.9f, 3.0f), c2s = std::sqrt(1.0f - std::pow(0.999f, 3.0f));
            if (rule < 2) {
              kernels::adam_update(p.data() + off, g.data() + off, m.data() + off, v.data() + off, b1, n, lr, wd, rule == 1,
                                   0.9f, 0.999f, 1e-8f, c1, c2s, zero);
              with_flags(backup, zero, [&](auto B, auto Z) {
                kernels::adam_update_ref<B(), Z()>(q.data() + off, h.data() + off, w.data() + off, u.data() + off,
                                                   bq.data() + off, long(n), lr, wd, rule == 1, 0.9f, 0.999f, 1e-8f, c1, c2s);
              });
            } else {
              const float mu = rule == 2 ? 0.9f : 0.0f;
              kernels::rmsprop_update(p.data() + off, g.data() + off, m.data() + off, v.data() + off, b1, n, lr, wd, 0.99f,
                                      1e-8f, mu, zero);
              with_flags(backup, zero, [&](auto B, auto Z) {
                kernels::rmsprop_update_ref<B(), Z()>(q.data() + off, h.data() + off, w.data() + off, u.data() + off,
                                                      bq.data() + off, long(n), lr, wd, 0.99f, 1e-8f, mu);
              });
            }
            const auto where = "rule " + std::to_string(rule) + " wd " + std::to_string(wd) + " n " + std::to_string(n) +
                               " offset " + std::to_string(off) + " variant " + std::to_string(var);
            ASSERT_EQ(std::memcmp(p.data(), q.data(), p.size() * 4), 0) << where;  // untouched outside [off, off + n)
            ASSERT_EQ(std::memcmp(g.data(), h.data(), g.size() * 4), 0) << where;
            ASSERT_EQ(std::memcmp(m.data(), w.data(), m.size() * 4), 0) << where;
            ASSERT_EQ(std::memcmp(v.data(), u.data(), v.size() * 4), 0) << where;
            if (backup) {
              ASSERT_EQ(std::memcmp(bk.data(), bq.data(), bk.size() * 4), 0) << where;
            }
            if (n == N) {
              ASSERT_NE(std::memcmp(p.data(), p0.data(), p.size() * 4), 0) << where;  // it did update
              ASSERT_NE(std::memcmp(v.data(), v0.data(), v.size() * 4), 0) << where;
            }
          }
}

// The monitor's sums over a block's update: as the reference's (want) bit for bit; g2 as sum_squares_ref's (the
// monitor's own pass); du and w, with the ratio, within 1e-12 of add_update_sums from the weights before and after
// (zero without it, and du positive over a whole block).
static void expect_block_sums(const kernels::BlockSums& got, const kernels::BlockSums& want, const float* after,
                              const float* before, const float* g, size_t n, bool ratio, bool whole,
                              const std::string& where) {
  EXPECT_EQ(got.g2, want.g2) << where;
  EXPECT_EQ(got.du, want.du) << where;
  EXPECT_EQ(got.w, want.w) << where;
  EXPECT_EQ(got.g2, kernels::sum_squares_ref(g, n)) << where;
  if (!ratio) {
    EXPECT_EQ(got.du, 0.0) << where;
    EXPECT_EQ(got.w, 0.0) << where;
    return;
  }
  double du = 0, w = 0;
  kernels::add_update_sums(after, before, n, du, w);
  EXPECT_NEAR(got.du, du, 1e-12 * du) << where;
  EXPECT_NEAR(got.w, w, 1e-12 * w) << where;
  if (whole) {
    EXPECT_GT(got.du, 0.0) << where;
  }
}

// The update with the monitor's sums in its pass: the update the bits of the plain update rules (g untouched), and
// the sums the bits of the plain-loop reference: g2 those of sum_squares_ref, the monitor's own pass; du and w
// within 1e-12 of add_update_sums (double sums in another order). Lengths around the 32 lanes, up to a block of 4096,
// at offsets off a vector; SGD, momentum and Nesterov; with and without the ratio and the backup.
TEST(OptimKernel, UpdateWithSumsMatchesPlainLoops) {
  const size_t N = 4096;
  std::vector<float> p0(N + 8), g0(N + 8), m0(N + 8);
  for (size_t i = 0; i < p0.size(); ++i) {
    p0[i] = std::sin(float(i) * 0.37f) * 0.3f;
    g0[i] = std::cos(float(i) * 0.11f) * 1e-2f * float(1 + i % 7);
    m0[i] = std::sin(float(i) * 0.05f) * 2e-2f;
  }
  struct Rule { float lr, wd, mu, a, c; };
  for (const Rule r : {Rule{0.05f, 0.0f, 0.9f, 0.0f, 1.0f}, Rule{0.1f, 1e-3f, 0.8f, 1.0f, 0.8f}, Rule{0.3f, 1e-2f, 0.0f, 0, 1}})
    for (size_t n : {size_t(0), size_t(1), size_t(31), size_t(32), size_t(33), size_t(100), size_t(4095), N})
      for (size_t off : {size_t(0), size_t(3)})
        for (int v = 0; v < 4; ++v) {
          const bool ratio = v & 1, backup = v & 2;
          const bool sgd = r.mu == 0.0f;
          std::vector<float> p(p0), g(g0), m(m0), bk(N + 8, -1.0f), q(p0), h(g0), w(m0), bq(N + 8, -1.0f), e(p0);
          const kernels::BlockSums got = kernels::update_with_sums(
              p.data() + off, g.data() + off, sgd ? nullptr : m.data() + off, backup ? bk.data() + off : nullptr, n,
              r.lr, r.wd, r.mu, r.a, r.c, ratio);
          const kernels::BlockSums want = kernels::update_with_sums_ref<float>(
              q.data() + off, h.data() + off, sgd ? nullptr : w.data() + off, backup ? bq.data() + off : nullptr,
              long(n), r.lr, r.wd, r.mu, r.a, r.c, ratio);
          const auto where = "mu " + std::to_string(r.mu) + " n " + std::to_string(n) + " offset " + std::to_string(off) +
                             " variant " + std::to_string(v);
          ASSERT_EQ(std::memcmp(p.data(), q.data(), p.size() * 4), 0) << where;
          ASSERT_EQ(std::memcmp(m.data(), w.data(), m.size() * 4), 0) << where;
          ASSERT_EQ(std::memcmp(g.data(), g0.data(), g.size() * 4), 0) << where;  // only read
          ASSERT_EQ(std::memcmp(bk.data(), bq.data(), bk.size() * 4), 0) << where;
          // the plain rules and sums
          std::vector<float> pr(p0), gr(g0), mr(m0), none(N + 8);
          if (sgd) kernels::sgd_update_ref<false, false>(pr.data() + off, gr.data() + off, none.data(), long(n), r.lr, r.wd);
          else kernels::momentum_update_ref<false, false>(pr.data() + off, gr.data() + off, mr.data() + off, none.data(),
                                                          long(n), r.lr, r.wd, r.mu, r.a, r.c);
          ASSERT_EQ(std::memcmp(p.data(), pr.data(), p.size() * 4), 0) << where;
          ASSERT_EQ(std::memcmp(m.data(), mr.data(), m.size() * 4), 0) << where;
          expect_block_sums(got, want, p.data() + off, e.data() + off, g0.data() + off, n, ratio, n == N, where);
        }
}

// Adam, AdamW and RMSprop (with and without momentum) with the monitor's sums in their pass: the update the bits of
// the plain rules (adam_update_ref, rmsprop_update_ref; g untouched), and the sums the bits of rule_with_sums_ref,
// g2 those of sum_squares_ref, du and w within 1e-12 of add_update_sums.
TEST(OptimKernel, AdaptiveUpdatesWithSumsMatchPlainLoops) {
  const size_t N = 4096;
  std::vector<float> p0(N + 8), g0(N + 8), m0(N + 8), v0(N + 8);
  for (size_t i = 0; i < p0.size(); ++i) {
    p0[i] = std::sin(float(i) * 0.37f) * 0.3f;
    g0[i] = std::cos(float(i) * 0.11f) * 1e-2f * float(1 + i % 7);
    m0[i] = std::sin(float(i) * 0.05f) * 2e-2f;
    v0[i] = float(i % 13) * 1e-5f;
  }
  const float lr = 1e-3f, wd = 1e-2f, c1 = 1.0f - std::pow(0.9f, 5.0f), c2s = std::sqrt(1.0f - std::pow(0.999f, 5.0f));
  for (int rule = 0; rule < 4; ++rule)  // Adam, AdamW, RMSprop with momentum, without
    for (size_t n : {size_t(0), size_t(1), size_t(31), size_t(32), size_t(33), size_t(100), size_t(4095), N})
      for (size_t off : {size_t(0), size_t(3)})
        for (int var = 0; var < 4; ++var) {
          const bool ratio = var & 1, backup = var & 2;
          std::vector<float> p(p0), g(g0), m(m0), v(v0), bk(N + 8, -1.0f), q(p0), h(g0), w(m0), u(v0), bq(N + 8, -1.0f);
          std::vector<float> pr(p0), gr(g0), mr(m0), vr(v0), none(N + 8);
          float* b1 = backup ? bk.data() + off : nullptr;
          float* b2 = backup ? bq.data() + off : nullptr;
          kernels::BlockSums got, want;
          const float mu = rule == 2 ? 0.9f : 0.0f;
          if (rule < 2) {
            got = kernels::adam_with_sums(p.data() + off, g.data() + off, m.data() + off, v.data() + off, b1, n, lr, wd,
                                          rule == 1, 0.9f, 0.999f, 1e-8f, c1, c2s, ratio);
            want = kernels::rule_with_sums_ref<float>(
                q.data() + off, h.data() + off, b2, long(n),
                kernels::AdamRule<float>(w.data() + off, u.data() + off, lr, wd, rule == 1, 0.9f, 0.999f, 1e-8f, c1, c2s),
                ratio);
            kernels::adam_update_ref<false, false>(pr.data() + off, gr.data() + off, mr.data() + off, vr.data() + off,
                                                   none.data(), long(n), lr, wd, rule == 1, 0.9f, 0.999f, 1e-8f, c1, c2s);
          } else {
            got = kernels::rmsprop_with_sums(p.data() + off, g.data() + off, m.data() + off, v.data() + off, b1, n, lr,
                                             wd, 0.99f, 1e-8f, mu, ratio);
            want = kernels::rule_with_sums_ref<float>(
                q.data() + off, h.data() + off, b2, long(n),
                kernels::RmspropRule<float>{w.data() + off, u.data() + off, lr, wd, 0.99f, 1e-8f, mu}, ratio);
            kernels::rmsprop_update_ref<false, false>(pr.data() + off, gr.data() + off, mr.data() + off, vr.data() + off,
                                                      none.data(), long(n), lr, wd, 0.99f, 1e-8f, mu);
          }
          const auto where = "rule " + std::to_string(rule) + " n " + std::to_string(n) + " offset " +
                             std::to_string(off) + " variant " + std::to_string(var);
          for (const auto* got_want : {&p, &m, &v}) {
            const auto& x = *got_want;
            const auto& y = got_want == &p ? q : got_want == &m ? w : u;
            const auto& z = got_want == &p ? pr : got_want == &m ? mr : vr;
            ASSERT_EQ(std::memcmp(x.data(), y.data(), x.size() * 4), 0) << where;
            ASSERT_EQ(std::memcmp(x.data(), z.data(), x.size() * 4), 0) << where;  // the plain rule's bits
          }
          ASSERT_EQ(std::memcmp(g.data(), g0.data(), g.size() * 4), 0) << where;  // only read
          ASSERT_EQ(std::memcmp(bk.data(), bq.data(), bk.size() * 4), 0) << where;
          expect_block_sums(got, want, p.data() + off, p0.data() + off, g0.data() + off, n, ratio, n == N, where);
        }
}

TEST(OptimKernel, SumOfSquaresMatchesPlainLoopBitForBit) {
  std::vector<float> x(3 * 4096 + 100 + 3);  // room for the largest length at the largest offset
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(float(i) * 0.7f) * float(1 + i % 11);
  for (size_t n : {size_t(0), size_t(1), size_t(31), size_t(32), size_t(33), size_t(95), size_t(4095), size_t(4096),
                   size_t(4097), size_t(3 * 4096 + 99)})
    for (size_t off : {size_t(0), size_t(1), size_t(3)}) {
      const double got = kernels::sum_squares(x.data() + off, n), want = kernels::sum_squares_ref(x.data() + off, n);
      EXPECT_EQ(got, want) << "n " << n << " offset " << off;
    }
  // One lane alone, two terms of like size: the lane's sum is the result, and a square added without rounding it
  // first (an FMA) changes it about every other time.
  Rng rng(3);
  for (size_t lane = 0; lane < 32; ++lane) {
    int differ = 0;
    for (int trial = 0; trial < 16; ++trial) {
      std::vector<float> y(64, 0.0f);
      y[lane] = 1.0f + float(rng.uniform());
      y[32 + lane] = 1.0f + float(rng.uniform());
      differ += kernels::sum_squares(y.data(), y.size()) != kernels::sum_squares_ref(y.data(), y.size());
    }
    EXPECT_EQ(differ, 0) << "lane " << lane;
  }
  x[4100] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(kernels::sum_squares(x.data(), x.size())));
}

// The monitor's kernels against their plain loops, on every target (tests/CMakeLists.txt): the active flags and
// zero counts of a dense layer's outputs (zeros, negative zeros, a NaN, which is not zero), the moments' bits, and
// the histogram's counts in its four tables; lengths around a vector, 32 lanes and 64 values, off a vector.
TEST(MonitorKernel, MatchPlainLoops) {
  std::vector<float> y(700);
  for (size_t i = 0; i < y.size(); ++i) y[i] = i % 3 == 0 ? 0.0f : std::sin(float(i) * 0.9f) * float(1 + i % 5);
  y[10] = -0.0f;
  y[11] = std::numeric_limits<float>::quiet_NaN();
  for (size_t n : {size_t(0), size_t(1), size_t(15), size_t(16), size_t(17), size_t(31), size_t(33), size_t(63),
                   size_t(64), size_t(65), size_t(128), size_t(256), size_t(600)})
    for (size_t off : {size_t(0), size_t(3)}) {
      const auto where = "n " + std::to_string(n) + " offset " + std::to_string(off);
      std::vector<int32_t> act(n + 1, 0), want(n + 1, 0);
      for (size_t u = 0; u < n; u += 7) act[u] = want[u] = 1;  // flags already set stay set
      EXPECT_EQ(kernels::mark_active(y.data() + off, n, act.data()), kernels::mark_active_ref(y.data() + off, n, want.data()))
          << where;
      EXPECT_EQ(act, want) << where;
      if (off == 0 && n > 12) {
        EXPECT_EQ(act[11], 1) << "a NaN is not zero";
      }
      // the moments of finite values
      std::vector<float> x(y.begin(), y.end());
      x[11] = 2.5f;
      double s1 = 0, q1 = 0, s2 = 0, q2 = 0;
      kernels::moments(x.data() + off, n, s1, q1);
      kernels::moments_ref(x.data() + off, n, s2, q2);
      EXPECT_EQ(s1, s2) << where;
      EXPECT_EQ(q1, q2) << where;
      // the histogram: values below, inside and above the range
      const int bins = 7;
      std::vector<int32_t> c1(4 * bins, 0), c2(4 * bins, 0);
      kernels::histogram(x.data() + off, n, -1.5f, float(bins / 3.0), float(bins - 1), bins, c1.data());
      kernels::histogram_ref(x.data() + off, n, -1.5f, float(bins / 3.0), float(bins - 1), bins, c2.data());
      EXPECT_EQ(c1, c2) << where;
      long total = 0;
      for (int32_t c : c1) total += c;
      EXPECT_EQ(total, long(n)) << where;
    }
}

}  // namespace rectifier
