// The self-contained HTML report: inline SVG charts and tables, no scripts, no network.
#pragma once
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

namespace rectifier {

struct ReportInput {
  std::string title;
  std::string arch;
  std::vector<nlohmann::json> epochs;  // the metrics lines (EpochMetrics::to_json)
  std::vector<std::string> notes;      // e.g. why training stopped
};

std::string render_report(const ReportInput& in);
// Reads a metrics JSON-lines file; throws Error naming the file and line on malformed input.
ReportInput read_metrics(const std::string& path);

}  // namespace rectifier
