// Diagnostics: watches a model while it trains and says, per layer and per epoch, what the article talks about:
// dead units, sparsity (exact zeros), pre-activation statistics, saturation, gradient norms and update ratios, and
// warns in plain words about dying ReLU, vanishing and exploding gradients. It only reads the model.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>
#include "rectifier/model.h"
#include "rectifier/optimizer.h"

namespace rectifier {

struct MonitorConfig {
  int hist_bins = 32;
  int hist_every = 8;          // fill the pre-activation histogram from every Nth batch
  int update_every = 16;       // measure the update-to-weight ratio on every Nth step
  double dead_warn = 0.30;     // dying ReLU: dead fraction above this...
  double dead_rise = 0.10;     // ...or rising by this much in one epoch (and above it)
  double vanish_ratio = 100;   // first weight's gradient norm this many times below the last one's
  double explode_growth = 10;  // mean gradient norm growing this many times in one epoch
};

struct Warning {
  std::string kind;     // "dying_relu", "vanishing_gradient", "exploding_gradient"
  int layer = -1;
  std::string message;  // cause and remedies, in plain words
};

// The activation statistics are taken as the forward pass makes each layer's output (Model's ForwardObserver),
// and after_forward adds the last forward's to the epoch's.
class Monitor : ForwardObserver<float> {
 public:
  explicit Monitor(Model<float>& model, MonitorConfig cfg = {});
  ~Monitor() override;
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;
  void begin_epoch();
  // After a training forward pass of n examples (the model's last forward).
  void after_forward(int n);
  // After backward, before clipping: gradient norms. Returns a message naming the layer and tensor if any value
  // in the activations or gradients is NaN or infinite.
  std::optional<std::string> after_backward();
  // Called before and after an optimizer step (the ratio is measured on sampled steps).
  bool wants_update_ratio() const;
  void before_step();
  void after_step();
  // The fused path, in place of after_backward, before_step and after_step (the trainer's, without gradient
  // clipping): prepare_step counts the step and returns what to ask of the optimizer's step_and_clear (null if the
  // model's parameters are not one contiguous run); after_fused_step takes its figures. Same norms (same bits),
  // the same non-finite check and message, update ratios within rounding; no passes of their own.
  StepStats* prepare_step();
  std::optional<std::string> after_fused_step();
  // The epoch's figures and warnings as JSON; also kept for warnings().
  nlohmann::json end_epoch();
  const std::vector<Warning>& warnings() const { return warnings_; }
  // Where the first non-finite value is in the current activations (layer and tensor), if anywhere.
  std::optional<std::string> find_nonfinite_activation() const;

  static std::vector<Warning> warnings_from_json(const nlohmann::json& diagnostics);

 private:
  struct Watched {  // one activation layer
    size_t layer;
    int units, spatial;  // a dense unit or a conv channel; spatial positions per unit
    std::string name;
    bool can_die, saturates;
    std::vector<uint8_t> active;       // this epoch: unit was non-zero on some example
    std::vector<uint8_t> was_alive;    // at the end of the previous epoch
    bool have_prev = false;
    double zeros = 0, count = 0, pre_sum = 0, pre_sq = 0, pre_n = 0, saturated = 0;
    double lo = 0, hi = 0;
    std::vector<double> hist;
    double prev_dead = 0;
  };
  // One thread's share of the last forward's activation figures, per watched layer.
  struct Slot {
    std::vector<std::vector<int32_t>> active;  // per unit: non-zero on one of this thread's examples
    std::vector<size_t> zeros, saturated;
  };
  void begin_forward(int n) override;
  void rows_done(size_t layer, int i0, int i1, const float* x, const float* y) override;
  // the histogram batches read the watched layers' inputs after the pass
  bool wants_outputs() const override { return batch_ % cfg_.hist_every == 0; }
  // examples [i0, i1) of watched layer w: x and y at example i0's input and output
  void observe(size_t w, Slot& slot, int i0, int i1, const float* x, const float* y);
  std::vector<int> watch_of_;                  // per model layer: its index in watched_, or -1
  std::vector<Slot> slots_;                    // one per thread, and the last for threads beyond (under a lock)
  std::vector<std::vector<double>> ex_sum_, ex_sq_;  // per watched layer and example: pre-activation sums
  int forward_n_ = 0;                          // examples in the last forward observed
  struct ParamStat {
    std::string name;
    float* value;
    float* grad;
    size_t size;
    bool is_weight;
    double norm_sum = 0, ratio_sum = 0;
    long norm_n = 0, ratio_n = 0;
    size_t piece0 = 0, pieces = 0;  // its pieces: stats_.ranges[piece0, piece0 + pieces)
  };
  Model<float>& model_;
  MonitorConfig cfg_;
  std::vector<int32_t> hist_counts_;  // scratch: one histogram batch's counts, in four tables
  std::vector<Watched> watched_;
  std::vector<ParamStat> params_;
  // Every parameter cut into pieces of at most 16K values, kept as stats_.ranges (offset in the flat parameters
  // and gradients, size): per-step reductions run as one parallel loop over them, into one slot per piece, summed
  // per parameter in a fixed order; the fused path hands the same pieces to the optimizer.
  StepStats stats_;  // the pieces, and the fused path's request and answers
  bool fusable_ = false;
  std::vector<double> piece_a_, piece_b_;
  template <class F> void each_piece(F&& f);  // f(piece index, offset, size), in parallel
  // The sum of one parameter's per-piece slots of v (one double per piece), in piece order.
  double sum_pieces(const ParamStat& p, const double* v) const;
  std::vector<float> before_;
  // The bookkeeping both paths share: gradient norms and the non-finite check from per-piece sums (fused: the
  // first non-finite element per piece comes from the fused pass; null: looked up in the gradient), update ratios.
  std::optional<std::string> account_gradients(const double* piece_ss, const StepStats* fused);
  void account_ratios(const double* update_ss, const double* weight_ss);
  long batch_ = 0, step_ = 0;
  int last_n_ = 0;  // examples in the last forward
  double total_norm_sum_ = 0, total_norm_max_ = 0, prev_total_mean_ = 0;
  long total_norm_n_ = 0;
  std::vector<Warning> warnings_;
};

}  // namespace rectifier
