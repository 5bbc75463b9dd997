// Experiments that measure the article's claims against published results (../shared/EXPERIMENTS.md rows 1-9).
// Each writes a table (Markdown and JSON) with measured figures beside the published ones, SVG charts, and a verdict
// per claim: reproduced, not reproduced, or inconclusive, with the reason.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

namespace rectifier {

struct ExperimentOptions {
  bool quick = false;  // a small version (seconds) that checks the machinery, not the paper
  int seeds = 0;       // 0: the experiment's default
  std::function<void(const std::string&)> log;  // progress lines
};

struct Claim {
  std::string claim, paper, published, measured;
  std::string verdict;  // "reproduced", "not reproduced" or "inconclusive"
  std::string reason;
  std::string chart;    // file name of the chart that shows it
};

struct ExperimentResult {
  std::string name, question;
  std::vector<Claim> claims;
  std::map<std::string, std::string> charts;  // file name -> SVG
  nlohmann::json data;                         // every measured figure
  double seconds = 0;
  bool quick = false;
};

struct Experiment {
  std::string name, question;
  std::function<ExperimentResult(const ExperimentOptions&)> run;
};

const std::vector<Experiment>& experiments();
// Runs one by name (times it); throws Error for an unknown name.
ExperimentResult run_experiment(const std::string& name, const ExperimentOptions& opt);
// DIR/NAME/results.md, results.json and the charts, written atomically.
void write_experiment(const ExperimentResult& r, const std::string& dir);
std::string experiment_markdown(const ExperimentResult& r);

}  // namespace rectifier
