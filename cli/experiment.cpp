// rectifier experiment list | run NAME|all
#include <cstdio>
#include "common.h"
#include "rectifier/error.h"
#include "rectifier/experiment.h"
#include "rectifier/trainer.h"

namespace rectifier::cli {

Runner add_experiment(CLI::App& app) {
  auto what = std::make_shared<std::string>(), name = std::make_shared<std::string>();
  auto quick = std::make_shared<bool>(false);
  auto seeds = std::make_shared<int>(0);
  auto out = std::make_shared<std::string>("experiments-out");
  app.add_option("action", *what, "list, or run")->required()->check(CLI::IsMember({"list", "run"}));
  app.add_option("name", *name, "experiment name, or all");
  app.add_flag("--quick", *quick, "a small version that runs in seconds (checks the machinery, not the paper)");
  app.add_option("--seeds", *seeds, "seeds or inits where the experiment uses several (0 = its default)");
  app.add_option("--out", *out, "directory for the tables and charts")->capture_default_str();
  return [=]() -> int {
    if (*what == "list") {
      for (const auto& e : experiments()) std::printf("%-11s %s\n", e.name.c_str(), e.question.c_str());
      return 0;
    }
    if (name->empty()) throw Error("experiment run: name an experiment (see 'rectifier experiment list') or all");
    set_threads(0);
    ExperimentOptions opt;
    opt.quick = *quick;
    opt.seeds = *seeds;
    opt.log = [](const std::string& l) { std::printf("  %s\n", l.c_str()); std::fflush(stdout); };
    std::vector<std::string> names;
    if (*name == "all") for (const auto& e : experiments()) names.push_back(e.name);
    else names.push_back(*name);
    std::string all_md;
    for (const auto& n : names) {
      std::printf("%s\n", n.c_str());
      std::fflush(stdout);
      ExperimentResult r = run_experiment(n, opt);
      write_experiment(r, *out);
      for (const auto& c : r.claims) std::printf("  -> %s: %s (%s)\n", c.verdict.c_str(), c.claim.c_str(), c.reason.c_str());
      std::printf("  wrote %s/%s/ (%.1f s)\n", out->c_str(), n.c_str(), r.seconds);
      all_md += experiment_markdown(r) + "\n";
    }
    if (names.size() > 1) atomic_write(*out + "/results.md", all_md);
    return 0;
  };
}

}  // namespace rectifier::cli
