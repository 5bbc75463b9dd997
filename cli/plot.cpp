// rectifier plot | report: pictures without Python.
#include <cmath>
#include <cstdio>
#include "common.h"
#include "rectifier/error.h"
#include "rectifier/plot.h"
#include "rectifier/report.h"

namespace rectifier::cli {

Runner add_plot(CLI::App& app) {
  auto names = std::make_shared<std::vector<std::string>>();
  auto range = std::make_shared<std::string>("-5:5");
  auto out = std::make_shared<std::string>();
  auto no_deriv = std::make_shared<bool>(false);
  std::string acts;
  for (const auto& n : activation_names()) acts += (acts.empty() ? "" : ", ") + n;
  app.add_option("activations", *names, "one or more of: " + acts + " (parameters as leaky_relu(0.1))")->required();
  app.add_option("--range", *range, "x range LO:HI")->capture_default_str();
  app.add_option("--out", *out, "SVG file (default: the first name + .svg)");
  app.add_flag("--no-derivative", *no_deriv, "draw the functions only");
  return [=]() -> int {
    auto colon = range->find(':');
    double lo = 0, hi = 0;
    try {
      if (colon == std::string::npos) throw std::invalid_argument("");
      lo = std::stod(range->substr(0, colon));
      hi = std::stod(range->substr(colon + 1));
    } catch (const std::logic_error&) {
      throw Error("--range: expected LO:HI such as -5:10, got '" + *range + "'");
    }
    if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) throw Error("--range: HI must be above LO, got '" + *range + "'");
    Chart c;
    c.xlabel = "x";
    c.ylabel = *no_deriv ? "f(x)" : "f(x) (solid), f'(x) (dashed)";
    std::string title;
    static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};
    for (size_t k = 0; k < names->size(); ++k) {
      auto a = parse_activation((*names)[k]);
      if (!a) throw Error("plot: unknown activation '" + (*names)[k] + "' (expected one of " + acts + ")");
      Series f, d;
      f.label = activation_spec(*a);
      d.label = activation_spec(*a) + "'";
      f.color = d.color = colors[k % 8];
      d.dashed = true;
      const int steps = 1000;
      for (int i = 0; i <= steps; ++i) {
        const double x = lo + (hi - lo) * i / steps;
        f.x.push_back(x);
        f.y.push_back(act_value(*a, x));
        d.x.push_back(x);
        d.y.push_back(act_derivative(*a, x));
      }
      c.series.push_back(f);
      if (!*no_deriv) c.series.push_back(d);
      title += (title.empty() ? "" : ", ") + activation_spec(*a);
    }
    c.title = title + (*no_deriv ? "" : " and derivative" + std::string(names->size() > 1 ? "s" : ""));
    std::string path = out->empty() ? (*names)[0] + ".svg" : *out;
    atomic_write(path, render_svg(c));
    std::printf("wrote %s\n", path.c_str());
    return 0;
  };
}

Runner add_report(CLI::App& app) {
  auto metrics = std::make_shared<std::string>(), out = std::make_shared<std::string>("report.html");
  app.add_option("metrics", *metrics, "metrics file written by train --metrics (JSON lines)")->required();
  app.add_option("--out", *out, "HTML file")->capture_default_str();
  return [=]() -> int {
    ReportInput in = read_metrics(*metrics);
    atomic_write(*out, render_report(in));
    std::printf("wrote %s (%zu epochs)\n", out->c_str(), in.epochs.size());
    return 0;
  };
}

}  // namespace rectifier::cli
