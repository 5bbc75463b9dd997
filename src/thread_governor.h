// How many of its threads a training run uses, step by step: all of them, or one while one is faster.
//
// On a shared virtual machine the host moves the guest's cores (vCPUs) between its own. When it puts the two far
// apart (another socket or core complex: a cache line then takes 360-390 ns to go from one to the other and back,
// against 80-100 ns), every line one thread writes and the other reads costs several times as much, and the reference
// MLP's step on two threads took 1.1 ms, against 0.92 ms on one and 0.52-0.60 ms on two at other times
// (docs/benchmarks.md, "Two threads slower than one"). Such spells last from seconds to minutes. A convolutional
// step, with more arithmetic per byte shared, stayed faster on two threads through them (7.5 against 8.8 ms).
//
// So the governor times steps rather than guessing from the cores' placement. Now and then it runs a trial: up to
// kTrialSteps steps on the other count (one thread when on all, all when on one), and goes on with that count if the
// median of those steps beats the median of the last steps on the current one (going down to one thread only when it
// is at least kMargin faster). The first kSettle steps of the trial are not counted (after a change of thread count
// the data the other core held moves over), and the trial stops early once two counted steps are both kAbort times
// slower than the current count's: in calm times a trial costs four steps on one thread. Trials come after kWarmup
// steps; on all threads after kFirstCheck more, then twice as many each time up to kCheckEvery; on one thread every
// kRecheckEvery; and as soon as the steps get kJump times slower than after the last trial.
//
// Off (a single thread, or deterministic runs, whose rounding must not depend on timing), it always answers the
// thread count it was given. The decisions depend on timing: with more than one thread a run's last bits already
// do (kernels::SplitBalance).
#pragma once
#include <algorithm>
#include <array>

namespace rectifier {

class ThreadGovernor {
 public:
  static constexpr int kWarmup = 32;          // steps before the first trial (the first ones are slow)
  static constexpr int kTrialSteps = 6;       // at most, in a trial
  static constexpr int kSettle = 2;           // of which the first are not counted
  static constexpr double kAbort = 1.15;      // two counted steps this much slower: the trial stops
  static constexpr long kFirstCheck = 256;    // on all threads: steps to the next trial, doubling up to
  static constexpr long kCheckEvery = 2048;
  static constexpr long kRecheckEvery = 256;  // on one thread: steps between trials
  static constexpr double kJump = 1.3;        // steps this much slower than after the last trial: a trial now
  static constexpr double kMargin = 0.97;     // one thread must take at most this fraction of all threads' time

  ThreadGovernor(int threads, bool on) : all_(std::max(threads, 1)), on_(on && all_ > 1), cur_(all_) {}

  // The thread count for the next step.
  int threads() const { return trial_ ? other() : cur_; }
  bool on() const { return on_; }
  int all() const { return all_; }

  // The step just run at threads() took `seconds`.
  void record(double seconds) {
    if (!on_) return;
    if (trial_) {
      if (trial_step_++ >= kSettle) block_[size_t(block_n_++)] = seconds;
      if (block_n_ >= 2 && *std::min_element(block_.begin(), block_.begin() + block_n_) > kAbort * base_) {
        end_trial();
      } else if (trial_step_ == kTrialSteps) {
        const double m = median(block_.data(), size_t(block_n_));
        if (m < (other() == 1 ? kMargin : 1.0) * base_) {
          cur_ = other();
          reference_ = m;
        }
        end_trial();
      }
      return;
    }
    ++since_;
    recent_[size_t(recent_n_++ % recent_.size())] = seconds;
    if (reference_ == 0) {  // after the warm-up, a first trial
      if (since_ >= kWarmup) start_trial();
      return;
    }
    const bool due = since_ >= (cur_ == all_ ? check_every_ : kRecheckEvery);
    const bool jumped = recent_n_ >= long(recent_.size()) && recent_median() > kJump * reference_;
    if (due || jumped) start_trial();
  }

  long trials() const { return trials_; }

 private:
  int other() const { return cur_ == 1 ? all_ : 1; }
  void start_trial() {
    trial_ = true;
    trial_step_ = 0;
    block_n_ = 0;
    base_ = recent_median();  // the current count's last steps
    reference_ = base_;
    ++trials_;
  }
  void end_trial() {
    check_every_ = cur_ == 1 ? kFirstCheck : std::min(2 * check_every_, kCheckEvery);
    trial_ = false;
    since_ = 0;
    recent_n_ = 0;
  }
  double recent_median() const { return median(recent_.data(), std::min(recent_.size(), size_t(recent_n_))); }
  // The median (the upper one of an even count) of v[0, n), n <= kRecent, on a copy: no allocation in the step loop.
  static double median(const double* v, size_t n) {
    if (n == 0) return 0;
    std::array<double, kRecent> c;
    std::copy(v, v + n, c.begin());
    std::nth_element(c.begin(), c.begin() + long(n / 2), c.begin() + long(n));
    return c[n / 2];
  }

  int all_;
  bool on_;
  int cur_;
  bool trial_ = false;
  int trial_step_ = 0;
  static constexpr size_t kRecent = 16;  // the last steps whose median is the current count's time
  static_assert(kTrialSteps <= int(kRecent));
  std::array<double, kTrialSteps> block_{};  // the trial's counted steps
  int block_n_ = 0;
  std::array<double, kRecent> recent_{};
  long recent_n_ = 0, since_ = 0, trials_ = 0;
  long check_every_ = kFirstCheck / 2;  // doubled by the first trial
  double base_ = 0, reference_ = 0;     // the current count's median before the trial; after it
};

}  // namespace rectifier
