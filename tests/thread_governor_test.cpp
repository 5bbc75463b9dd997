// The thread governor (src/thread_governor.h) on step times made up by a model of the host: each step's time
// depends on the thread count the governor chose for it and on the host's state, which the test changes.
#include <gtest/gtest.h>

#include <functional>
#include "thread_governor.h"

namespace rectifier {
namespace {

// Runs `steps` steps: time(threads, step) gives each step's seconds. Returns how many ran on one thread.
long run(ThreadGovernor& g, long steps, const std::function<double(int, long)>& time, long first = 0) {
  long one = 0;
  for (long s = first; s < first + steps; ++s) {
    const int t = g.threads();
    EXPECT_TRUE(t == 1 || t == g.all());
    one += t == 1;
    g.record(time(t, s));
  }
  return one;
}

// The reference MLP's step on this machine: 0.58 ms on two threads, 0.99 on one; with the cores far apart 1.1 on
// two, 0.88 on one.
double calm(int t, long) { return t == 1 ? 0.99e-3 : 0.58e-3; }
double far(int t, long) { return t == 1 ? 0.88e-3 : 1.10e-3; }

TEST(ThreadGovernor, StaysOnAllThreadsWhileTheyAreFaster) {
  ThreadGovernor g(2, true);
  const long one = run(g, 20000, calm);
  // trials only, each stopped after its settling steps and two counted ones (one thread is far slower): the
  // warm-up's, then after kFirstCheck steps, doubling up to every kCheckEvery
  EXPECT_GT(one, 0);
  EXPECT_EQ(one, g.trials() * (ThreadGovernor::kSettle + 2));
  EXPECT_LE(g.trials(), 4 + 20000 / ThreadGovernor::kCheckEvery);
  EXPECT_LT(double(one) / 20000, 0.01);
  EXPECT_EQ(g.threads(), 2);
}

TEST(ThreadGovernor, GoesToOneThreadInASpellAndBackAfterIt) {
  ThreadGovernor g(2, true);
  run(g, 3000, calm);
  // a spell starts: within a few dozen steps (the jump in step time starts a trial) the governor is on one thread
  run(g, 16 + 2 * ThreadGovernor::kTrialSteps + 4, far);
  EXPECT_EQ(g.threads(), 1);
  const long one = run(g, 5000, far);
  EXPECT_GT(double(one) / 5000, 0.95);  // on one thread but for the trials' blocks on two
  // the spell ends: back on two threads within kRecheckEvery steps and a trial
  const long back = run(g, ThreadGovernor::kRecheckEvery + 2 * ThreadGovernor::kTrialSteps, calm);
  EXPECT_EQ(g.threads(), 2);
  EXPECT_GT(back, 0);
  EXPECT_LT(double(run(g, 2000, calm)) / 2000, 0.02);
}

TEST(ThreadGovernor, ARunThatStartsInASpellGoesToOneThread) {
  ThreadGovernor g(2, true);
  const long one = run(g, 1000, far);
  EXPECT_GT(one, 900);
}

TEST(ThreadGovernor, NeedsOneThreadClearlyFaster) {
  // one thread 1% faster: within the margin, so all threads stay
  ThreadGovernor g(2, true);
  const long one = run(g, 5000, [](int t, long) { return t == 1 ? 0.99e-3 : 1.0e-3; });
  EXPECT_LT(double(one) / 5000, 0.02);
  EXPECT_EQ(g.threads(), 2);
}

TEST(ThreadGovernor, OffOrOneThreadAlwaysAnswersTheCountGiven) {
  ThreadGovernor off(2, false), single(1, true);
  EXPECT_FALSE(off.on());
  EXPECT_FALSE(single.on());
  EXPECT_EQ(run(off, 3000, far), 0);
  EXPECT_EQ(off.threads(), 2);
  EXPECT_EQ(run(single, 3000, far), 3000);
  EXPECT_EQ(single.threads(), 1);
  EXPECT_EQ(off.trials(), 0);
}

TEST(ThreadGovernor, FourThreadsGoToOneAndBack) {
  ThreadGovernor g(4, true);
  run(g, 500, calm);
  EXPECT_EQ(g.threads(), 4);
  run(g, 500, far);
  EXPECT_EQ(g.threads(), 1);
  run(g, 500, calm);
  EXPECT_EQ(g.threads(), 4);
}

}  // namespace
}  // namespace rectifier
