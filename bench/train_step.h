// One training step as src/trainer.cpp runs it, on a synthetic batch of 128 images of 28x28: forward, the monitor
// after forward, the loss, backward, then SGD with momentum, with the last-good copy at the trainer's default
// interval (TrainConfig::last_good_every, 16 steps) and the monitor's gradient figures taken in the optimizer's pass
// (or, unfused, in the monitor's own passes). The step benchmarks of kernels_bench (BM_TrainStep) and step_phases
// both run this.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>
#include "rectifier/activation.h"
#include "rectifier/data.h"
#include "rectifier/loss.h"
#include "rectifier/monitor.h"
#include "rectifier/optimizer.h"
#include "rectifier/rng.h"
#include "rectifier/trainer.h"

namespace rectifier::bench {

// The phases of a step, in order; run() calls mark(phase) as each one ends.
enum Phase { kGather, kForward, kAfterForward, kLoss, kBackward, kAfterBackward, kUpdate, kPhases };
inline const char* const kPhaseNames[kPhases] = {"gather the batch", "forward", "monitor after forward", "loss", "backward",
                                                 "monitor after backward", "update (+ update ratio)"};

inline Model<float> reference_model(const std::string& arch) {
  const Shape in{1, 28, 28};
  ArchContext ctx{in, 10, *parse_activation("relu")};
  Model<float> m(parse_arch(arch, ctx), in);
  m.init(InitSpec{}, 0);
  return m;
}

inline OptimizerConfig reference_sgd() {
  OptimizerConfig c;
  c.lr = 0.01;
  c.momentum = 0.9;
  return c;
}

class TrainStep {
 public:
  static constexpr int kBatch = 128;
  // diagnostics: run the monitor; fused: its gradient figures in the optimizer's pass (the trainer's way without
  // clipping); backup: keep the last-good copy (the trainer's default); data: if not null, each step gathers the next
  // 128 of its examples, in a shuffled order as the trainer takes them (Dataset::gather; from the start of that
  // order again at the end), instead of reusing the synthetic batch, at the reference task's learning rate (0.05,
  // not 0.01), so that the activations' sparsity, and the dense layers' sparse backward it enables, are those of
  // real training.
  // opt: the optimizer and its learning rate (the reference task's SGD with momentum when not given).
  explicit TrainStep(const std::string& arch, bool diagnostics = true, bool fused = true, bool backup = true,
                     const Dataset* data = nullptr, std::optional<OptimizerConfig> opt = std::nullopt)
      : m_(reference_model(arch)), opt_(opt ? *opt : reference_sgd(), m_.num_params()), fused_(fused), data_(data),
        lr_(opt ? opt->lr : data ? 0.05 : 0.01) {
    // Only with diagnostics: a monitor watches every forward pass of its model (Model::add_observer).
    if (diagnostics) mon_.emplace(m_);
    m_.set_keep_outputs(false);  // as the trainer: only the outputs backward reads
    m_.reserve(kBatch);
    x_.resize(size_t(kBatch) * 784);
    for (size_t i = 0; i < x_.size(); ++i) x_[i] = float((i * 7919) % 255) / 255.0f;
    y_.resize(size_t(kBatch));
    for (int i = 0; i < kBatch; ++i) y_[size_t(i)] = i % 10;
    dout_.resize(size_t(kBatch) * 10);
    if (backup) backup_.resize(m_.num_params());
    if (data_) {
      order_.resize(data_->size());
      for (size_t i = 0; i < order_.size(); ++i) order_[i] = uint32_t(i);
      Rng rng(1);
      for (size_t i = order_.size() - 1; i > 0; --i) std::swap(order_[i], order_[size_t(rng.below(i + 1))]);
    }
    if (mon_) mon_->begin_epoch();
    m_.discard_grads();  // as the trainer: each backward writes the gradients, and nothing zeroes them
  }
  TrainStep(const TrainStep&) = delete;
  TrainStep& operator=(const TrainStep&) = delete;

  template <class Mark>
  void run(Mark&& mark) {
    if (data_) {
      if (next_ + size_t(kBatch) > data_->size()) next_ = 0;
      data_->gather(order_.data() + next_, kBatch, x_.data());
      for (int i = 0; i < kBatch; ++i) y_[size_t(i)] = data_->labels[order_[next_ + size_t(i)]];
      next_ += size_t(kBatch);
    }
    mark(kGather);
    const float* out = m_.forward(x_.data(), kBatch, true);
    mark(kForward);
    if (mon_) mon_->after_forward(kBatch);
    mark(kAfterForward);
    loss_forward_backward<float>(LossKind::cross_entropy, out, y_.data(), kBatch, 10, dout_.data());
    mark(kLoss);
    m_.backward(dout_.data(), kBatch);
    mark(kBackward);
    StepStats* st = mon_ && fused_ ? mon_->prepare_step() : nullptr;
    if (mon_ && !st) (void)mon_->after_backward();
    mark(kAfterBackward);
    if (mon_ && !st) mon_->before_step();
    const bool copy = backup_.size() > 0 && steps_++ % every_ == 0;
    opt_.step(m_.params(), m_.grads(), lr_, copy ? backup_.data() : nullptr, st);
    if (st) (void)mon_->after_fused_step();
    else if (mon_) mon_->after_step();
    m_.discard_grads();
    mark(kUpdate);
  }
  void run() {
    run([](Phase) {});
  }

 private:
  Model<float> m_;
  Optimizer<float> opt_;
  std::optional<Monitor> mon_;
  bool fused_;
  const Dataset* data_;
  double lr_;
  size_t next_ = 0;
  std::vector<uint32_t> order_;  // the examples in a shuffled order, as the trainer takes them
  long steps_ = 0;
  const long every_ = TrainConfig{}.last_good_every;  // the trainer's default
  Buffer<float> x_, dout_, backup_;  // 64-byte aligned, as the trainer's (a std::vector's 400 KB are not)
  std::vector<int32_t> y_;
};

}  // namespace rectifier::bench
