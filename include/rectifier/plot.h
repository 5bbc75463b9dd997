// Charts as standalone SVG: axes with ticks, labels and a legend a reader can use; linear or log y. No scripts,
// no external resources, so they embed as-is in the HTML report.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace rectifier {

struct Series {
  Series() = default;
  explicit Series(std::string label_, std::vector<double> x_ = {}, std::vector<double> y_ = {}, bool dashed_ = false)
      : label(std::move(label_)), x(std::move(x_)), y(std::move(y_)), dashed(dashed_) {}
  std::string label;
  std::vector<double> x, y;
  bool dashed = false;
  bool bars = false;        // draw as a histogram: x are the left bin edges, one more x than y
  std::string color;        // empty: taken from the palette in order
};

struct Chart {
  std::string title, xlabel, ylabel;
  std::vector<Series> series;
  bool log_y = false;
  std::optional<double> y_min, y_max;
  int width = 640, height = 400;
};

// A complete <svg> document (with the xmlns attribute), well-formed XML.
std::string render_svg(const Chart& chart);
// Escapes &, <, >, " for XML text and attributes.
std::string xml_escape(const std::string& s);
// "Nice" tick positions covering [lo, hi], about `target` of them; whole numbers only when `integers`.
std::vector<double> nice_ticks(double lo, double hi, int target = 6, bool integers = false);

}  // namespace rectifier
