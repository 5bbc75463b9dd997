#include "rectifier/trainer.h"

#include <cblas.h>
#include <hwy/targets.h>
#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>
#include "rectifier/error.h"
#include "rectifier/monitor.h"
#include "kernels/gemm.h"
#include "thread_governor.h"

extern "C" void openblas_set_num_threads(int);

namespace rectifier {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

json EpochMetrics::to_json() const {
  json j = {{"epoch", epoch}, {"train_loss", train_loss}, {"train_accuracy", train_accuracy}, {"seconds", seconds},
            {"lr", lr}, {"steps", steps}, {"threads", threads}};
  if (threads > 1) j["steps_one_thread"] = steps_one_thread;
  if (evaluated) {
    j["test_loss"] = test_loss;
    j["test_accuracy"] = test_accuracy;
  }
  if (!diagnostics.is_null()) j["diagnostics"] = diagnostics;
  return j;
}

void set_threads(int threads) {
  if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
}

std::string runtime_info() {
  const std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();  // best first
  std::string simd = targets.empty() ? "none" : hwy::TargetName(targets.front());
  std::string others;
  for (size_t i = 1; i < targets.size(); ++i) others += std::string(others.empty() ? "" : ", ") + hwy::TargetName(targets[i]);
  std::string s = "SIMD kernels: " + simd + " (Highway, chosen at run time";
  s += others.empty() ? ")\n" : "; also supported here: " + others + ")\n";
  s += "matrix products: " + std::string(openblas_get_config()) + "\n";  // its build, then the core it picked
  s += "threads: " + std::to_string(omp_get_max_threads()) + " (OpenMP)";
  return s;
}

void set_deterministic(bool on) { kernels::SplitBalance::get().set_adaptive(!on); }
bool deterministic() { return !kernels::SplitBalance::get().adaptive(); }

namespace {

// Checks that the model's input and output fit the data and the loss.
void check_fit(const Model<float>& model, const Dataset& data, LossKind loss) {
  if (numel(model.input_shape()) != numel(data.shape))
    throw Error("the model takes inputs of shape " + shape_str(model.input_shape()) + " but " + data.source +
                " has examples of shape " + shape_str(data.shape));
  const size_t out = numel(model.output_shape());
  if (loss == LossKind::bce) {
    if (out != 1) throw Error("loss bce needs one output, but the last layer gives " + std::to_string(out));
    if (data.classes > 2) throw Error("loss bce needs 2 classes, but " + data.source + " has " + std::to_string(data.classes));
  } else if (out < size_t(data.classes)) {
    throw Error("the last layer gives " + std::to_string(out) + " outputs but " + data.source + " has " +
                std::to_string(data.classes) + " classes");
  }
}

// "tensor '2.weight' (layer 2, dense(8)) holds NaN at element 5", or nothing when every parameter is finite.
std::optional<std::string> nonfinite_param(Model<float>& model) {
  for (size_t i = 0; i < model.num_layers(); ++i)
    for (const auto& p : model.layer(i).params())
      for (size_t j = 0; j < p.size(); ++j)
        if (!std::isfinite(p.value[j]))
          return "tensor '" + std::to_string(i) + "." + p.name + "' (layer " + std::to_string(i) + ", " +
                 layer_text(model.layer(i).spec()) + ") holds " + (std::isnan(p.value[j]) ? "NaN" : "an infinity") +
                 " at element " + std::to_string(j);
  return std::nullopt;
}

class Progress {
 public:
  Progress(bool on, int epochs) : on_(on), epochs_(epochs) {}
  void update(int epoch, long done, long total, double loss, double acc, double secs) {
    if (!on_) return;
    const int width = 30, filled = int(width * done / std::max(total, 1L));
    if (filled == last_ && done != total) return;
    last_ = filled;
    std::fprintf(stderr, "\repoch %d/%d [%.*s%.*s] %3d%%  loss %.4f  acc %.4f  %.1fs", epoch, epochs_, filled,
                 "##############################", width - filled, "..............................",
                 int(100 * done / std::max(total, 1L)), loss, acc, secs);
    std::fflush(stderr);
  }
  void finish() {
    if (on_) std::fprintf(stderr, "\r\033[K");
    last_ = -1;
  }

 private:
  bool on_;
  int epochs_;
  int last_ = -1;
};

}  // namespace

template <class T>
EvalResult evaluate(Model<T>& model, const Dataset& data, LossKind loss, int batch, Buffer<T>* workspace) {
  const size_t N = data.size(), D = numel(data.shape), K = numel(model.output_shape());
  batch = int(std::min<size_t>(size_t(batch), std::max<size_t>(N, 1)));
  Buffer<T> own;
  Buffer<T>& x = workspace ? *workspace : own;
  if (x.size() < size_t(batch) * D) x.resize(size_t(batch) * D);
  EvalResult r;
  double total = 0;
  size_t correct = 0;
  for (size_t i = 0; i < N; i += size_t(batch)) {
    const int n = int(std::min<size_t>(size_t(batch), N - i));
    data.gather_range(i, n, x.data());
    const T* out = model.forward(x.data(), n, false);
    LossResult lr = loss_forward_backward<T>(loss, out, data.labels.data() + i, n, int(K), nullptr);
    total += lr.loss * n;
    correct += size_t(lr.correct);
  }
  r.n = N;
  r.loss = N ? total / double(N) : 0;
  r.accuracy = N ? double(correct) / double(N) : 0;
  return r;
}

namespace {
// The outputs (N, K) of forward(x, n) over the data set in batches, in order.
template <class T, class Forward>
std::vector<float> predict_batches(const Dataset& data, size_t K, int batch, Forward&& forward) {
  const size_t N = data.size(), D = numel(data.shape);
  batch = int(std::min<size_t>(size_t(batch), std::max<size_t>(N, 1)));
  Buffer<T> x(size_t(batch) * D);
  std::vector<float> out(N * K);
  for (size_t i = 0; i < N; i += size_t(batch)) {
    const int n = int(std::min<size_t>(size_t(batch), N - i));
    data.gather_range(i, n, x.data());
    const T* y = forward(x.data(), n);
    for (size_t j = 0; j < size_t(n) * K; ++j) out[i * K + j] = float(y[j]);
  }
  return out;
}
}  // namespace

template <class T>
std::vector<float> predict(Model<T>& model, const Dataset& data, int batch) {
  return predict_batches<T>(data, numel(model.output_shape()), batch,
                            [&](const T* x, int n) { return model.forward(x, n, false); });
}

template <class T>
std::vector<float> predict(Predictor<T>& p, const Dataset& data, int batch) {
  return predict_batches<T>(data, numel(p.model().output_shape()), batch,
                            [&](const T* x, int n) { return p.predict(x, n); });
}

template EvalResult evaluate<float>(Model<float>&, const Dataset&, LossKind, int, Buffer<float>*);
template EvalResult evaluate<double>(Model<double>&, const Dataset&, LossKind, int, Buffer<double>*);
template std::vector<float> predict<float>(Model<float>&, const Dataset&, int);
template std::vector<float> predict<double>(Model<double>&, const Dataset&, int);
template std::vector<float> predict<float>(Predictor<float>&, const Dataset&, int);
template std::vector<float> predict<double>(Predictor<double>&, const Dataset&, int);

TrainResult train(Model<float>& model, const DataSplit& data, const TrainConfig& cfg,
                  const std::function<void(const EpochMetrics&)>& on_epoch, Monitor* monitor,
                  const std::function<void(long, int, double)>& on_step) {
  const Dataset& tr = data.train;
  check_fit(model, tr, cfg.loss);
  if (cfg.batch < 1) throw Error("batch size must be at least 1");
  if (tr.size() == 0) throw Error(tr.source + ": no training examples");
  set_threads(cfg.threads);
  set_deterministic(cfg.deterministic);

  const size_t N = tr.size(), D = numel(tr.shape);
  const int B = int(std::min<size_t>(size_t(cfg.batch), N)), K = int(numel(model.output_shape()));
  const long steps_per_epoch = long((N + size_t(B) - 1) / size_t(B));
  // Everything the loop touches is allocated here, once.
  model.reserve(B);
  // The forward pass keeps only the outputs backward reads (Model::set_keep_outputs), but for the activation
  // penalty, whose hook reads them all; as it was after training.
  struct KeepOutputs {
    Model<float>& m;
    bool was;
    ~KeepOutputs() { m.set_keep_outputs(was); }
  } keep_outputs{model, model.keep_outputs()};
  model.set_keep_outputs(cfg.l1_activation > 0);
  Buffer<float> x(size_t(B) * D), dout(size_t(B) * K), last_good(cfg.stop_on_nonfinite ? model.num_params() : 0);
  Buffer<float> eval_x;  // every epoch's evaluation input (evaluate sizes it once)
  std::vector<uint32_t> perm(N);
  for (size_t i = 0; i < N; ++i) perm[i] = uint32_t(i);
  std::vector<int32_t> labels(static_cast<size_t>(B));
  Optimizer<float> opt(cfg.optimizer, model.num_params());
  Rng rng(cfg.seed * 0x9e3779b97f4a7c15ULL + 1);
  Progress progress(cfg.progress, cfg.epochs);
  TrainResult result;
  std::function<void(size_t, float*, int)> l1_hook;
  if (cfg.l1_activation > 0)
    l1_hook = [&](size_t i, float* dy, int n) {  // d/dy of l1 * mean_over_batch(sum |y|)
      if (!model.layer(i).activation()) return;
      const float* y = model.layer_output(i);
      const float c = float(cfg.l1_activation / n);
      const size_t m = size_t(n) * numel(model.layer(i).out_shape());
      for (size_t j = 0; j < m; ++j) dy[j] += y[j] > 0 ? c : (y[j] < 0 ? -c : 0.0f);
    };

  // The thread count step by step: all, or one while one is faster (thread_governor.h)
  const int all_threads = omp_get_max_threads();
  ThreadGovernor governor(all_threads, cfg.adapt_threads && !cfg.deterministic);
  int running = all_threads;  // what OpenMP and OpenBLAS are set to
  auto run_on = [&](int k) {
    if (k != running) set_threads(running = k);
  };
  struct RestoreThreads {  // all of them again after training, however it ends
    int n;
    ~RestoreThreads() { set_threads(n); }
  } restore_threads{all_threads};
  long step = 0, last_good_step = -1;  // last_good holds the weights after step last_good_step
  const long every = std::max(cfg.last_good_every, 1);
  bool stop = false;
  // Each backward writes the gradients (Model::discard_grads), and nothing zeroes them: not a pass of their own,
  // nor the update's.
  model.discard_grads();
  for (int epoch = 1; epoch <= cfg.epochs && !stop; ++epoch) {
    for (size_t i = N - 1; i > 0; --i) std::swap(perm[i], perm[size_t(rng.below(i + 1))]);
    if (monitor) monitor->begin_epoch();
    const auto t0 = Clock::now();
    double loss_sum = 0, lr = cfg.optimizer.lr;
    size_t correct = 0, seen = 0;
    long steps_one = 0;
    for (long b = 0; b < steps_per_epoch; ++b) {
      run_on(governor.threads());
      steps_one += running == 1 && all_threads > 1;
      const auto step_start = Clock::now();
      const size_t first = size_t(b) * size_t(B);
      const int n = int(std::min<size_t>(size_t(B), N - first));
      tr.gather(perm.data() + first, n, x.data());
      for (int i = 0; i < n; ++i) labels[size_t(i)] = tr.labels[perm[first + size_t(i)]];
      const float* out = model.forward(x.data(), n, true);
      if (monitor) monitor->after_forward(n);
      LossResult r = loss_forward_backward<float>(cfg.loss, out, labels.data(), n, K, dout.data());
      std::optional<std::string> bad;
      if (!std::isfinite(r.loss)) {
        bad = "the loss is " + std::string(std::isnan(r.loss) ? "NaN" : "infinite");
        if (monitor) {
          if (!model.keep_outputs()) {  // the batch again, keeping every layer's output, to find the first bad one
            model.set_keep_outputs(true);
            model.forward(x.data(), n, true);
            model.set_keep_outputs(false);
          }
          if (auto where = monitor->find_nonfinite_activation()) *bad += "; " + *where;
        }
      }
      if (!bad) model.backward(dout.data(), n, l1_hook);  // the grads are zero: the last step cleared them
      // Without clipping, the monitor's gradient norms, non-finite check and update ratios are taken in the
      // optimizer's own pass (Monitor::prepare_step); the check then comes after the update, which is undone.
      StepStats* fused = !bad && monitor && cfg.clip_norm <= 0 ? monitor->prepare_step() : nullptr;
      if (!bad && monitor && !fused) bad = monitor->after_backward();
      // Stops on a non-finite value: `updated` when this step's update already ran (the fused check).
      auto stop_here = [&](bool updated) {
        progress.finish();
        result.stopped_nonfinite = true;
        result.nonfinite_message = "non-finite value at step " + std::to_string(step + 1) + " (epoch " +
                                   std::to_string(epoch) + "): " + *bad;
        long kept = step;
        auto restore_copy = [&] {
          std::memcpy(model.params(), last_good.data(), sizeof(float) * model.num_params());
          kept = last_good_step;
        };
        if (updated) {  // this step's update ran: back to the newest copy (this step's, if it took one)
          restore_copy();
          if (auto where = nonfinite_param(model)) result.nonfinite_message += "; " + *where;
        } else if (auto where = nonfinite_param(model)) {
          // The current weights are the last good ones unless the last update made them non-finite.
          result.nonfinite_message += "; " + *where;
          if (last_good_step >= 0) restore_copy();
        }
        result.nonfinite_message += "; the weights after step " + std::to_string(kept) + ", the last good ones, are kept";
        if (kept != step && every > 1)
          result.nonfinite_message += " (they are copied every " + std::to_string(every) + " steps)";
        return result;
      };
      if (bad && cfg.stop_on_nonfinite) return stop_here(false);
      if (cfg.clip_norm > 0) clip_grad_norm(model.grads(), model.num_params(), cfg.clip_norm);
      lr = cfg.schedule.lr_at(cfg.optimizer.lr, double(epoch - 1) + double(b) / double(steps_per_epoch), cfg.epochs);
      if (monitor && !fused) monitor->before_step();
      // The copy holds the weights before this update: after `step` steps.
      const bool copy = cfg.stop_on_nonfinite && step % every == 0;
      opt.step(model.params(), model.grads(), lr, copy ? last_good.data() : nullptr, fused);
      if (copy) last_good_step = step;
      if (fused) {
        bad = monitor->after_fused_step();
        if (bad && cfg.stop_on_nonfinite) return stop_here(true);
      } else if (monitor) {
        monitor->after_step();
      }
      model.discard_grads();
      governor.record(std::chrono::duration<double>(Clock::now() - step_start).count());
      ++step;
      loss_sum += r.loss * n;
      correct += size_t(r.correct);
      seen += size_t(n);
      if (on_step) on_step(step, epoch, r.loss);
      const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      progress.update(epoch, b + 1, steps_per_epoch, loss_sum / double(seen), double(correct) / double(seen), secs);
      if (cfg.should_stop && cfg.should_stop()) { stop = true; break; }
    }
    EpochMetrics m;
    m.epoch = epoch;
    m.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    m.threads = all_threads;
    m.steps_one_thread = steps_one;
    run_on(all_threads);  // the evaluation on all of them
    m.train_loss = loss_sum / double(seen);
    m.train_accuracy = double(correct) / double(seen);
    m.lr = lr;
    m.steps = step;
    if (monitor) m.diagnostics = monitor->end_epoch();
    progress.finish();
    if (cfg.eval_train) {
      EvalResult e = evaluate(model, tr, cfg.loss, 512, &eval_x);
      m.train_loss = e.loss;
      m.train_accuracy = e.accuracy;
    }
    if (data.test.size() > 0 && (epoch % std::max(cfg.eval_every, 1) == 0 || epoch == cfg.epochs || stop)) {
      EvalResult e = evaluate(model, data.test, cfg.loss, 512, &eval_x);
      m.test_loss = e.loss;
      m.test_accuracy = e.accuracy;
      m.evaluated = true;
    }
    result.epochs.push_back(m);
    if (on_epoch) on_epoch(m);
  }
  return result;
}

}  // namespace rectifier
