// kernels/layout.h: the SIMD moves between channel planes and a padded HWC grid against their plain loops, for
// channel counts and widths that are and are not multiples of 4, and a grid wider than the image with more floats
// per pixel than channels: the same bits, and nothing of the grid written outside the image's pixels.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>
#include "kernels/layout.h"
#include "test_util.h"

namespace rectifier {
namespace {

TEST(ConvKernel, LayoutMovesMatchTheirLoops) {
  struct Case { int C, H, W; size_t wg, cp, pad; };
  const Case cases[] = {{16, 14, 14, 18, 16, 2}, {16, 14, 14, 20, 16, 2}, {5, 3, 7, 9, 8, 1}, {8, 4, 4, 4, 8, 0},
                        {3, 2, 9, 11, 3, 1}, {20, 7, 6, 14, 32, 4}, {1, 1, 1, 1, 1, 0}};
  for (const Case& k : cases) {
    const size_t plane = size_t(k.H) * size_t(k.W), grid = (size_t(k.H) + 2 * k.pad) * k.wg * k.cp;
    const auto xd = test::random_vec(size_t(k.C) * plane, uint64_t(k.C * 100 + k.W));
    const std::vector<float> x(xd.begin(), xd.end());
    const size_t inside = (k.pad * k.wg + k.pad) * k.cp;
    std::vector<float> got(grid, -3.0f), want(grid, -3.0f);
    kernels::chw_to_hwc(x.data(), k.C, k.H, k.W, got.data() + inside, k.wg, k.cp);
    kernels::chw_to_hwc_ref(x.data(), k.C, k.H, k.W, want.data() + inside, k.wg, k.cp);
    ASSERT_EQ(0, std::memcmp(got.data(), want.data(), grid * sizeof(float))) << "C " << k.C << " W " << k.W;
    std::vector<float> back(x.size(), 0.0f), back_ref(x.size(), 1.0f);
    kernels::hwc_to_chw(got.data() + inside, k.wg, k.cp, k.C, k.H, k.W, back.data());
    kernels::hwc_to_chw_ref(want.data() + inside, k.wg, k.cp, k.C, k.H, k.W, back_ref.data());
    ASSERT_EQ(0, std::memcmp(back.data(), x.data(), x.size() * sizeof(float))) << "C " << k.C << " W " << k.W;
    ASSERT_EQ(0, std::memcmp(back_ref.data(), x.data(), x.size() * sizeof(float)));
  }
}

}  // namespace
}  // namespace rectifier
