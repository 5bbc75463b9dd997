// Optimizers over the model's flat parameter block, learning-rate schedules and gradient clipping.
// Update rules follow PyTorch's torch.optim exactly (weight decay, dampening 0, bias correction).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
#include "rectifier/tensor.h"

namespace rectifier {

enum class OptKind { sgd, adam, adamw, rmsprop };

struct OptimizerConfig {
  OptKind kind = OptKind::sgd;
  double lr = 0.05;
  double momentum = 0.9;      // sgd, rmsprop
  bool nesterov = false;      // sgd
  double weight_decay = 0;    // L2 added to the gradient (sgd, adam, rmsprop) or decoupled (adamw)
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam, adamw; rmsprop uses eps
  double alpha = 0.99;        // rmsprop smoothing
};

std::optional<OptKind> parse_optimizer(std::string_view name);
std::string optimizer_name(OptKind k);

// What the training monitor wants from one step, taken in the update's own pass so that it needs no pass of its own
// over the gradients and weights (Monitor::prepare_step fills the request, Monitor::after_fused_step reads it).
struct StepStats {
  std::vector<std::pair<size_t, size_t>> ranges;  // (offset, size), covering the parameters in order
  bool ratio = false;                             // also the squared sizes of the update and of the weights
  std::vector<double> grad_ss;                    // per range: the gradient's sum of squares, before it is cleared
  std::vector<double> update_ss, weight_ss;       // per range, with ratio: sum (p after - p before)^2, sum p before^2
  std::vector<size_t> first_bad;                  // per range: the first non-finite gradient element, or SIZE_MAX
  std::vector<uint8_t> first_bad_nan;             // per range: whether that element was NaN (else infinite)
};

template <class T>
class Optimizer {
 public:
  Optimizer(const OptimizerConfig& cfg, size_t n);
  // One step with learning rate lr: p (n) updated in place from g (n). g is read-only. If backup is not null it
  // receives the values p had before the step (in the same pass: the trainer's "last good weights"). With stats,
  // also fills stats' figures for its ranges in that pass (sums per block of 4096 from each range's start, the
  // gradient's with the bits of kernels::sum_squares, the monitor's own pass), in the update's own loop
  // (kernels::update_with_sums, adam_with_sums, rmsprop_with_sums).
  // The trainer then calls Model::discard_grads: the next backward writes the gradients, and nothing zeroes them.
  void step(T* p, const T* g, double lr, T* backup = nullptr, StepStats* stats = nullptr);
  // The same, then g zeroed in the same pass (the next backward's zero_grad, without a pass of its own).
  void step_and_clear(T* p, T* g, double lr, T* backup = nullptr, StepStats* stats = nullptr);
  const OptimizerConfig& config() const { return cfg_; }
  long steps() const { return t_; }

 private:
  OptimizerConfig cfg_;
  size_t n_;
  long t_ = 0;
  Buffer<T> m_, v_;  // momentum / first moment, second moment
  template <bool Z>
  void run(T* p, T* g, double lr, T* backup, StepStats* stats);
};

// Scales g so its L2 norm is at most max_norm (no-op for max_norm <= 0). Returns the norm before clipping.
template <class T> double clip_grad_norm(T* g, size_t n, double max_norm);

enum class ScheduleKind { constant, step, cosine };

struct Schedule {
  ScheduleKind kind = ScheduleKind::constant;
  double warmup_epochs = 0;  // linear warm-up from 0 to the base rate
  int step_epochs = 10;      // step: multiply by gamma every step_epochs
  double gamma = 0.1;
  double min_lr = 0;         // cosine floor
  // The rate at fractional epoch `e` (0 at the start) of `total` epochs.
  double lr_at(double base, double e, double total) const;
};

std::optional<ScheduleKind> parse_schedule(std::string_view name);
std::string schedule_name(ScheduleKind k);

}  // namespace rectifier
