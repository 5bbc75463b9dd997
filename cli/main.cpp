// The `rectifier` command: a thin face over the library. Errors become one line on stderr and an exit code
// (2 bad input, 3 non-finite values in training).
#include <cstdio>
#include <exception>
#include <map>
#include "common.h"
#include "rectifier/error.h"
#include "rectifier/trainer.h"

int main(int argc, char** argv) {
  using namespace rectifier;
  CLI::App app{"rectifier: train and study ReLU networks (MLPs and CNNs) on the CPU"};
  app.require_subcommand(1);
  app.set_version_flag("--version", [] { return "rectifier 0.1.0\n" + runtime_info(); },
                       "Display the version, the SIMD target and matrix-product library in use, and exit");
  std::map<CLI::App*, cli::Runner> runners;
  auto add = [&](const char* name, const char* help, cli::Runner (*f)(CLI::App&)) {
    CLI::App* sub = app.add_subcommand(name, help);
    runners[sub] = f(*sub);
  };
  add("train", "train a network and save it (safetensors, loadable by PyTorch)", cli::add_train);
  add("eval", "loss and accuracy of a saved model on a data set", cli::add_eval);
  add("predict", "write a model's outputs on a data set as a NumPy .npy array", cli::add_predict);
  add("info", "architecture, shapes, parameter counts and the PyTorch equivalent of a model file", cli::add_info);
  add("plot", "draw activation functions and their derivatives as SVG", cli::add_plot);
  add("diagnose", "per-layer dead units, sparsity, pre-activations and gradient norms of a model on data", cli::add_diagnose);
  add("report", "turn a metrics file into a self-contained HTML report", cli::add_report);
  add("experiment", "measure the article's claims against the published results: list, run NAME|all", cli::add_experiment);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kExitBadInput;
  }
  try {
    for (auto* sub : app.get_subcommands())
      if (auto it = runners.find(sub); it != runners.end()) return it->second();
  } catch (const Error& e) {
    std::fprintf(stderr, "rectifier: %s\n", e.what());
    return e.exit_code;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "rectifier: out of memory\n");
    return kExitBadInput;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rectifier: %s\n", e.what());
    return kExitBadInput;
  }
  return 0;
}
