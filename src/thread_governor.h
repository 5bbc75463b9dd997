// How many of its threads a training run uses, step by step: all of them, or one while one is faster.
//
// On a shared virtual machine the host moves the guest's cores (vCPUs) between its own. When it puts the two far
// apart (another socket or core complex: a cache line then takes 360-390 ns to go from one to the other and back,
// against 80-100 ns), every line one thread writes and the other reads costs several times as much, and the reference
// MLP's step on two threads took 1.1 ms, against 0.92 ms on one and 0.52-0.60 ms on two at other times
// (docs/benchmarks.md, "Two threads slower than one"). Such spells last from seconds to minutes. A convolutional
// step, with more arithmetic per byte shared, stayed faster on two threads through them (7.5 against 8.8 ms).
//
// So the governor times steps rather than guessing from the cores' placement. Now and then it runs a trial,
// kTrialSteps steps on one thread then as many on all of them, and goes on with the faster by the medians of each
// block's last steps (one thread only when at least kMargin faster): after kWarmup steps; on all threads after
// kFirstCheck more, then twice as many each time up to kCheckEvery; on one thread every kRecheckEvery; and as soon as
// the steps get kJump times slower than after the last trial. The first kSettle steps of each block are not counted:
// after a change of thread count the data the other core held moves over (blocks that alternated step by step made
// the one-thread steps look slower than they run). A trial costs a few steps at the slower count: in calm times a
// 10-epoch run of the reference MLP (4690 steps) has four, 24 steps on one thread, each 0.4 ms longer.
//
// Off (a single thread, or deterministic runs, whose rounding must not depend on timing), it always answers the
// thread count it was given. The decisions depend on timing: with more than one thread a run's last bits already
// do (kernels::SplitBalance).
#pragma once
#include <algorithm>
#include <array>
#include <vector>

namespace rectifier {

class ThreadGovernor {
 public:
  static constexpr int kWarmup = 32;          // steps before the first trial (the first ones are slow)
  static constexpr int kTrialSteps = 6;       // steps on each count in a trial, one block each
  static constexpr int kSettle = 2;           // of which the first are not counted
  static constexpr long kFirstCheck = 512;    // on all threads: steps to the next trial, doubling up to
  static constexpr long kCheckEvery = 2048;
  static constexpr long kRecheckEvery = 256;  // on one thread: steps between trials
  static constexpr double kJump = 1.3;        // steps this much slower than after the last trial: a trial now
  static constexpr double kMargin = 0.93;     // one thread must take at most this fraction of all threads' time

  ThreadGovernor(int threads, bool on) : all_(std::max(threads, 1)), on_(on && all_ > 1), cur_(all_) {}

  // The thread count for the next step.
  int threads() const { return trial_ ? trial_count() : cur_; }
  bool on() const { return on_; }
  int all() const { return all_; }

  // The step just run at threads() took `seconds`.
  void record(double seconds) {
    if (!on_) return;
    if (trial_) {
      if (trial_step_ % kTrialSteps >= kSettle) (trial_count() == 1 ? one_ : full_).push_back(seconds);
      if (++trial_step_ == 2 * kTrialSteps) finish_trial();
      return;
    }
    ++since_;
    recent_[size_t(recent_n_++ % recent_.size())] = seconds;
    if (reference_ == 0) {  // after the warm-up, a first trial (which sets the reference)
      if (since_ >= kWarmup) start_trial();
      return;
    }
    const bool due = since_ >= (cur_ == all_ ? check_every_ : kRecheckEvery);
    const bool jumped = recent_n_ >= long(recent_.size()) && recent_median() > kJump * reference_;
    if (due || jumped) start_trial();
  }

  long trials() const { return trials_; }

 private:
  int trial_count() const { return trial_step_ < kTrialSteps ? 1 : all_; }  // one thread first, then all
  void start_trial() {
    trial_ = true;
    trial_step_ = 0;
    one_.clear();
    full_.clear();
    ++trials_;
  }
  void finish_trial() {
    const double one = median(one_), full = median(full_);
    // Down to one thread only when clearly faster; back up to all as soon as they are faster.
    cur_ = one < (cur_ == all_ ? kMargin : 1.0) * full ? 1 : all_;
    check_every_ = cur_ == 1 ? kFirstCheck : std::min(2 * check_every_, kCheckEvery);
    reference_ = cur_ == 1 ? one : full;
    trial_ = false;
    since_ = 0;
    recent_n_ = 0;
  }
  double recent_median() const {
    const size_t n = std::min(recent_.size(), size_t(recent_n_));
    std::vector<double> v(recent_.begin(), recent_.begin() + long(n));
    return median(v);
  }
  static double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::nth_element(v.begin(), v.begin() + long(v.size() / 2), v.end());
    return v[v.size() / 2];
  }

  int all_;
  bool on_;
  int cur_;
  bool trial_ = false;
  int trial_step_ = 0;
  std::vector<double> one_, full_;
  std::array<double, 16> recent_{};
  long recent_n_ = 0, since_ = 0, trials_ = 0;
  long check_every_ = kFirstCheck / 2;  // doubled by the first trial
  double reference_ = 0;
};

}  // namespace rectifier
