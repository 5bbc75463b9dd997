// rectifier eval | predict | info | diagnose: use a saved model.
#include <cmath>
#include <cstdio>
#include "common.h"
#include "rectifier/error.h"
#include "rectifier/monitor.h"
#include "rectifier/trainer.h"

namespace rectifier::cli {

using nlohmann::json;

Dataset& pick_split(DataSplit& data, const std::string& split) {
  if (split == "test") return data.test;
  if (split == "train") return data.train;
  throw Error("--split: expected train or test, got '" + split + "'");
}

void fit_data_to_model(Dataset& data, const ModelInfo& info, const Model<float>& model) {
  if (numel(data.shape) != numel(model.input_shape()))
    throw Error("the model takes inputs of shape " + shape_str(model.input_shape()) + " but " + data.source +
                " has examples of shape " + shape_str(data.shape));
  data.scale = info.input_scale;  // the preprocessing the model was trained with
  const size_t out = numel(model.output_shape());
  for (size_t i = 0; i < data.labels.size(); ++i)
    if (info.loss != "bce" && size_t(data.labels[i]) >= out)
      throw Error(data.source + ": example " + std::to_string(i) + " has label " + std::to_string(data.labels[i]) +
                  " but the model has " + std::to_string(out) + " outputs");
}

namespace {
// A model file and the split of a data set it will run on, checked against each other and scaled as in training.
struct ModelOnData {
  LoadedModel m;
  DataSplit data;
  Dataset* split;
};
ModelOnData load_model_on_data(const std::string& model, const std::string& data, const std::string& split, int threads) {
  ModelOnData r{load_model(model), load_data(data), nullptr};
  r.split = &pick_split(r.data, split);
  fit_data_to_model(*r.split, r.m.info, r.m.model);
  set_threads(threads);
  return r;
}

LossKind model_loss(const ModelInfo& info) {
  auto l = parse_loss(info.loss);
  if (!l) throw Error("model file: unknown loss '" + info.loss + "'");
  return *l;
}
}  // namespace

Runner add_eval(CLI::App& app) {
  auto model_path = std::make_shared<std::string>(), data = std::make_shared<std::string>();
  auto split = std::make_shared<std::string>("test");
  auto as_json = std::make_shared<bool>(false);
  auto threads = std::make_shared<int>(0);
  app.add_option("--model", *model_path, "model file (safetensors)")->required();
  app.add_option("--data", *data, data_help())->required();
  app.add_option("--split", *split, "train or test")->capture_default_str();
  app.add_option("--threads", *threads, "threads (0 = all cores)");
  app.add_flag("--json", *as_json, "print one JSON object: loss, accuracy, n");
  return [=]() -> int {
    ModelOnData md = load_model_on_data(*model_path, *data, *split, *threads);
    EvalResult r = evaluate(md.m.model, *md.split, model_loss(md.m.info));
    if (*as_json) std::printf("%s\n", json{{"loss", r.loss}, {"accuracy", r.accuracy}, {"n", r.n}}.dump().c_str());
    else std::printf("loss %.4f  accuracy %.4f  (%zu examples, %s split)\n", r.loss, r.accuracy, r.n, split->c_str());
    return 0;
  };
}

Runner add_predict(CLI::App& app) {
  auto model_path = std::make_shared<std::string>(), data = std::make_shared<std::string>(), out = std::make_shared<std::string>();
  auto split = std::make_shared<std::string>("test");
  auto threads = std::make_shared<int>(0);
  app.add_option("--model", *model_path, "model file (safetensors)")->required();
  app.add_option("--data", *data, data_help())->required();
  app.add_option("--out", *out, "output .npy file: float32 [n, outputs], in the data set's order")->required();
  app.add_option("--split", *split, "train or test")->capture_default_str();
  app.add_option("--threads", *threads, "threads (0 = all cores)");
  return [=]() -> int {
    ModelOnData md = load_model_on_data(*model_path, *data, *split, *threads);
    const size_t k = numel(md.m.model.output_shape());
    Predictor<float> predictor(std::move(md.m.model), 512);
    std::vector<float> y = predict(predictor, *md.split);
    save_npy(*out, y.data(), md.split->size(), k);
    std::printf("wrote %s: %zu x %zu outputs\n", out->c_str(), md.split->size(), k);
    return 0;
  };
}

Runner add_info(CLI::App& app) {
  auto model_path = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  app.add_option("model", *model_path, "model file (safetensors)")->required();
  app.add_flag("--json", *as_json, "print the metadata and layers as JSON");
  return [=]() -> int {
    LoadedModel m = load_model(*model_path);
    Model<float>& model = m.model;
    json layers = json::array();
    for (size_t i = 0; i < model.num_layers(); ++i) {
      size_t n = 0;
      for (const auto& p : model.layer(i).params()) n += p.size();
      layers.push_back({{"index", i}, {"layer", layer_text(model.layer(i).spec())}, {"output", model.layer(i).out_shape()},
                        {"params", n}, {"pytorch", model.layer(i).torch_module()}});
    }
    if (*as_json) {
      std::printf("%s\n", json{{"metadata", m.info.extra}, {"layers", layers}, {"params", model.num_params()}}.dump(2).c_str());
      return 0;
    }
    std::printf("%s\n  input %s, %d classes, loss %s, input scale %g\n  architecture: %s\n\n", model_path->c_str(),
                shape_str(model.input_shape()).c_str(), m.info.classes, m.info.loss.c_str(), m.info.input_scale,
                model.arch().c_str());
    std::printf("  %-5s %-22s %-16s %10s   %s\n", "index", "layer", "output", "params", "PyTorch");
    for (const auto& l : layers)
      std::printf("  %-5zu %-22s %-16s %10zu   %s\n", l["index"].get<size_t>(), l["layer"].get<std::string>().c_str(),
                  shape_str(l["output"].get<Shape>()).c_str(), l["params"].get<size_t>(), l["pytorch"].get<std::string>().c_str());
    std::printf("\n  total parameters: %zu\n", model.num_params());
    for (const auto& [k, v] : m.info.extra)
      if (k != "arch" && k != "pytorch" && k != "format" && k != "input_shape")
        std::printf("  %s: %s\n", k.c_str(), v.c_str());
    std::printf("\n  PyTorch: %s\n", model.torch_source().c_str());
    return 0;
  };
}

Runner add_diagnose(CLI::App& app) {
  auto model_path = std::make_shared<std::string>(), data = std::make_shared<std::string>();
  auto split = std::make_shared<std::string>("train");
  auto batch = std::make_shared<int>(128);
  auto as_json = std::make_shared<bool>(false);
  app.add_option("--model", *model_path, "model file (safetensors)")->required();
  app.add_option("--data", *data, data_help())->required();
  app.add_option("--split", *split, "train or test")->capture_default_str();
  app.add_option("--batch", *batch, "examples per pass")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  app.add_flag("--json", *as_json, "print the figures as JSON");
  return [=]() -> int {
    ModelOnData md = load_model_on_data(*model_path, *data, *split, 0);
    const LoadedModel& m = md.m;
    Dataset& ds = *md.split;
    Model<float>& model = md.m.model;
    const LossKind loss = model_loss(m.info);
    const size_t N = ds.size(), D = numel(ds.shape), K = numel(model.output_shape());
    const int B = int(std::min<size_t>(size_t(*batch), N));
    model.reserve(B);
    Buffer<float> x(size_t(B) * D), dout(size_t(B) * K);
    Monitor mon(model);
    mon.begin_epoch();
    double total = 0;
    size_t correct = 0;
    for (size_t i = 0; i < N; i += size_t(B)) {
      const int n = int(std::min<size_t>(size_t(B), N - i));
      ds.gather_range(i, n, x.data());
      model.forward(x.data(), n, false);
      mon.after_forward(n);
      LossResult r = loss_forward_backward<float>(loss, model.layer_output(model.num_layers() - 1), ds.labels.data() + i, n,
                                                  int(K), dout.data());
      total += r.loss * n;
      correct += size_t(r.correct);
      model.zero_grad();
      model.backward(dout.data(), n);
      if (auto bad = mon.after_backward()) throw Error("non-finite value: " + *bad, kExitNonFinite);
    }
    json diag = mon.end_epoch();
    if (*as_json) {
      std::printf("%s\n", json{{"loss", total / double(N)}, {"accuracy", double(correct) / double(N)}, {"n", N},
                               {"diagnostics", diag}}.dump(2).c_str());
      return 0;
    }
    std::printf("%s on %s (%s split, %zu examples): loss %.4f, accuracy %.4f\n\n", model_path->c_str(), data->c_str(),
                split->c_str(), N, total / double(N), double(correct) / double(N));
    std::printf("  %-5s %-14s %6s %7s %9s %11s %10s %10s\n", "layer", "activation", "units", "dead", "sparsity", "pre mean",
                "pre std", "saturated");
    for (const auto& l : diag["layers"])
      std::printf("  %-5d %-14s %6d %6.1f%% %8.1f%% %11.4g %10.4g %10s\n", l["layer"].get<int>(),
                  l["activation"].get<std::string>().c_str(), l["units"].get<int>(), 100 * l["dead_fraction"].get<double>(),
                  100 * l["sparsity"].get<double>(), l["pre_mean"].get<double>(), l["pre_std"].get<double>(),
                  l.contains("saturated_fraction") ? (std::to_string(int(std::lround(100 * l["saturated_fraction"].get<double>()))) + "%").c_str() : "-");
    std::printf("\n  %-16s %14s\n", "tensor", "gradient norm");
    for (const auto& p : diag["params"]) std::printf("  %-16s %14.4g\n", p["name"].get<std::string>().c_str(), p["grad_norm"].get<double>());
    const auto warns = Monitor::warnings_from_json(diag);
    std::printf("\n");
    if (warns.empty()) std::printf("  no warnings\n");
    for (const auto& w : warns) std::printf("  warning: %s\n", w.message.c_str());
    return 0;
  };
}

}  // namespace rectifier::cli
