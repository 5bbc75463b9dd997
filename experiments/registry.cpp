#include <chrono>
#include <filesystem>
#include "common.h"

namespace rectifier {

const std::vector<Experiment>& experiments() {
  static const std::vector<Experiment> all = {exp::speed(),      exp::vanishing(), exp::sparsity(), exp::relu_prime(),
                                              exp::depth_init(), exp::born_dead(), exp::dying(),    exp::exploding()};
  return all;
}

ExperimentResult run_experiment(const std::string& name, const ExperimentOptions& opt) {
  for (const auto& e : experiments())
    if (e.name == name) {
      const auto t0 = std::chrono::steady_clock::now();
      // Every figure an experiment reports comes back bit for bit from the same command: an even work split,
      // for the experiment's duration (the caller's setting is back afterwards, on a throw too).
      struct Deterministic {
        bool was = deterministic();
        Deterministic() { set_deterministic(true); }
        ~Deterministic() { set_deterministic(was); }
      } even;
      ExperimentResult r = e.run(opt);
      r.name = e.name;
      r.question = e.question;
      r.quick = opt.quick;
      r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      return r;
    }
  std::string names;
  for (const auto& e : experiments()) names += (names.empty() ? "" : ", ") + e.name;
  throw Error("experiment: unknown name '" + name + "' (expected one of " + names + ", or all)");
}

std::string experiment_markdown(const ExperimentResult& r) {
  std::string md = "## " + r.name + ": " + r.question + "\n\n";
  md += "| claim | paper | published | measured | verdict | why | chart |\n|---|---|---|---|---|---|---|\n";
  for (const auto& c : r.claims)
    md += "| " + c.claim + " | " + c.paper + " | " + c.published + " | " + c.measured + " | **" + c.verdict + "** | " +
          c.reason + " | " + (c.chart.empty() ? "" : "[" + c.chart + "](" + c.chart + ")") + " |\n";
  md += "\n" + std::string(r.quick ? "Quick run (--quick): checks the machinery, not the paper. " : "") + "Took " +
        exp::fmt(r.seconds, "%.1f") + " s.\n";
  return md;
}

void write_experiment(const ExperimentResult& r, const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path d = fs::path(dir) / r.name;
  std::error_code ec;
  fs::create_directories(d, ec);
  if (ec) throw Error(d.string() + ": cannot create (" + ec.message() + ")");
  nlohmann::json claims = nlohmann::json::array();
  for (const auto& c : r.claims)
    claims.push_back({{"claim", c.claim}, {"paper", c.paper}, {"published", c.published}, {"measured", c.measured},
                      {"verdict", c.verdict}, {"reason", c.reason}, {"chart", c.chart}});
  nlohmann::json j = {{"name", r.name}, {"question", r.question}, {"quick", r.quick}, {"seconds", r.seconds},
                      {"claims", claims}, {"data", r.data}};
  atomic_write((d / "results.json").string(), j.dump(2) + "\n");
  atomic_write((d / "results.md").string(), experiment_markdown(r));
  for (const auto& [file, svg] : r.charts) atomic_write((d / file).string(), svg);
}

}  // namespace rectifier
