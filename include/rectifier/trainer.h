// The training loop: batches -> forward -> loss -> backward -> clip -> optimizer, epoch after epoch, with the
// monitor watching. The trainer knows the loop, not the math.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <nlohmann/json.hpp>
#include "rectifier/data.h"
#include "rectifier/loss.h"
#include "rectifier/model.h"
#include "rectifier/optimizer.h"
#include "rectifier/predictor.h"

namespace rectifier {

struct TrainConfig {
  int epochs = 10;
  int batch = 128;
  OptimizerConfig optimizer;
  Schedule schedule;
  LossKind loss = LossKind::cross_entropy;
  double clip_norm = 0;         // gradient-norm clipping; 0 = off
  double l1_activation = 0;     // L1 penalty on the outputs of activation layers (sparsity experiments)
  uint64_t seed = 0;
  int threads = 0;              // 0 = all cores
  bool deterministic = false;   // even work split: bit-identical runs at any fixed thread count (see set_deterministic)
  // With more than one thread (and not deterministic): trial steps on one thread now and then, and one thread
  // while it is the faster (src/thread_governor.h: on a shared host whose cores are placed far apart). Off: all
  // `threads` at every step.
  bool adapt_threads = true;
  bool diagnostics = true;      // per-layer dead units, sparsity, gradient norms, warnings
  bool stop_on_nonfinite = true;
  // With stop_on_nonfinite: the weights are copied aside, as the last good ones, at every Nth step, in the update's
  // own pass. A stop puts the newest copy back and names its step. Copying at every step made the copy 2 of the
  // update's 8 streams of memory traffic (docs/benchmarks.md, run 15); 1 keeps the weights of the step before.
  int last_good_every = 16;
  bool progress = false;        // a progress bar on stderr
  bool eval_train = false;      // recompute train loss/accuracy in eval mode after each epoch (else running means)
  int eval_every = 1;           // evaluate on the test split every N epochs (and after the last)
  std::function<bool()> should_stop;  // checked after every step: true ends training there (early stopping)
};

struct EpochMetrics {
  int epoch = 0;
  double train_loss = 0, train_accuracy = 0;
  double test_loss = 0, test_accuracy = 0;
  bool evaluated = false;
  double seconds = 0;           // training time of the epoch (evaluation excluded)
  double lr = 0;                // learning rate at the end of the epoch
  long steps = 0;               // optimizer steps so far
  int threads = 1;              // the threads the run was given
  long steps_one_thread = 0;    // this epoch's steps that ran on one of them (adapt_threads)
  nlohmann::json diagnostics;   // per-layer figures and warnings (see monitor.h), null when off
  nlohmann::json to_json() const;
};

struct EvalResult {
  double loss = 0, accuracy = 0;
  size_t n = 0;
};

// Sets the thread count for OpenMP and OpenBLAS (0 = all cores).
void set_threads(int threads);
// With more than one thread, a matrix product is split between the threads by their measured speed, so that a core
// slowed by a neighbour on a shared host does less of it (the default). Where the split falls changes the rounding,
// so two runs with the same seed can differ in the last bits. set_deterministic(true) splits evenly instead: runs
// are then bit-identical at any fixed thread count. One thread is always bit-identical.
void set_deterministic(bool on);
bool deterministic();
// What this process runs on, for bug reports and benchmarks: the SIMD target Highway dispatches the kernels to
// (and the others this CPU supports), OpenBLAS's build and core, and the thread count. Several lines.
std::string runtime_info();

class Monitor;

struct TrainResult {
  std::vector<EpochMetrics> epochs;
  bool stopped_nonfinite = false;
  std::string nonfinite_message;  // names the step, layer and tensor
};

// Trains `model` in place. on_epoch (optional) sees each epoch's metrics as soon as they exist; on_step (optional)
// is called after each optimizer step with (step, epoch, loss). If a non-finite value appears the weights of the last
// good step are restored and the result says where.
TrainResult train(Model<float>& model, const DataSplit& data, const TrainConfig& cfg,
                  const std::function<void(const EpochMetrics&)>& on_epoch = {}, Monitor* monitor = nullptr,
                  const std::function<void(long, int, double)>& on_step = {});

// Loss and accuracy over the data set, in batches. The batch's input goes to `workspace` when given (grown if too
// small, never shrunk): the trainer passes one buffer for every epoch's evaluation, so that none allocates (a new
// 1.6 MB block each epoch, with the glibc heap unable to reuse the last one, grew a 10-epoch MLP run's resident
// memory by 1.5 MB per epoch).
template <class T>
EvalResult evaluate(Model<T>& model, const Dataset& data, LossKind loss, int batch = 512, Buffer<T>* workspace = nullptr);

// Outputs (n, k) of the model on the whole data set, in order.
template <class T>
std::vector<float> predict(Model<T>& model, const Dataset& data, int batch = 512);
// The same through a predictor (its dense layers' weights packed once: rectifier predict).
template <class T>
std::vector<float> predict(Predictor<T>& predictor, const Dataset& data, int batch = 512);

}  // namespace rectifier
