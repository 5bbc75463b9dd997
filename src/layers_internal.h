// Shared helpers for the layer implementations.
#pragma once
#include <string>
#include "rectifier/error.h"
#include "rectifier/layers.h"

namespace rectifier::detail {

// "dense(256)": input [1, 28, 28] ... : the start of every shape error a layer throws.
inline std::string layer_name(const LayerSpec& s) { return layer_text(s); }

[[noreturn]] inline void shape_error(const LayerSpec& s, const Shape& in, const std::string& why) {
  throw Error(layer_name(s) + ": input shape " + shape_str(in) + " " + why);
}

inline std::string fmt_num(double v) {
  std::string t = std::to_string(v);
  while (t.size() > 1 && t.back() == '0') t.pop_back();
  if (!t.empty() && t.back() == '.') t.pop_back();
  return t;
}

}  // namespace rectifier::detail
