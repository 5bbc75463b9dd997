// The sparse path of a dense layer's backward (src/layers_dense.cpp, kernels/sparse.h): the kernel against its plain
// loop, and the layer's gradients against products in double, with the path checked to be the one taken.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>
#include "kernels/sparse.h"
#include "rectifier/arch.h"
#include "rectifier/model.h"
#include "rectifier/rng.h"
#include "rectifier/trainer.h"
#include "test_util.h"

using namespace rectifier;

namespace {

// Lists of rows x cap with count[r] entries each (0, cap and in between), positions in [0, brows).
struct Lists {
  std::vector<int32_t> count, idx;
  std::vector<float> val;
};
Lists random_lists(int rows, int cap, int brows, uint64_t seed) {
  Rng rng(seed);
  Lists l{std::vector<int32_t>(size_t(rows)), std::vector<int32_t>(size_t(rows) * size_t(cap)),
          std::vector<float>(size_t(rows) * size_t(cap))};
  for (int r = 0; r < rows; ++r) {
    const int c = r == 0 ? 0 : r == 1 ? cap : int(rng.below(uint64_t(cap) + 1));
    l.count[size_t(r)] = c;
    for (int j = 0; j < c; ++j) {
      l.idx[size_t(r) * size_t(cap) + size_t(j)] = int32_t(rng.below(uint64_t(brows)));
      l.val[size_t(r) * size_t(cap) + size_t(j)] = float(rng.normal());
    }
  }
  return l;
}

// The dense operand B and the result's starting values C, in float for the kernel and the same values in double
// (Bd, R) for the reference; random, from seeds seed and seed + 1.
struct Operands {
  std::vector<float> B, C;
  std::vector<double> Bd, R;
};
Operands random_operands(size_t bsize, size_t csize, uint64_t seed) {
  const auto bd = test::random_vec(bsize, seed), cd = test::random_vec(csize, seed + 1);
  Operands o{{bd.begin(), bd.end()}, {cd.begin(), cd.end()}, {}, cd};
  o.Bd.assign(o.B.begin(), o.B.end());
  return o;
}

}  // namespace

// The density test: -0 counts as zero, NaN and infinities as non-zero, lengths around the vector widths.
TEST(SparseKernel, CountNonzeroMatchesPlainLoop) {
  std::vector<float> x(300, 0.0f);
  for (size_t i = 0; i < x.size(); ++i)
    if (i % 3 == 0) x[i] = float(i) - 150.0f;  // one of them 0
  x[7] = -0.0f;
  x[8] = std::nanf("");
  x[299] = std::numeric_limits<float>::infinity();
  for (size_t n : {0, 1, 9, 15, 16, 17, 31, 32, 33, 100, 299, 300})
    EXPECT_EQ(kernels::count_nonzero(x.data(), n), kernels::count_nonzero_ref(x.data(), n)) << n;
  EXPECT_EQ(kernels::count_nonzero(x.data(), 300), size_t(100 - 1 + 1 + 1));
}

TEST(SparseKernel, SpmmRowsMatchesPlainLoop) {
  const int rows = 9, cap = 13, brows = 20;
  for (int ncols : {1, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40, 47, 64, 80, 100, 130, 144}) {
    const Lists l = random_lists(rows, cap, brows, uint64_t(ncols));
    const size_t ldb = size_t(ncols) + 3, ldc = size_t(ncols) + 5;
    const Operands start = random_operands(size_t(brows) * ldb, size_t(rows) * ldc, 7);
    for (bool acc : {false, true}) {
      auto [B, C, Bd, R] = start;
      kernels::spmm_rows(2, rows - 1, l.count.data(), cap, l.idx.data(), l.val.data(), B.data(), ldb, ncols, C.data(),
                         ldc, acc);
      kernels::spmm_rows_ref<double>(2, rows - 1, l.count.data(), cap, l.idx.data(), l.val.data(), Bd.data(), ldb, ncols,
                                     R.data(), ldc, acc);
      for (int r = 0; r < rows; ++r)
        for (size_t q = 0; q < ldc; ++q) {
          const size_t at = size_t(r) * ldc + q;
          if (r < 2 || r >= rows - 1 || q >= size_t(ncols))
            ASSERT_EQ(C[at], start.C[at]) << "wrote outside rows 2.." << rows - 1 << " or past column " << ncols;
          else
            ASSERT_NEAR(C[at], R[at], 1e-5 * (1 + std::abs(R[at])) * std::sqrt(double(cap)))
                << "ncols " << ncols << " acc " << acc << " at " << r << "," << q;
        }
    }
  }
  // the first two rows of the lists: an empty list with accumulate leaves the row alone, without it zeroes it
  const Lists l = random_lists(2, 4, 3, 1);
  std::vector<float> B(3 * 16, 1.0f), C(2 * 16, 5.0f);
  kernels::spmm_rows(0, 1, l.count.data(), 4, l.idx.data(), l.val.data(), B.data(), 16, 16, C.data(), 16, true);
  EXPECT_EQ(C[3], 5.0f);
  kernels::spmm_rows(0, 1, l.count.data(), 4, l.idx.data(), l.val.data(), B.data(), 16, 16, C.data(), 16, false);
  EXPECT_EQ(C[3], 0.0f);
}

// spmm_scatter: rows that overlap anywhere, several segments per row, against its plain loop.
TEST(SparseKernel, SpmmScatterAddsEveryEntry) {
  const int rows = 13, cap = 6, brows = 9;
  for (int ncols : {1, 5, 8, 13, 16, 80}) {
    for (int segs : {1, 3}) {
      const Lists l = random_lists(rows, cap, brows, uint64_t(200 + ncols + segs));
      const size_t bseg = size_t(ncols) + 2, ldb = bseg * size_t(segs) + 1, cseg = size_t(ncols) + 9;
      std::vector<int32_t> at(static_cast<size_t>(rows));
      for (int r = 0; r < rows; ++r) at[size_t(r)] = (r * 7) % 23;  // overlapping rows, in no order
      const size_t csize = 23 + cseg * size_t(segs) + size_t(ncols);
      auto [B, C, Bd, R] = random_operands(size_t(brows) * ldb, csize, 51);
      kernels::spmm_scatter(1, rows, l.count.data(), cap, l.idx.data(), l.val.data(), B.data(), ldb, bseg, C.data(),
                            at.data(), cseg, segs, ncols);
      kernels::spmm_scatter_ref<double>(1, rows, l.count.data(), cap, l.idx.data(), l.val.data(), Bd.data(), ldb, bseg,
                                        R.data(), at.data(), cseg, segs, ncols);
      for (size_t q = 0; q < csize; ++q)
        ASSERT_NEAR(C[q], R[q], 1e-5 * (1 + std::abs(R[q])) * double(rows)) << "ncols " << ncols << " segs " << segs << " at " << q;
    }
  }
}

// The skipping form gives the branch-free one's lists, for rows from all zero to all non-zero, shorter and longer
// than its words of 64 entries; and for_each_nonzero from an offset.
TEST(SparseKernel, NonzeroListSparseMatchesNonzeroList) {
  Rng rng(51);
  for (int len : {0, 1, 7, 8, 9, 16, 31, 63, 64, 65, 129, 196, 200}) {
    for (double density : {0.0, 0.05, 0.5, 1.0}) {
      std::vector<float> row(static_cast<size_t>(len));
      for (auto& v : row) v = rng.uniform() < density ? float(rng.normal()) : 0.0f;
      if (len > 3) row[2] = NAN, row[3] = -0.0f;
      std::vector<int32_t> i1(row.size()), i2(row.size());
      std::vector<float> v1(row.size()), v2(row.size());
      const int k1 = kernels::nonzero_list(row.data(), len, i1.data(), v1.data());
      const int k2 = kernels::nonzero_list_sparse(row.data(), len, i2.data(), v2.data());
      ASSERT_EQ(k1, k2) << len << " " << density;
      for (int j = 0; j < k1; ++j) {
        ASSERT_EQ(i2[size_t(j)], i1[size_t(j)]);
        ASSERT_TRUE(v1[size_t(j)] == v2[size_t(j)] || (std::isnan(v1[size_t(j)]) && std::isnan(v2[size_t(j)])));
      }
      // from an offset, as the dense layers' threads walk their ranges of units: the same entries past it
      for (int lo : {1, 5}) {
        std::vector<int> seen;
        kernels::for_each_nonzero(row.data(), std::min(lo, len), len, [&](int u) { seen.push_back(u); });
        std::vector<int> want;
        for (int j = 0; j < k1; ++j)
          if (i1[size_t(j)] >= lo) want.push_back(i1[size_t(j)]);
        ASSERT_EQ(seen, want) << len << " " << density << " from " << lo;
      }
    }
  }
}

// spmm_rows_at: rows at given offsets that overlap (as a convolution's windows), except within the pairs the kernel
// takes together (rows r0 + 2i and r0 + 2i + 1): every row's terms are added, in the plain loop's sum.
TEST(SparseKernel, SpmmRowsAtAddsOverlappingRows) {
  const int rows = 11, cap = 9, brows = 12;
  for (int ncols : {1, 5, 8, 13, 16, 40, 80}) {
    const Lists l = random_lists(rows, cap, brows, uint64_t(100 + ncols));
    const size_t ldb = size_t(ncols) + 1;
    std::vector<int32_t> at(static_cast<size_t>(rows));
    const int shift = std::max(1, ncols / 3);  // the next pair starts within this one's rows
    for (int r = 0; r < rows; ++r) at[size_t(r)] = (r % 2) * (ncols + 7) * 3 + (r / 2) * shift;
    const size_t csize = size_t(at[rows - 1] + ncols + (ncols + 7) * 3 + 8);
    auto [B, C, Bd, R] = random_operands(size_t(brows) * ldb, csize, 41);
    kernels::spmm_rows_at(1, rows, l.count.data(), cap, l.idx.data(), l.val.data(), B.data(), ldb, ncols, C.data(),
                          at.data(), true);
    kernels::spmm_rows_ref<double>(1, rows, l.count.data(), cap, l.idx.data(), l.val.data(), Bd.data(), ldb, ncols,
                                   R.data(), 0, true, at.data());
    for (size_t q = 0; q < csize; ++q)
      ASSERT_NEAR(C[q], R[q], 1e-5 * (1 + std::abs(R[q])) * double(cap)) << "ncols " << ncols << " at " << q;
  }
}

TEST(SparseKernel, NonzeroListKeepsTheNonzeroEntriesInOrder) {
  const std::vector<float> row = {0.0f, 1.5f, -0.0f, 0.0f, -2.0f, 3.0f, 0.0f, NAN, 0.0f};
  std::vector<int32_t> idx(row.size());
  std::vector<float> val(row.size());
  const int k = kernels::nonzero_list(row.data(), int(row.size()), idx.data(), val.data());
  ASSERT_EQ(k, 4);  // -0 is zero; NaN is not
  EXPECT_EQ(idx[0], 1);
  EXPECT_EQ(idx[1], 4);
  EXPECT_EQ(idx[2], 5);
  EXPECT_EQ(idx[3], 7);
  EXPECT_EQ(val[1], -2.0f);
  EXPECT_TRUE(std::isnan(val[3]));
}

// dense(h) relu dense(out) with dy at the output mostly zero: the second layer takes the sparse path (through the
// ReLU), and its weight, bias and input gradients, and those of the first layer after it, match products in double.
// The layer's sparse backward gives the same bits on one thread and on two.
TEST(SparseKernel, DenseGradientsBehindAReluMatchFullProducts) {
  const int n = 96, in = 70, h = 130, out = 100;
  const auto xd = test::random_vec(size_t(n) * in, 21), dyd0 = test::random_vec(size_t(n) * out, 22);
  std::vector<double> dyd(dyd0);
  Rng pick(23);
  for (auto& v : dyd)
    if (pick.uniform() < 0.8) v = 0;  // 20% non-zero, as behind a ReLU
  const std::vector<float> x(xd.begin(), xd.end()), dy(dyd.begin(), dyd.end());
  std::vector<std::vector<float>> runs;
  for (int threads : {1, 2}) {
    set_threads(threads);
    Model<float> m(parse_arch("dense(" + std::to_string(h) + ") relu dense(" + std::to_string(out) + ")", ArchContext{}),
                   Shape{in});
    InitSpec init;
    init.bias = -0.05;
    m.init(init, 5);
    m.set_input_grad(true);
    m.forward(x.data(), n, true);
    m.zero_grad();
    m.backward(dy.data(), n);
    EXPECT_TRUE(m.layer(2).last_backward_sparse()) << threads << " threads";
    // The first layer's dy is the second's masked input gradient: sparse too when most of the ReLU is off.
    const float* a1 = m.layer_output(1);
    size_t on = 0;
    for (size_t j = 0; j < size_t(n) * h; ++j) on += a1[j] > 0;
    const float* p = m.params();
    const float *W1 = p, *b1 = W1 + size_t(h) * in, *W2 = b1 + h;
    const float* g = m.grads();
    const float *dW1 = g, *db1 = dW1 + size_t(h) * in, *dW2 = db1 + h, *db2 = dW2 + size_t(out) * h;
    // The reference, in double: da1 = dy W2, dz1 = da1 where a1 > 0, dW2 = dy^T a1, dW1 = dz1^T x, dx = dz1 W1.
    std::vector<double> dz1(size_t(n) * h, 0.0);
    for (int s = 0; s < n; ++s)
      for (int u = 0; u < h; ++u) {
        double t = 0;
        for (int o = 0; o < out; ++o) t += dyd[size_t(s) * out + o] * W2[size_t(o) * h + u];
        dz1[size_t(s) * h + u] = a1[size_t(s) * h + u] > 0 ? t : 0.0;
      }
    auto expect_near = [](double got, double want, const char* what, int i, int j) {
      ASSERT_NEAR(got, want, 2e-5 * (1 + std::abs(want)) * 10) << what << " at " << i << "," << j;
    };
    // A layer's db (units) = the batch sum of its dz (n, units), and dW (units, width) = dz^T x, every step-th column
    auto check_layer = [&](const auto* dz, int units, const auto* xs, int width, int step, const float* db,
                           const float* dW, const char* dbname, const char* dWname) {
      for (int u = 0; u < units; ++u) {
        double sb = 0;
        for (int s = 0; s < n; ++s) sb += dz[size_t(s) * units + u];
        expect_near(db[u], sb, dbname, u, 0);
        for (int c = 0; c < width; c += step) {
          double sw = 0;
          for (int s = 0; s < n; ++s) sw += double(dz[size_t(s) * units + u]) * double(xs[size_t(s) * width + c]);
          expect_near(dW[size_t(u) * width + c], sw, dWname, u, c);
        }
      }
    };
    check_layer(dyd.data(), out, a1, h, 7, db2, dW2, "db2", "dW2");
    check_layer(dz1.data(), h, xd.data(), in, 5, db1, dW1, "db1", "dW1");
    const float* dx = m.input_grad();
    for (int s = 0; s < n; s += 3)
      for (int c = 0; c < in; ++c) {
        double t = 0;
        for (int u = 0; u < h; ++u) t += dz1[size_t(s) * h + u] * W1[size_t(u) * in + c];
        expect_near(dx[size_t(s) * in + c], t, "dx", s, c);
      }
    // (sparse up to 55% non-zero: a layer with an input gradient and a W under 1 MB, Dense::sparse_density_limit)
    EXPECT_EQ(m.layer(0).last_backward_sparse(), on < size_t(0.55 * n * h)) << on << " of " << n * h << " on";
    // The second layer alone, on the same input, on one thread and on two
    for (int t : {1, 2}) {
      set_threads(t);
      m.zero_grad();
      std::vector<float> dx1(size_t(n) * h);
      ASSERT_TRUE(m.layer(2).backward_through_relu(a1, nullptr, dy.data(), dx1.data(), n));
      ASSERT_TRUE(m.layer(2).last_backward_sparse());
      runs.emplace_back(dW2, dW2 + size_t(out) * (h + 1));
      runs.back().insert(runs.back().end(), dx1.begin(), dx1.end());
    }
    EXPECT_EQ(runs[runs.size() - 2], runs.back()) << "one and two threads differ";
  }
  set_threads(0);
}

namespace {
// ref (double) forward and backward on xd and dyd (n examples), then for one thread and two a float twin with ref's
// parameters: its output, gradients and input gradient (when ref takes one) within 1e-4 of ref's, then
// more(model, threads). Returns each run's output, gradients and input gradient, to compare bit for bit.
std::vector<std::vector<float>> float_twin_runs(const std::string& arch, const Shape& in, Model<double>& ref,
                                                const std::vector<double>& xd, const std::vector<double>& dyd, int n,
                                                const std::function<void(Model<float>&, int)>& more) {
  const size_t osz = numel(ref.output_shape()) * size_t(n);
  const double* yref = ref.forward(xd.data(), n, true);
  const std::vector<double> yd(yref, yref + osz);
  ref.zero_grad();
  ref.backward(dyd.data(), n);
  const std::vector<float> x(xd.begin(), xd.end()), dy(dyd.begin(), dyd.end());
  const bool input_grad = ref.input_grad() != nullptr;
  auto expect_near = [&](const float* got, const double* want, size_t count, const char* what, int threads) {
    for (size_t j = 0; j < count; ++j)
      ASSERT_NEAR(got[j], want[j], 1e-4 * (1 + std::abs(want[j]))) << arch << ", " << threads << " threads, " << what << " " << j;
  };
  std::vector<std::vector<float>> runs;
  for (int threads : {1, 2}) {
    set_threads(threads);
    Model<float> m(parse_arch(arch, ArchContext{}), in);
    for (size_t j = 0; j < m.num_params(); ++j) m.params()[j] = float(ref.params()[j]);
    m.set_input_grad(input_grad);
    const float* y = m.forward(x.data(), n, true);
    expect_near(y, yd.data(), osz, "output", threads);
    runs.emplace_back(y, y + osz);
    m.zero_grad();
    m.backward(dy.data(), n);
    expect_near(m.grads(), ref.grads(), m.num_params(), "gradient", threads);
    runs.back().insert(runs.back().end(), m.grads(), m.grads() + m.num_params());
    if (input_grad) {
      expect_near(m.input_grad(), ref.input_grad(), x.size(), "dx", threads);
      runs.back().insert(runs.back().end(), m.input_grad(), m.input_grad() + x.size());
    }
    more(m, threads);
  }
  set_threads(0);
  return runs;
}
}  // namespace

// dense(h) relu dense(10): the thin output layer runs in the first layer's parallel loop (forward, per example) and
// its backward splits dW by columns and dx by rows over the threads. Both match the same network in double, and give
// the same bits on one thread (one block, and the one-thread products) and on two.
TEST(ThinDense, ChainedForwardAndThreadedBackwardMatchDoubleAndOneThread) {
  const int n = 96, in = 70, h = 130, out = 10;
  const std::string arch = "dense(" + std::to_string(h) + ") relu dense(" + std::to_string(out) + ")";
  Model<double> ref(parse_arch(arch, ArchContext{}), Shape{in});
  ref.init(InitSpec{}, 8);
  ref.set_input_grad(true);
  const auto runs = float_twin_runs(arch, Shape{in}, ref, test::random_vec(size_t(n) * in, 31),
                                    test::random_vec(size_t(n) * out, 32), n, [](Model<float>&, int) {});
  EXPECT_EQ(runs[0], runs[1]) << "one and two threads differ";
}

// Batch norm over a dense layer's batch (P = 1) and over images, large enough for the channels to split over the
// threads: the outputs, gradients and input gradient match the layer in double, with the same bits on one thread
// and on two.
TEST(BatchNorm, ChannelsOverTheThreadsMatchDoubleAndOneThread) {
  struct Case { Shape in; int n; };
  for (const Case& c : {Case{Shape{200}, 96}, Case{Shape{6, 10, 10}, 40}}) {
    Model<double> ref(parse_arch("batchnorm", ArchContext{}), c.in);
    ref.init(InitSpec{}, 3);
    for (size_t j = 0; j < ref.num_params(); ++j) ref.params()[j] = 0.5 + 0.01 * double(j % 7);  // not 1 and 0
    ref.set_input_grad(true);
    const size_t sz = numel(c.in) * size_t(c.n);
    auto xd = test::random_vec(sz, 41);
    for (size_t j = 0; j < sz; ++j) xd[j] = 3 * xd[j] + 0.5;  // a mean and a spread of its own
    const auto runs = float_twin_runs("batchnorm", c.in, ref, xd, test::random_vec(sz, 42), c.n,
                                      [](Model<float>&, int) {});
    EXPECT_EQ(runs[0], runs[1]) << "one and two threads differ, " << numel(c.in) << " values per example";
  }
}

// The poolings' backward (and the global average's forward) over the threads by blocks of examples or planes: they
// match the layers in double, with the same bits on one thread and on two, and each example's output and input
// gradient are those of the example alone (a batch of one: a single block).
TEST(Pooling, BlocksOverTheThreadsMatchDoubleAndOneThread) {
  const Shape in{8, 16, 16};
  const int n = 80;  // 32 examples per block: three blocks
  const size_t isz = numel(in);
  for (const char* arch : {"avgpool(2)", "maxpool(2)", "gap"}) {
    Model<double> ref(parse_arch(arch, ArchContext{}), in);
    ref.set_input_grad(true);
    const size_t per = numel(ref.output_shape()), osz = per * size_t(n);
    const auto xd = test::random_vec(isz * size_t(n), 51), dyd = test::random_vec(osz, 52);
    const auto runs = float_twin_runs(arch, in, ref, xd, dyd, n, [&](Model<float>& m, int threads) {
      const std::vector<float> y(m.layer_output(0), m.layer_output(0) + osz);
      const std::vector<float> dx(m.input_grad(), m.input_grad() + isz * size_t(n));
      for (int e : {0, 40, 79}) {  // one example from each block
        const std::vector<float> x1(xd.begin() + long(isz) * e, xd.begin() + long(isz) * (e + 1));
        const std::vector<float> dy1(dyd.begin() + long(per) * e, dyd.begin() + long(per) * (e + 1));
        const float* y1 = m.forward(x1.data(), 1, true);
        ASSERT_TRUE(std::equal(y1, y1 + per, y.begin() + long(per) * e))
            << arch << ", example " << e << ", " << threads << " threads";
        m.zero_grad();
        m.backward(dy1.data(), 1);
        ASSERT_TRUE(std::equal(m.input_grad(), m.input_grad() + isz, dx.begin() + long(isz) * e))
            << arch << ", example " << e << ", " << threads << " threads";
      }
    });
    EXPECT_EQ(runs[0], runs[1]) << arch << ": one and two threads differ";
  }
}

// Dropout's mask: a fraction p of the values zeroed, the rest scaled by 1 / (1 - p); the same mask on one thread and
// on two (a draw per element from a counter, by fixed blocks); a new mask each pass; the same again after reseeding;
// backward through the same mask.
TEST(Dropout, MaskKeepsOneMinusPScaledTheSameOnAnyThreadCount) {
  const int n = 64, w = 1000;  // 64000 values: several blocks of 8192
  const double p = 0.3;
  std::vector<float> x(size_t(n) * w), dy(x.size(), 1.0f);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 1.0f + float(i % 7);
  std::vector<std::vector<float>> outs;
  for (int threads : {1, 2}) {
    set_threads(threads);
    Model<float> m(parse_arch("dropout(0.3)", ArchContext{}), Shape{w});
    m.init(InitSpec{}, 0);
    m.set_input_grad(true);
    m.layer(0).seed(77);
    const float* y = m.forward(x.data(), n, true);
    outs.emplace_back(y, y + x.size());
    size_t zeros = 0;
    const float keep = float(1.0 / (1.0 - p));
    for (size_t i = 0; i < x.size(); ++i) {
      if (y[i] == 0.0f) ++zeros;
      else ASSERT_EQ(y[i], x[i] * keep) << i;
    }
    EXPECT_NEAR(double(zeros) / double(x.size()), p, 0.01) << threads << " threads";
    m.zero_grad();
    m.backward(dy.data(), n);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(m.input_grad()[i], outs.back()[i] == 0.0f ? 0.0f : keep) << i;
    const float* y2 = m.forward(x.data(), n, true);
    EXPECT_FALSE(std::equal(y2, y2 + x.size(), outs.back().begin())) << "the same mask twice";
    m.layer(0).seed(77);
    const float* y3 = m.forward(x.data(), n, true);
    EXPECT_TRUE(std::equal(y3, y3 + x.size(), outs.back().begin())) << "reseeded, another mask";
  }
  set_threads(0);
  EXPECT_EQ(outs[0], outs[1]) << "one and two threads differ";
}

// Model::discard_grads: the next backward writes the gradients where it would add them (dense layers: the sparse
// path, the thin layer's threaded one, the full products) and the model zeroes the others' (convolution, batch norm,
// PReLU) first. Stale NaN gradients must leave no trace: the same bits as zero_grad then backward, on one thread
// and on two; a second backward adds to the first; grads() after discard_grads reads zeros.
TEST(DiscardGrads, TheNextBackwardWritesWhatZeroGradThenBackwardGives) {
  struct Case { const char* arch; Shape in; double dy_nonzero; };
  for (const Case& c : {Case{"dense(130) relu dense(100)", Shape{70}, 0.2},
                        Case{"conv(4,3,pad=1) batchnorm relu maxpool(2) flatten dense(70) prelu dense(10)", Shape{2, 8, 8}, 1.0}}) {
    for (int threads : {1, 2}) {
      set_threads(threads);
      const int n = 96;
      auto make = [&] {
        Model<float> m(parse_arch(c.arch, ArchContext{}), c.in);
        m.init(InitSpec{}, 4);
        m.set_input_grad(true);
        return m;
      };
      Model<float> a = make(), b = make();
      const auto xd = test::random_vec(size_t(n) * numel(c.in), 5);
      auto dyd = test::random_vec(size_t(n) * numel(a.output_shape()), 6);
      Rng pick(7);
      for (auto& v : dyd)
        if (pick.uniform() >= c.dy_nonzero) v = 0;
      const std::vector<float> x(xd.begin(), xd.end()), dy(dyd.begin(), dyd.end());
      a.forward(x.data(), n, true);
      a.zero_grad();
      a.backward(dy.data(), n);
      const std::vector<float> want(a.grads(), a.grads() + a.num_params());
      b.forward(x.data(), n, true);
      std::fill(b.grads(), b.grads() + b.num_params(), std::numeric_limits<float>::quiet_NaN());
      b.discard_grads();
      b.backward(dy.data(), n);
      EXPECT_EQ(std::vector<float>(b.grads(), b.grads() + b.num_params()), want) << c.arch << ", " << threads << " threads";
      if (c.dy_nonzero < 1) {
        EXPECT_TRUE(b.layer(2).last_backward_sparse()) << c.arch;
      }
      // A second backward adds: twice the gradients
      b.backward(dy.data(), n);
      a.backward(dy.data(), n);
      EXPECT_EQ(std::vector<float>(b.grads(), b.grads() + b.num_params()),
                std::vector<float>(a.grads(), a.grads() + a.num_params())) << c.arch << ", " << threads << " threads";
      b.discard_grads();
      for (size_t j = 0; j < b.num_params(); ++j) ASSERT_EQ(b.grads()[j], 0.0f) << c.arch << " gradient " << j;
    }
  }
  set_threads(0);
}

// A dy with most entries non-zero takes the full products.
TEST(SparseKernel, DenseGradientsOfADenseDyTakeTheFullProducts) {
  const int n = 64, in = 50, out = 80;
  Model<float> m(parse_arch("dense(" + std::to_string(out) + ")", ArchContext{}), Shape{in});
  m.init(InitSpec{}, 2);
  const auto xd = test::random_vec(size_t(n) * in, 3), dyd = test::random_vec(size_t(n) * out, 4);
  const std::vector<float> x(xd.begin(), xd.end()), dy(dyd.begin(), dyd.end());
  m.forward(x.data(), n, true);
  m.zero_grad();
  m.backward(dy.data(), n);
  EXPECT_FALSE(m.layer(0).last_backward_sparse());
}

// Which path a dense layer's backward takes, by the share of dy that is non-zero and the layer's shape
// (Dense::sparse_density_limit): up to 55% with no input gradient or a W of at most 1 MB, up to 25% with an input
// gradient and a larger W, whose rows the sparse dx would read from L3.
TEST(SparseKernel, TheSparsePathFollowsTheDensityLimitOfTheLayersShape) {
  const int n = 64;
  auto takes_sparse = [&](int in, int out, bool input_grad, double nonzero) {
    Model<float> m(parse_arch("dense(" + std::to_string(out) + ")", ArchContext{}), Shape{in});
    m.init(InitSpec{}, 2);
    m.set_input_grad(input_grad);
    const auto xd = test::random_vec(size_t(n) * in, 3);
    auto dyd = test::random_vec(size_t(n) * out, 4);
    Rng pick(5);
    size_t on = 0;
    for (auto& v : dyd)
      if (pick.uniform() >= nonzero) v = 0;
      else ++on;
    const std::vector<float> x(xd.begin(), xd.end()), dy(dyd.begin(), dyd.end());
    m.forward(x.data(), n, true);
    m.zero_grad();
    m.backward(dy.data(), n);
    EXPECT_NEAR(double(on) / double(dy.size()), nonzero, 0.02);
    return m.layer(0).last_backward_sparse();
  };
  EXPECT_TRUE(takes_sparse(300, 256, false, 0.5));   // dW alone
  EXPECT_FALSE(takes_sparse(300, 256, false, 0.6));
  EXPECT_TRUE(takes_sparse(300, 256, true, 0.5));    // W of 300 KB
  EXPECT_FALSE(takes_sparse(300, 256, true, 0.6));
  EXPECT_TRUE(takes_sparse(600, 500, true, 0.2));    // W of 1.2 MB
  EXPECT_FALSE(takes_sparse(600, 500, true, 0.3));
  EXPECT_TRUE(takes_sparse(600, 500, false, 0.5));   // the same W, no input gradient
}

// A training batch that is not 64-byte aligned (a std::vector's, offset by a float) is copied to an aligned buffer
// (Model::forward), which backward then reads: the same outputs and gradients, bit for bit, as from aligned rows.
// In inference the caller's rows are read where they are.
TEST(SparseKernel, AMisalignedTrainingBatchGivesTheAlignedBatchsBits) {
  const int n = 32, in = 200;
  Model<float> m(parse_arch("dense(64) relu dense(10)", ArchContext{}), Shape{in});
  m.init(InitSpec{}, 7);
  const auto xd = test::random_vec(size_t(n) * in, 8), dyd = test::random_vec(size_t(n) * 10, 9);
  std::vector<float> store(size_t(n) * in + 32);
  float* aligned = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(store.data()) + 63) & ~uintptr_t(63));
  const std::vector<float> dy(dyd.begin(), dyd.end());
  std::vector<std::vector<float>> runs;
  for (int shift : {0, 1}) {
    float* x = aligned + shift;
    for (size_t i = 0; i < xd.size(); ++i) x[i] = i % 3 ? float(xd[i]) : 0.0f;  // zeros, as an image's background
    const float* out = m.forward(x, n, true);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(m.layer_input(0)) % 64, 0u) << shift;
    runs.emplace_back(out, out + size_t(n) * 10);
    m.zero_grad();
    m.backward(dy.data(), n);
    runs.back().insert(runs.back().end(), m.grads(), m.grads() + m.num_params());
    m.forward(x, n, false);
    EXPECT_EQ(m.layer_input(0), x) << shift;
  }
  EXPECT_EQ(runs[0], runs[1]);
}

namespace {
struct ConvCase { int c, h, w, oc, k, pad; double nonzero; int n; };

// A convolution of geometry g (with the input gradient or, as a network's first layer, without) on a dy with a
// fraction g.nonzero of non-zero values: its sparse path runs, its gradients match the same layer in double (im2col
// and full products), with the same bits on one thread and on two; a dense dy takes the dense path.
void expect_sparse_conv_matches_double(const ConvCase& g, bool input_grad, uint64_t seed) {
  const int n = g.n;
  const std::string arch = "conv(" + std::to_string(g.oc) + "," + std::to_string(g.k) + ",pad=" + std::to_string(g.pad) + ")";
  const Shape in{g.c, g.h, g.w};
  Model<double> ref(parse_arch(arch, ArchContext{}), in);
  ref.init(InitSpec{}, seed);
  ref.set_input_grad(input_grad);
  const size_t isz = numel(in) * size_t(n), osz = numel(ref.output_shape()) * size_t(n);
  auto xd = test::random_vec(isz, seed + 1);
  if (!input_grad)
    for (size_t i = 0; i < xd.size(); i += 3) xd[i] = 0;  // an image's background
  auto dyd = test::random_vec(osz, seed + 2);
  Rng pick(seed + 3);
  for (auto& v : dyd)
    if (pick.uniform() >= g.nonzero) v = 0;
  const auto runs = float_twin_runs(arch, in, ref, xd, dyd, n, [&](Model<float>& m, int threads) {
    EXPECT_TRUE(m.layer(0).last_backward_sparse()) << arch << ", " << threads << " threads, " << g.nonzero;
    if (threads == 2) {  // a dense dy: the dense path
      const auto dense = test::random_vec(osz, seed + 4);
      const std::vector<float> dyf(dense.begin(), dense.end());
      m.zero_grad();
      m.backward(dyf.data(), n);
      EXPECT_FALSE(m.layer(0).last_backward_sparse()) << arch;
    }
  });
  EXPECT_EQ(runs[0], runs[1]) << arch << ": one and two threads differ";
}
}  // namespace

// A convolution whose dy is mostly zero (as behind a ReLU and a max pooling) takes the sparse path chunk by chunk:
// its weight, bias and input gradients match the same layer in double, for the reference CNN's second convolution
// and for odd sizes (no padding, an odd number of output rows, rectangular images), on one thread and on two.
TEST(SparseKernel, ConvGradientsOfASparseDyMatchTheDenseLayerInDouble) {
  // 7% non-zero: a few channels per position, dx by spmm_scatter; 22% (7 of the 32 channels): by spmm_rows_at.
  // 150 images: chunks of 9-10, dW's lists over groups of 8 and then the rest.
  for (const ConvCase& g : {ConvCase{16, 14, 14, 32, 5, 2, 0.07, 20}, ConvCase{16, 14, 14, 32, 5, 2, 0.22, 20},
                            ConvCase{3, 9, 7, 5, 3, 1, 0.07, 20}, ConvCase{8, 7, 11, 4, 3, 0, 0.07, 20},
                            ConvCase{2, 5, 6, 3, 4, 3, 0.07, 20}, ConvCase{3, 9, 7, 5, 3, 1, 0.07, 150}})
    expect_sparse_conv_matches_double(g, true, 31);
}

// A network's first convolution (no input gradient) with rows of taps shorter than 8 floats (k * c < 8: c = 1 as
// for images, or c = 2 with k = 3): when its dy is mostly zero the weight and bias gradients come from dy's
// non-zero entries (kernels::patch_weight_grad). Positions at the edges of the image (where the window reads the
// padding) and in the last column (the rows of 8 floats read past the window) are covered, as every position is
// non-zero for some channel.
TEST(SparseKernel, FirstConvWeightGradientFromSparseDy) {
  for (const ConvCase& g : {ConvCase{1, 28, 28, 16, 5, 2, 0.12, 20}, ConvCase{2, 9, 13, 5, 3, 1, 0.2, 19},
                            ConvCase{1, 7, 70, 3, 7, 3, 0.1, 9}, ConvCase{1, 6, 6, 4, 3, 0, 0.08, 5}})
    expect_sparse_conv_matches_double(g, false, 19);
}
