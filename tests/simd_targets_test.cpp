// RECTIFIER_TEST_TARGET=<name> (SCALAR, SSSE3, SSE4, AVX2, AVX3, ...) restricts Highway's run-time dispatch to that one
// target for the whole test run, so the kernels' tests also check the narrower vector widths (4 lanes: other tails,
// overlaps and fallbacks) on a CPU that would otherwise always pick its widest. tests/CMakeLists.txt runs the kernel
// tests once per narrower target (SCALAR is what a CPU without SSSE3 gets); one this CPU lacks skips (exit code 77).
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {
struct OneTarget : ::testing::Environment {
  void SetUp() override {
    const char* want = std::getenv("RECTIFIER_TEST_TARGET");
    if (!want || !*want) return;
    for (int64_t t : hwy::SupportedAndGeneratedTargets())
      if (std::strcmp(hwy::TargetName(t), want) == 0) {
        hwy::SetSupportedTargetsForTest(t);
        std::printf("Highway dispatch restricted to %s\n", want);
        return;
      }
    std::printf("Highway target %s is not supported on this CPU (or not compiled): skipped\n", want);
    std::exit(77);
  }
};
const auto* registered = ::testing::AddGlobalTestEnvironment(new OneTarget);
}  // namespace
