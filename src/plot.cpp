#include "rectifier/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace rectifier {

namespace {
const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                          "#7f7f7f", "#bcbd22"};

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

std::string tick_label(double v, bool log) {
  char b[32];
  if (log) {
    std::snprintf(b, sizeof b, "1e%d", int(std::lround(v)));
    return b;
  }
  if (v == 0) return "0";
  const double a = std::abs(v);
  if (a >= 1e5 || a < 1e-3) std::snprintf(b, sizeof b, "%.0e", v);
  else std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}
}  // namespace

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::vector<double> nice_ticks(double lo, double hi, int target, bool integers) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / std::max(target, 2);
  const double mag = std::pow(10, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * mag >= raw) { step = m * mag; break; }
  if (integers) step = std::max(1.0, std::round(step));
  std::vector<double> t;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) t.push_back(std::abs(v) < step * 1e-9 ? 0 : v);
  return t;
}

std::string render_svg(const Chart& c) {
  const double W = c.width, H = c.height, L = 70, R = 20, T = c.title.empty() ? 20 : 40, Bm = 55;
  const double pw = W - L - R, ph = H - T - Bm;
  // Data range.
  double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, ylo = xlo, yhi = -xlo;
  for (const auto& s : c.series) {
    for (double x : s.x) if (std::isfinite(x)) { xlo = std::min(xlo, x); xhi = std::max(xhi, x); }
    for (double y : s.y) {
      if (!std::isfinite(y) || (c.log_y && y <= 0)) continue;
      const double v = c.log_y ? std::log10(y) : y;
      ylo = std::min(ylo, v);
      yhi = std::max(yhi, v);
    }
    if (s.bars) { ylo = std::min(ylo, 0.0); }
  }
  if (!std::isfinite(xlo)) { xlo = 0; xhi = 1; }
  if (!std::isfinite(ylo)) { ylo = 0; yhi = 1; }
  if (c.y_min) ylo = c.log_y ? std::log10(*c.y_min) : *c.y_min;
  if (c.y_max) yhi = c.log_y ? std::log10(*c.y_max) : *c.y_max;
  if (xhi <= xlo) { xlo -= 0.5; xhi += 0.5; }
  if (yhi <= ylo) { ylo -= 0.5; yhi += 0.5; }
  if (c.log_y) { ylo = std::floor(ylo); yhi = std::ceil(yhi); if (yhi == ylo) yhi += 1; }
  else if (!c.y_min && !c.y_max) { const double pad = (yhi - ylo) * 0.05; ylo -= ylo == 0 ? 0 : pad; yhi += pad; }
  auto px = [&](double x) { return L + (x - xlo) / (xhi - xlo) * pw; };
  auto py = [&](double y) { return T + ph - (y - ylo) / (yhi - ylo) * ph; };

  std::string o = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(W) + "\" height=\"" + num(H) +
                  "\" viewBox=\"0 0 " + num(W) + " " + num(H) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  o += "<rect x=\"0\" y=\"0\" width=\"" + num(W) + "\" height=\"" + num(H) + "\" fill=\"white\"/>\n";
  if (!c.title.empty())
    o += "<text x=\"" + num(W / 2) + "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">" +
         xml_escape(c.title) + "</text>\n";
  // Grid and ticks.
  std::vector<double> yt;
  if (c.log_y) {
    const int step = std::max(1, int(std::ceil((yhi - ylo) / 8)));
    for (double v = ylo; v <= yhi + 1e-9; v += step) yt.push_back(v);
  } else {
    yt = nice_ticks(ylo, yhi);
  }
  for (double v : yt) {
    if (v < ylo - 1e-9 || v > yhi + 1e-9) continue;
    o += "<line x1=\"" + num(L) + "\" x2=\"" + num(L + pw) + "\" y1=\"" + num(py(v)) + "\" y2=\"" + num(py(v)) +
         "\" stroke=\"#e0e0e0\"/>\n";
    o += "<text x=\"" + num(L - 6) + "\" y=\"" + num(py(v) + 4) + "\" text-anchor=\"end\">" + tick_label(v, c.log_y) + "</text>\n";
  }
  bool int_x = true;  // epochs, layers, steps: whole-number ticks
  for (const auto& s : c.series)
    for (double x : s.x) int_x &= !std::isfinite(x) || x == std::floor(x);
  for (double v : nice_ticks(xlo, xhi, 8, int_x)) {
    if (v < xlo - 1e-9 || v > xhi + 1e-9) continue;
    o += "<line x1=\"" + num(px(v)) + "\" x2=\"" + num(px(v)) + "\" y1=\"" + num(T) + "\" y2=\"" + num(T + ph) +
         "\" stroke=\"#f0f0f0\"/>\n";
    o += "<text x=\"" + num(px(v)) + "\" y=\"" + num(T + ph + 18) + "\" text-anchor=\"middle\">" + tick_label(v, false) + "</text>\n";
  }
  // Zero lines make activation plots readable.
  if (!c.log_y && ylo < 0 && yhi > 0)
    o += "<line x1=\"" + num(L) + "\" x2=\"" + num(L + pw) + "\" y1=\"" + num(py(0)) + "\" y2=\"" + num(py(0)) + "\" stroke=\"#999\"/>\n";
  if (xlo < 0 && xhi > 0)
    o += "<line x1=\"" + num(px(0)) + "\" x2=\"" + num(px(0)) + "\" y1=\"" + num(T) + "\" y2=\"" + num(T + ph) + "\" stroke=\"#999\"/>\n";
  o += "<rect x=\"" + num(L) + "\" y=\"" + num(T) + "\" width=\"" + num(pw) + "\" height=\"" + num(ph) +
       "\" fill=\"none\" stroke=\"#333\"/>\n";
  o += "<text x=\"" + num(L + pw / 2) + "\" y=\"" + num(H - 12) + "\" text-anchor=\"middle\">" + xml_escape(c.xlabel) + "</text>\n";
  o += "<text transform=\"translate(16," + num(T + ph / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
       xml_escape(c.ylabel + (c.log_y ? " (log scale)" : "")) + "</text>\n";
  // Series, clipped to the plot area.
  o += "<clipPath id=\"plotarea\"><rect x=\"" + num(L) + "\" y=\"" + num(T) + "\" width=\"" + num(pw) + "\" height=\"" +
       num(ph) + "\"/></clipPath>\n<g clip-path=\"url(#plotarea)\">\n";
  for (size_t si = 0; si < c.series.size(); ++si) {
    const auto& s = c.series[si];
    const std::string color = s.color.empty() ? kPalette[si % 10] : s.color;
    if (s.bars) {
      for (size_t i = 0; i + 1 < s.x.size() && i < s.y.size(); ++i) {
        const double y = c.log_y ? (s.y[i] > 0 ? std::log10(s.y[i]) : ylo) : s.y[i];
        const double base = c.log_y ? ylo : 0;
        o += "<rect x=\"" + num(px(s.x[i])) + "\" y=\"" + num(py(std::max(y, base))) + "\" width=\"" +
             num(std::max(px(s.x[i + 1]) - px(s.x[i]) - 0.5, 0.5)) + "\" height=\"" + num(std::abs(py(base) - py(y))) +
             "\" fill=\"" + color + "\" fill-opacity=\"0.6\"/>\n";
      }
      continue;
    }
    std::string d;
    bool pen = false;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      double y = s.y[i];
      if (!std::isfinite(y) || !std::isfinite(s.x[i]) || (c.log_y && y <= 0)) { pen = false; continue; }
      if (c.log_y) y = std::log10(y);
      d += (pen ? "L" : "M") + num(px(s.x[i])) + "," + num(py(std::clamp(y, ylo - (yhi - ylo), yhi + (yhi - ylo)))) + " ";
      pen = true;
    }
    o += "<path d=\"" + d + "\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"2\"" +
         (s.dashed ? " stroke-dasharray=\"6,4\"" : "") + "/>\n";
    if (s.x.size() == 1 && !d.empty())
      o += "<circle cx=\"" + num(px(s.x[0])) + "\" cy=\"" + num(py(c.log_y ? std::log10(s.y[0]) : s.y[0])) + "\" r=\"3\" fill=\"" + color + "\"/>\n";
  }
  o += "</g>\n";
  // Legend, top-left inside the plot.
  double ly = T + 10;
  for (size_t si = 0; si < c.series.size(); ++si) {
    const auto& s = c.series[si];
    if (s.label.empty()) continue;
    const std::string color = s.color.empty() ? kPalette[si % 10] : s.color;
    o += "<rect x=\"" + num(L + 8) + "\" y=\"" + num(ly - 8) + "\" width=\"" + num(8 + 6.5 * double(s.label.size()) + 30) +
         "\" height=\"16\" fill=\"white\" fill-opacity=\"0.8\"/>\n";
    o += "<line x1=\"" + num(L + 12) + "\" x2=\"" + num(L + 34) + "\" y1=\"" + num(ly) + "\" y2=\"" + num(ly) + "\" stroke=\"" +
         color + "\" stroke-width=\"" + (s.bars ? "8" : "2") + "\"" + (s.dashed ? " stroke-dasharray=\"6,4\"" : "") + "/>\n";
    o += "<text x=\"" + num(L + 40) + "\" y=\"" + num(ly + 4) + "\">" + xml_escape(s.label) + "</text>\n";
    ly += 17;
  }
  o += "</svg>\n";
  return o;
}

}  // namespace rectifier
