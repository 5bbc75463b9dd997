// The verdict logic of the experiments.
#include <gtest/gtest.h>

#include <set>

#include "../experiments/common.h"

namespace rectifier {

TEST(ExperimentVerdict, FollowsTheMeasurement) {
  EXPECT_EQ(exp::claim("c", "p", "1", "1", true, true, "ok", "").verdict, "reproduced");
  EXPECT_EQ(exp::claim("c", "p", "1", "2", false, true, "off", "").verdict, "not reproduced");
  const Claim q = exp::claim("c", "p", "1", "2", false, false, "off", "");
  EXPECT_EQ(q.verdict, "inconclusive");
  EXPECT_NE(q.reason.find("off"), std::string::npos);
}

TEST(ExperimentVerdict, RegistryNamesAreUniqueAndUnknownNamesFail) {
  std::set<std::string> names;
  for (const auto& e : experiments()) EXPECT_TRUE(names.insert(e.name).second) << e.name;
  for (const char* n : {"speed", "vanishing", "sparsity", "relu-prime", "depth-init", "born-dead", "dying", "exploding"})
    EXPECT_TRUE(names.count(n)) << n;
  EXPECT_THROW(run_experiment("nosuch", ExperimentOptions{}), Error);
}

}  // namespace rectifier
