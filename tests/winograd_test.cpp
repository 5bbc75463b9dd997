// Winograd convolution (kernels/winograd.h) against the plain convolution conv2d_ref, in double on the same float
// inputs: F(4x4, 5x5) and F(4x4, 3x3) at the reference CNN's shape and at sizes that are not whole tiles, every
// padding, channel counts that are not whole vectors. The error is measured against each output's scale (the sum of
// |w x| over its window), which is what the transforms' rounding grows with. Over 8 seeds per case: at most 3.4e-6
// for F(4x4, 5x5) with "same" padding or less (1.7e-5 with the widest, below) and 2.8e-6 for F(4x4, 3x3) (a
// direct float sum: about 1e-7).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>
#include "kernels/conv_kernels.h"
#include "kernels/winograd.h"
#include "rectifier/tensor.h"
#include "test_util.h"

namespace rectifier {
namespace {

struct WinoCase {
  int c, h, w, oc, k, pad;
  double bound = 5e-6;  // on the error over each output's scale
};

// The largest error over the outputs, each over its scale; two calls on the same scratch (its zero borders must
// stay zero), the second on another image.
double winograd_error(const WinoCase& wc, bool with_bias, uint64_t seed) {
  kernels::ConvGeometry g{wc.c, wc.h, wc.w, wc.oc, wc.k, 1, wc.pad, 0, 0};
  g.oh = wc.h + 2 * wc.pad - wc.k + 1;
  g.ow = wc.w + 2 * wc.pad - wc.k + 1;
  EXPECT_TRUE(kernels::winograd_applies(g));
  const auto wd = test::random_vec(size_t(wc.oc) * wc.c * wc.k * wc.k, seed);
  const auto bd = test::random_vec(size_t(wc.oc), seed + 1);
  std::vector<float> W(wd.begin(), wd.end()), b(bd.begin(), bd.end());
  Buffer<float> U(kernels::winograd_weights_floats(g)), scratch(kernels::winograd_layout(g).scratch);
  kernels::winograd_weights(g, W.data(), U.data());
  double worst = 0;
  for (int image = 0; image < 2; ++image) {
    const auto xd = test::random_vec(size_t(wc.c) * wc.h * wc.w, seed + 2 + uint64_t(image));
    std::vector<float> x(xd.begin(), xd.end()), y(size_t(wc.oc) * g.oh * g.ow, -7.0f);
    kernels::conv_winograd(g, x.data(), U.data(), with_bias ? b.data() : nullptr, y.data(), scratch.data());
    // the reference, and each output's scale, in double
    std::vector<double> xe(xd.begin(), xd.end()), We(W.begin(), W.end()), be(b.begin(), b.end());
    std::vector<double> ref(y.size()), scale(y.size()), zero(be.size(), 0.0);
    kernels::conv2d_ref<double>(g, xe.data(), We.data(), with_bias ? be.data() : zero.data(), ref.data(), 1);
    for (double& v : xe) v = std::abs(v);
    for (double& v : We) v = std::abs(v);
    kernels::conv2d_ref<double>(g, xe.data(), We.data(), zero.data(), scale.data(), 1);
    for (size_t i = 0; i < y.size(); ++i) {
      const double e = std::abs(double(y[i]) - ref[i]) / (scale[i] + (with_bias ? std::abs(be[i / (size_t(g.oh) * g.ow)]) : 0) + 1e-30);
      EXPECT_TRUE(std::isfinite(y[i])) << "output " << i;
      worst = std::max(worst, e);
    }
  }
  return worst;
}

TEST(ConvKernel, WinogradMatchesConvolution) {
  const WinoCase cases[] = {
      {16, 14, 14, 32, 5, 2},  // the reference CNN's second convolution
      {8, 9, 11, 5, 5, 2},     // outputs not whole tiles, few output channels
      // The widest padding: an edge output's window holds a few input pixels, its 8x8 tile many more, and the
      // tile's rounding is against their scale (up to 1.7e-5 over 40 seeds; F(2x2, 5x5) on 6x6 tiles: 3.5e-6).
      {20, 7, 6, 17, 5, 4, 3e-5},  // channels past a vector
      {12, 8, 8, 33, 5, 0},    // no padding
      {16, 14, 14, 32, 3, 1},  // F(4x4, 3x3): 14 is not a multiple of 4
      {9, 5, 13, 7, 3, 2},
      {32, 16, 16, 16, 3, 0},
  };
  for (const auto& wc : cases) {
    for (bool bias : {true, false}) {
      double e = 0;
      for (uint64_t seed = 0; seed < 8; ++seed)
        e = std::max(e, winograd_error(wc, bias, 40 + 1000 * seed + uint64_t(wc.k * 7 + wc.c)));
      EXPECT_LT(e, wc.bound) << "c " << wc.c << " " << wc.h << "x" << wc.w << " oc " << wc.oc << " k " << wc.k << " pad "
                         << wc.pad << (bias ? " bias" : "");
    }
  }
}

// A NaN in the input reaches every output whose window holds it (and the rest of those outputs' tiles, which the
// direct convolution does not: non-finite stays non-finite either way); inputs that are mostly zero, as behind a
// ReLU, change nothing else.
TEST(ConvKernel, WinogradPassesANaNOn) {
  kernels::ConvGeometry g{16, 14, 14, 8, 5, 1, 2, 14, 14};
  const auto wd = test::random_vec(size_t(8) * 16 * 25, 3), xd = test::random_vec(size_t(16) * 14 * 14, 4);
  std::vector<float> W(wd.begin(), wd.end()), x(xd.begin(), xd.end()), b(8, 0.0f), y(size_t(8) * 14 * 14);
  for (size_t i = 0; i < x.size(); ++i)
    if (i % 3 != 0) x[i] = 0.0f;
  x[(5 * 14 + 6) * 14 + 9] = std::nanf("");  // channel 5, row 6, column 9
  Buffer<float> U(kernels::winograd_weights_floats(g)), scratch(kernels::winograd_layout(g).scratch);
  kernels::winograd_weights(g, W.data(), U.data());
  kernels::conv_winograd(g, x.data(), U.data(), b.data(), y.data(), scratch.data());
  std::vector<float> ref(y.size()), scale(y.size()), ax(x), aw(W);
  kernels::conv2d_ref(g, x.data(), W.data(), b.data(), ref.data(), 1);
  for (float& v : ax) v = std::abs(v);
  for (float& v : aw) v = std::abs(v);
  kernels::conv2d_ref(g, ax.data(), aw.data(), b.data(), scale.data(), 1);
  size_t nans = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (std::isnan(ref[i])) {
      ++nans;
      EXPECT_TRUE(std::isnan(y[i])) << "output " << i << ": the NaN was lost";
    } else if (!std::isnan(y[i])) {
      EXPECT_NEAR(y[i], ref[i], 5e-6 * scale[i]) << "output " << i;
    } else {  // only in a tile whose 8x8 input holds the NaN: padded grid row 8, column 11
      const int ty = int(i / 14 % 14) / 4, tx = int(i % 14) / 4;
      EXPECT_TRUE(4 * ty <= 8 && 8 < 4 * ty + 8 && 4 * tx <= 11 && 11 < 4 * tx + 8) << "output " << i;
    }
  }
  EXPECT_EQ(nans, size_t(8) * 25);
}

// The weight gradient by Winograd (kernels::winograd_weight_grad_image and _finish) against the plain sums over the
// images in double, dw (o, c, a, b) = sum of dy (o, oy, ox) x (c, oy + a - pad, ox + b - pad), each weight's error
// over its scale (the same sum of absolute values). Three images through the same scratch (its zero borders must
// stay zero), added to a dw that already holds values.
double winograd_grad_error(const WinoCase& wc, uint64_t seed) {
  kernels::ConvGeometry g{wc.c, wc.h, wc.w, wc.oc, wc.k, 1, wc.pad, 0, 0};
  g.oh = wc.h + 2 * wc.pad - wc.k + 1;
  g.ow = wc.w + 2 * wc.pad - wc.k + 1;
  const int n = 3, k = wc.k;
  const size_t in = size_t(wc.c) * wc.h * wc.w, out = size_t(wc.oc) * g.oh * g.ow, nw = size_t(wc.oc) * wc.c * k * k;
  const auto xd = test::random_vec(in * n, seed), dyd = test::random_vec(out * n, seed + 1), w0 = test::random_vec(nw, seed + 2);
  const std::vector<float> x(xd.begin(), xd.end()), dy(dyd.begin(), dyd.end());
  std::vector<float> dw(w0.begin(), w0.end());
  Buffer<float> M(kernels::winograd_weights_floats(g)), scratch(kernels::winograd_grad_scratch(g));
  for (int i = 0; i < n; ++i) kernels::winograd_weight_grad_image(g, x.data() + in * i, dy.data() + out * i, M.data(), scratch.data());
  kernels::winograd_weight_grad_finish(g, M.data(), dw.data());
  double worst = 0;
  for (int o = 0; o < wc.oc; ++o)
    for (int c = 0; c < wc.c; ++c)
      for (int a = 0; a < k; ++a)
        for (int b = 0; b < k; ++b) {
          double sum = 0, scale = 0;
          for (int i = 0; i < n; ++i)
            for (int oy = 0; oy < g.oh; ++oy)
              for (int ox = 0; ox < g.ow; ++ox) {
                const int iy = oy + a - wc.pad, ix = ox + b - wc.pad;
                if (iy < 0 || iy >= wc.h || ix < 0 || ix >= wc.w) continue;
                const double v = dyd[out * i + (size_t(o) * g.oh + oy) * g.ow + ox] * xd[in * i + (size_t(c) * wc.h + iy) * wc.w + ix];
                sum += v;
                scale += std::abs(v);
              }
          const size_t at = ((size_t(o) * wc.c + c) * k + a) * k + b;
          const double e = std::abs(double(dw[at]) - (w0[at] + sum)) / (scale + std::abs(w0[at]) + 1e-30);
          EXPECT_TRUE(std::isfinite(dw[at])) << "weight " << at;
          worst = std::max(worst, e);
        }
  return worst;
}

// Over 4 seeds per case: at most 4.4e-6 for 5x5 and 1e-6 for 3x3 (a float sum of the products: about 1e-7).
TEST(ConvKernel, WinogradWeightGradientMatchesPlainSums) {
  const WinoCase cases[] = {
      {16, 14, 14, 32, 5, 2, 1e-5},  // the reference CNN's second convolution
      {8, 9, 11, 5, 5, 2, 1e-5},     // outputs not whole tiles, few output channels
      {20, 7, 6, 17, 5, 4, 1e-5},    // the widest padding, channels past a vector
      {12, 8, 8, 33, 5, 0, 1e-5},    // no padding, output channels past two vectors
      {16, 14, 14, 32, 3, 1, 3e-6},  // F(4x4, 3x3): 14 is not a multiple of 4
      {9, 5, 13, 7, 3, 2, 3e-6},
      {32, 16, 16, 16, 3, 0, 3e-6},
  };
  for (const auto& wc : cases) {
    double e = 0;
    for (uint64_t seed = 0; seed < 4; ++seed) e = std::max(e, winograd_grad_error(wc, 70 + 1000 * seed + uint64_t(wc.k * 7 + wc.c)));
    EXPECT_LT(e, wc.bound) << "c " << wc.c << " " << wc.h << "x" << wc.w << " oc " << wc.oc << " k " << wc.k << " pad " << wc.pad;
  }
}

}  // namespace
}  // namespace rectifier
