#include "rectifier/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include "rectifier/error.h"
#include "rectifier/monitor.h"
#include "rectifier/plot.h"

namespace rectifier {

using nlohmann::json;

namespace {
std::string fmt(double v, const char* f = "%.4g") {
  char b[32];
  std::snprintf(b, sizeof b, f, v);
  return b;
}
double num(const json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : std::nan("");
}

Chart chart(const std::string& title, const std::string& xlabel, const std::string& ylabel, std::vector<Series> series = {}) {
  Chart c;
  c.title = title;
  c.xlabel = xlabel;
  c.ylabel = ylabel;
  c.series = std::move(series);
  return c;
}

std::string section(const std::string& title, const std::string& body) {
  return "<section><h2>" + xml_escape(title) + "</h2>\n" + body + "</section>\n";
}
}  // namespace

ReportInput read_metrics(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": no such file");
  ReportInput r;
  r.title = "rectifier report: " + path;
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      json j = json::parse(line);
      if (!j.is_object() || !j.contains("epoch")) throw Error(path + ": line " + std::to_string(lineno) + ": not an epoch record (no \"epoch\")");
      r.epochs.push_back(j);
    } catch (const json::parse_error& e) {
      throw Error(path + ": line " + std::to_string(lineno) + ", byte " + std::to_string(e.byte) + ": not valid JSON");
    }
  }
  if (r.epochs.empty()) throw Error(path + ": no epoch records");
  return r;
}

std::string render_report(const ReportInput& in) {
  const auto& E = in.epochs;
  std::vector<double> ep;
  for (const auto& e : E) ep.push_back(num(e, "epoch"));
  auto series = [&](const char* key, const std::string& label, bool dashed = false) {
    Series s;
    s.label = label;
    s.dashed = dashed;
    for (size_t i = 0; i < E.size(); ++i) { s.x.push_back(ep[i]); s.y.push_back(num(E[i], key)); }
    return s;
  };
  std::string body;
  // Summary.
  std::string summary = "<table><tr><th>epochs</th><th>final train loss</th><th>final train accuracy</th>"
                        "<th>final test loss</th><th>final test accuracy</th><th>training seconds</th></tr><tr>";
  double secs = 0;
  for (const auto& e : E) secs += std::isfinite(num(e, "seconds")) ? num(e, "seconds") : 0;
  if (!E.empty()) {
    const auto& l = E.back();
    summary += "<td>" + fmt(num(l, "epoch"), "%.0f") + "</td><td>" + fmt(num(l, "train_loss")) + "</td><td>" +
               fmt(num(l, "train_accuracy")) + "</td><td>" + fmt(num(l, "test_loss")) + "</td><td>" +
               fmt(num(l, "test_accuracy")) + "</td><td>" + fmt(secs, "%.1f") + "</td>";
  }
  summary += "</tr></table>\n";
  if (!in.arch.empty()) summary += "<p>Architecture: <code>" + xml_escape(in.arch) + "</code></p>\n";
  for (const auto& n : in.notes) summary += "<p class=\"warn\">" + xml_escape(n) + "</p>\n";
  body += section("Summary", summary);

  // Warnings, grouped by kind and layer: the epochs they fired in and the latest message.
  struct Group { std::string kind; int layer; std::vector<int> epochs; std::string message; };
  std::vector<Group> groups;
  for (const auto& e : E)
    if (e.contains("diagnostics"))
      for (const auto& w : Monitor::warnings_from_json(e["diagnostics"])) {
        auto it = std::find_if(groups.begin(), groups.end(), [&](const Group& g) { return g.kind == w.kind && g.layer == w.layer; });
        if (it == groups.end()) it = groups.insert(groups.end(), Group{w.kind, w.layer, {}, ""});
        it->epochs.push_back(int(num(e, "epoch")));
        it->message = w.message;
      }
  std::string warns;
  for (const auto& g : groups) {
    std::string when = g.epochs.size() == 1 ? "epoch " + std::to_string(g.epochs[0])
                                            : "epochs " + std::to_string(g.epochs.front()) + "-" + std::to_string(g.epochs.back()) +
                                                  " (" + std::to_string(g.epochs.size()) + " of " + std::to_string(E.size()) + ")";
    warns += "<li><b>" + when + "</b>: " + xml_escape(g.message) + "</li>\n";
  }
  body += section("Warnings", warns.empty() ? "<p>No warnings: no dying ReLU, vanishing or exploding gradients detected.</p>\n"
                                            : "<ul class=\"warn\">\n" + warns + "</ul>\n");

  Chart loss = chart("Loss", "epoch", "loss", {series("train_loss", "train"), series("test_loss", "test", true)});
  Chart acc = chart("Accuracy", "epoch", "accuracy", {series("train_accuracy", "train"), series("test_accuracy", "test", true)});
  body += section("Loss and accuracy", "<div class=\"charts\">" + render_svg(loss) + render_svg(acc) + "</div>\n");

  const bool diag = !E.empty() && E.back().contains("diagnostics");
  if (diag) {
    // Per-tensor gradient norms, log scale.
    std::map<std::string, Series> grads;
    std::vector<std::string> order;
    std::map<std::string, Series> dead, sparse;
    std::vector<std::string> lorder;
    for (size_t i = 0; i < E.size(); ++i) {
      if (!E[i].contains("diagnostics")) continue;
      const json& d = E[i]["diagnostics"];
      for (const auto& p : d.value("params", json::array())) {
        const std::string name = p.value("name", "?");
        if (!grads.count(name)) { order.push_back(name); grads[name].label = name; }
        grads[name].x.push_back(ep[i]);
        grads[name].y.push_back(num(p, "grad_norm"));
      }
      for (const auto& l : d.value("layers", json::array())) {
        const std::string name = "layer " + std::to_string(l.value("layer", -1)) + " " + l.value("activation", "");
        if (!dead.count(name)) { lorder.push_back(name); dead[name].label = name; sparse[name].label = name; }
        dead[name].x.push_back(ep[i]);
        dead[name].y.push_back(num(l, "dead_fraction"));
        sparse[name].x.push_back(ep[i]);
        sparse[name].y.push_back(num(l, "sparsity"));
      }
    }
    Chart g = chart("Gradient norm per tensor", "epoch", "mean L2 norm of the gradient");
    g.log_y = true;
    for (const auto& n : order) g.series.push_back(grads[n]);
    body += section("Gradient flow", "<div class=\"charts\">" + render_svg(g) + "</div>\n");
    Chart dc = chart("Dead units per layer", "epoch", "dead fraction"), sc = chart("Sparsity (exact zeros) per layer", "epoch", "fraction of zeros");
    dc.y_min = sc.y_min = 0.0;
    dc.y_max = sc.y_max = 1.0;
    for (const auto& n : lorder) { dc.series.push_back(dead[n]); sc.series.push_back(sparse[n]); }
    body += section("Dead units and sparsity", "<div class=\"charts\">" + render_svg(dc) + render_svg(sc) + "</div>\n");

    // Last epoch: histograms and the per-layer table.
    const json& d = E.back()["diagnostics"];
    std::string hists, table = "<table><tr><th>layer</th><th>activation</th><th>units</th><th>dead</th><th>revived</th>"
                               "<th>sparsity</th><th>pre-act mean</th><th>pre-act std</th><th>saturated</th></tr>\n";
    for (const auto& l : d.value("layers", json::array())) {
      const std::string name = "layer " + std::to_string(l.value("layer", -1)) + " (" + l.value("activation", "") + ")";
      table += "<tr><td>" + std::to_string(l.value("layer", -1)) + "</td><td>" + xml_escape(l.value("activation", "")) +
               "</td><td>" + std::to_string(l.value("units", 0)) + "</td><td>" + fmt(100 * num(l, "dead_fraction"), "%.1f%%") +
               "</td><td>" + fmt(100 * num(l, "revived_fraction"), "%.1f%%") + "</td><td>" +
               fmt(100 * num(l, "sparsity"), "%.1f%%") + "</td><td>" + fmt(num(l, "pre_mean")) + "</td><td>" +
               fmt(num(l, "pre_std")) + "</td><td>" +
               (l.contains("saturated_fraction") ? fmt(100 * num(l, "saturated_fraction"), "%.1f%%") : "-") + "</td></tr>\n";
      if (!l.contains("hist")) continue;
      const json& h = l["hist"];
      const auto counts = h.value("counts", std::vector<double>{});
      const double lo = h.value("lo", 0.0), hi = h.value("hi", 0.0);
      if (counts.empty() || !(hi > lo)) continue;
      Series s;
      s.bars = true;
      s.label = "pre-activations";
      for (size_t k = 0; k <= counts.size(); ++k) s.x.push_back(lo + (hi - lo) * double(k) / double(counts.size()));
      s.y = counts;
      Chart hc = chart("Pre-activation histogram, " + name, "pre-activation value", "count", {s});
      hc.width = 420;
      hc.height = 300;
      hists += render_svg(hc);
    }
    table += "</table>\n";
    body += section("Per-layer summary (last epoch)", table);
    body += section("Pre-activation histograms (last epoch)", "<div class=\"charts\">" + hists + "</div>\n");
    std::string ptable = "<table><tr><th>tensor</th><th>gradient norm</th><th>update / weight</th></tr>\n";
    for (const auto& p : d.value("params", json::array()))
      ptable += "<tr><td>" + xml_escape(p.value("name", "")) + "</td><td>" + fmt(num(p, "grad_norm")) + "</td><td>" +
                (p.contains("update_ratio") ? fmt(num(p, "update_ratio")) : "-") + "</td></tr>\n";
    body += section("Gradient norms and update ratios (last epoch)", ptable + "</table>\n");
  }

  return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + xml_escape(in.title) +
         "</title>\n<style>body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}"
         "h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em}"
         "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
         "th{background:#f4f4f4}.charts{display:flex;flex-wrap:wrap;gap:1em}.warn{color:#a40000}"
         "code{background:#f4f4f4;padding:.1em .3em}</style></head>\n<body>\n<h1>" +
         xml_escape(in.title) + "</h1>\n" + body + "<footer><p>Made by rectifier. Charts are inline SVG; this file needs no network.</p></footer>\n</body></html>\n";
}

}  // namespace rectifier
