// rectifier train
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include "common.h"
#include "rectifier/error.h"
#include "rectifier/monitor.h"
#include "rectifier/report.h"
#include "rectifier/trainer.h"

namespace rectifier::cli {

namespace {
struct TrainArgs {
  std::string data, arch = "mlp", act = "relu", optimizer = "sgd", init = "he", schedule = "cosine", loss = "cross_entropy";
  std::string out, metrics, report;
  int epochs = 0, batch = 128, threads = 0, step_epochs = 10;
  double lr = 0.05, momentum = 0.9, weight_decay = 0, clip_norm = 0, dropout = 0, warmup = 0, gamma = 0.1;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, init_gain = 1.0, l1 = 0;
  std::optional<double> bias_init;
  bool nesterov = false, no_diagnostics = false, quiet = false, deterministic = false, fixed_threads = false;
  uint64_t seed = 0;
};

template <class T, class F>
T parse_name(const std::string& what, const std::string& v, F&& f, const std::string& choices) {
  auto r = f(v);
  if (!r) throw Error("--" + what + ": unknown value '" + v + "' (expected " + choices + ")");
  return *r;
}

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}
}  // namespace

Runner add_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  app.add_option("--data", a->data, data_help())->required();
  app.add_option("--arch", a->arch, "architecture: mlp, cnn, lenet5, widths such as 784-256-128-10, or layers such as "
                 "'conv(16,5,pad=2) relu maxpool(2) flatten dense(10)'")->capture_default_str();
  std::string acts;
  for (const auto& n : activation_names()) acts += (acts.empty() ? "" : ", ") + n;
  app.add_option("--act", a->act, "activation between layers for widths and presets: " + acts +
                 "; parameters as leaky_relu(0.1) or relu(prime0=1)")->capture_default_str();
  app.add_option("--epochs", a->epochs, "passes over the training set (default: 15 for MLPs, 10 for conv nets)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--batch", a->batch, "examples per step")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  app.add_option("--optimizer", a->optimizer, "sgd, adam, adamw or rmsprop")->capture_default_str();
  app.add_option("--lr", a->lr, "learning rate")->capture_default_str();
  app.add_option("--momentum", a->momentum, "momentum (sgd, rmsprop)")->capture_default_str();
  app.add_flag("--nesterov", a->nesterov, "Nesterov momentum (sgd)");
  app.add_option("--weight-decay", a->weight_decay, "L2 weight decay (decoupled for adamw)")->capture_default_str();
  app.add_option("--beta1", a->beta1, "Adam beta1")->capture_default_str();
  app.add_option("--beta2", a->beta2, "Adam beta2")->capture_default_str();
  app.add_option("--eps", a->eps, "Adam/RMSProp epsilon")->capture_default_str();
  app.add_option("--schedule", a->schedule, "learning-rate schedule: constant, step or cosine")->capture_default_str();
  app.add_option("--warmup", a->warmup, "epochs of linear learning-rate warm-up")->capture_default_str();
  app.add_option("--step-epochs", a->step_epochs, "step schedule: epochs between decays")->capture_default_str();
  app.add_option("--gamma", a->gamma, "step schedule: decay factor")->capture_default_str();
  app.add_option("--init", a->init, "weight init: he, he_uniform, xavier, xavier_uniform, lecun, lecun_uniform, torch")->capture_default_str();
  app.add_option("--init-gain", a->init_gain, "multiplies the init's standard deviation")->capture_default_str();
  app.add_option("--bias-init", a->bias_init, "constant bias init (default 0; negative values provoke dying ReLU)");
  app.add_option("--clip-norm", a->clip_norm, "clip the gradient's L2 norm to this (0 = off)")->capture_default_str();
  app.add_option("--dropout", a->dropout, "dropout after each hidden activation (widths and presets)")->capture_default_str();
  app.add_option("--l1-activation", a->l1, "L1 penalty on activation outputs (sparsity)")->capture_default_str();
  app.add_option("--loss", a->loss, "cross_entropy, mse or bce")->capture_default_str();
  app.add_option("--seed", a->seed, "random seed (init, shuffling, dropout)")->capture_default_str();
  app.add_option("--threads", a->threads, "threads (0 = all cores); 1 thread and a seed give bit-identical runs")->capture_default_str();
  app.add_flag("--fixed-threads", a->fixed_threads,
               "use every thread at every step. By default, with more than one, a few steps now and then run on one "
               "thread, and training goes on with one while that is faster (on a shared host that has placed the "
               "cores far apart); the epoch's metrics count those steps (steps_one_thread)");
  app.add_flag("--deterministic", a->deterministic,
               "split the work evenly between the threads, not by their measured speed, and use all of them at every "
               "step: runs with the same seed and thread count are then bit-identical (slower on a busy shared host)");
  app.add_option("--out", a->out, "save the trained model here (safetensors)");
  app.add_option("--metrics", a->metrics, "write one JSON object per epoch here (JSON lines)");
  app.add_option("--report", a->report, "write a self-contained HTML report here");
  app.add_flag("--no-diagnostics", a->no_diagnostics, "skip the per-layer diagnostics");
  app.add_flag("-q,--quiet", a->quiet, "print only the final line");
  return [a]() -> int {
    const TrainArgs& o = *a;
    DataSplit data = load_data(o.data);
    TrainConfig cfg;
    cfg.epochs = o.epochs;  // 0: decided below from the architecture
    cfg.batch = o.batch;
    cfg.seed = o.seed;
    cfg.threads = o.threads;
    cfg.deterministic = o.deterministic;
    cfg.adapt_threads = !o.fixed_threads;
    cfg.clip_norm = o.clip_norm;
    cfg.l1_activation = o.l1;
    cfg.diagnostics = !o.no_diagnostics;
    cfg.progress = !o.quiet && isatty(STDERR_FILENO);
    cfg.loss = parse_name<LossKind>("loss", o.loss, parse_loss, "cross_entropy, mse, bce");
    cfg.optimizer.kind = parse_name<OptKind>("optimizer", o.optimizer, parse_optimizer, "sgd, adam, adamw, rmsprop");
    cfg.optimizer.lr = o.lr;
    cfg.optimizer.momentum = o.momentum;
    cfg.optimizer.nesterov = o.nesterov;
    cfg.optimizer.weight_decay = o.weight_decay;
    cfg.optimizer.beta1 = o.beta1;
    cfg.optimizer.beta2 = o.beta2;
    cfg.optimizer.eps = o.eps;
    cfg.schedule.kind = parse_name<ScheduleKind>("schedule", o.schedule, parse_schedule, "constant, step, cosine");
    cfg.schedule.warmup_epochs = o.warmup;
    cfg.schedule.step_epochs = std::max(o.step_epochs, 1);
    cfg.schedule.gamma = o.gamma;
    if (!(o.lr > 0) || !std::isfinite(o.lr)) throw Error("--lr: must be a positive number, got " + fmt(o.lr));
    if (!(o.dropout >= 0 && o.dropout < 1)) throw Error("--dropout: must be in [0, 1), got " + fmt(o.dropout));
    InitSpec init;
    init.scheme = parse_name<InitScheme>("init", o.init, parse_init,
                                         "he, he_uniform, xavier, xavier_uniform, lecun, lecun_uniform, torch");
    init.gain = o.init_gain;
    init.bias = o.bias_init;
    ArchContext ctx;
    ctx.input = data.train.shape;
    ctx.classes = cfg.loss == LossKind::bce ? 1 : data.train.classes;
    auto act = parse_activation(o.act);
    if (!act) {
      std::string acts;
      for (const auto& n : activation_names()) acts += (acts.empty() ? "" : ", ") + n;
      throw Error("--act: unknown activation '" + o.act + "' (expected one of " + acts + ")");
    }
    ctx.act = *act;
    ctx.dropout = o.dropout;
    Model<float> model(parse_arch(o.arch, ctx), data.train.shape);
    model.init(init, o.seed);
    if (o.epochs == 0) {  // conv nets learn more per epoch and cost more per epoch
      bool conv = false;
      for (const auto& l : model.specs()) conv |= l.kind == LayerKind::conv;
      cfg.epochs = conv ? 10 : 15;
    }

    if (!o.quiet)
      std::printf("data %s: %zu train, %zu test, input %s, %d classes\nmodel %s (%zu parameters)\n", o.data.c_str(),
                  data.train.size(), data.test.size(), shape_str(data.train.shape).c_str(), data.train.classes,
                  model.arch().c_str(), model.num_params());
    std::unique_ptr<Monitor> monitor;
    if (cfg.diagnostics) monitor = std::make_unique<Monitor>(model);
    std::string lines;
    std::vector<nlohmann::json> history;
    auto on_epoch = [&](const EpochMetrics& m) {
      nlohmann::json j = m.to_json();
      history.push_back(j);
      if (!o.metrics.empty()) {
        lines += j.dump() + "\n";
        atomic_write(o.metrics, lines);  // the whole file each epoch: never half-written
      }
      if (!o.quiet) {
        std::printf("epoch %3d  %.2fs  lr %.4g  train loss %.4f acc %.4f", m.epoch, m.seconds, m.lr, m.train_loss, m.train_accuracy);
        if (m.evaluated) std::printf("  test loss %.4f acc %.4f", m.test_loss, m.test_accuracy);
        std::printf("\n");
        for (const auto& w : Monitor::warnings_from_json(m.diagnostics)) std::printf("  warning: %s\n", w.message.c_str());
        std::fflush(stdout);
      }
    };
    TrainResult r = train(model, data, cfg, on_epoch, monitor.get());
    ModelInfo info;
    info.input = data.train.shape;
    info.loss = loss_name(cfg.loss);
    info.input_scale = data.train.scale;
    info.classes = data.train.classes;
    info.extra = {{"data", o.data}, {"optimizer", o.optimizer}, {"lr", fmt(o.lr)}, {"epochs", std::to_string(cfg.epochs)},
                  {"batch", std::to_string(o.batch)}, {"seed", std::to_string(o.seed)}, {"init", o.init},
                  {"schedule", o.schedule}};
    if (!r.epochs.empty() && r.epochs.back().evaluated) info.extra["test_accuracy"] = fmt(r.epochs.back().test_accuracy);
    if (!o.out.empty()) save_model(o.out, model, info);
    if (!o.report.empty()) {
      ReportInput in;
      in.title = "rectifier train --data " + o.data;
      in.arch = model.arch();
      in.epochs = history;
      if (r.stopped_nonfinite) in.notes.push_back(r.nonfinite_message);
      atomic_write(o.report, render_report(in));
    }
    if (r.stopped_nonfinite) {
      std::fprintf(stderr, "rectifier: %s%s\n", r.nonfinite_message.c_str(),
                   o.out.empty() ? "" : (" and saved to " + o.out).c_str());
      return kExitNonFinite;
    }
    const EpochMetrics& last = r.epochs.back();
    double total = 0;
    for (const auto& e : r.epochs) total += e.seconds;
    std::printf("test accuracy %.4f  test loss %.4f  (%d epochs, %.1fs training)%s\n", last.test_accuracy, last.test_loss,
                last.epoch, total, o.out.empty() ? "" : ("  saved " + o.out).c_str());
    return 0;
  };
}

}  // namespace rectifier::cli
