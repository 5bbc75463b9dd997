#include "rectifier/activation.h"

#include <charconv>
#include <string>

namespace rectifier {

namespace {
struct Entry {
  const char* name;
  Act kind;
  double param;  // default parameter
};
// Canonical names first; aliases after.
constexpr Entry kEntries[] = {
    {"relu", Act::relu, 0},   {"leaky_relu", Act::leaky_relu, 0.01}, {"elu", Act::elu, 1.0},
    {"selu", Act::selu, 0},   {"gelu", Act::gelu, 0},                {"silu", Act::silu, 0},
    {"relu6", Act::relu6, 0}, {"softplus", Act::softplus, 1.0},      {"mish", Act::mish, 0},
    {"sigmoid", Act::sigmoid, 0}, {"tanh", Act::tanh, 0},            {"identity", Act::identity, 0},
};
constexpr Entry kAliases[] = {{"swish", Act::silu, 0}, {"leaky", Act::leaky_relu, 0.01},
                              {"leakyrelu", Act::leaky_relu, 0.01}, {"linear", Act::identity, 0}};
constexpr int kCanonical = sizeof(kEntries) / sizeof(kEntries[0]);

const Entry* find(std::string_view name) {
  for (const auto& e : kEntries)
    if (name == e.name) return &e;
  for (const auto& e : kAliases)
    if (name == e.name) return &e;
  return nullptr;
}

std::string fmt(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}
}  // namespace

Activation default_activation(Act kind) {
  for (const auto& e : kEntries)
    if (e.kind == kind) return {kind, e.param};
  return {kind, 0};
}

std::string activation_name(Act kind) {
  for (const auto& e : kEntries)
    if (e.kind == kind) return e.name;
  return "?";
}

const std::vector<std::string>& activation_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (int i = 0; i < kCanonical; ++i) v.push_back(kEntries[i].name);
    return v;
  }();
  return names;
}

std::optional<Activation> parse_activation(std::string_view text) {
  auto open = text.find('(');
  std::string_view name = text.substr(0, open);
  const Entry* e = find(name);
  if (!e) return std::nullopt;
  Activation a{e->kind, e->param};
  if (open == std::string_view::npos) return a;
  if (text.back() != ')') return std::nullopt;
  std::string_view arg = text.substr(open + 1, text.size() - open - 2);
  if (auto eq = arg.find('='); eq != std::string_view::npos) arg = arg.substr(eq + 1);  // "prime0=1", "alpha=0.1"
  double v = 0;
  auto r = std::from_chars(arg.data(), arg.data() + arg.size(), v);
  if (r.ec != std::errc() || r.ptr != arg.data() + arg.size()) return std::nullopt;
  a.param = v;
  return a;
}

std::string activation_spec(const Activation& a) {
  std::string name = activation_name(a.kind);
  if (a.param == default_activation(a.kind).param) return name;
  switch (a.kind) {
    case Act::relu: return name + "(prime0=" + fmt(a.param) + ")";
    case Act::leaky_relu: case Act::elu: case Act::softplus: return name + "(" + fmt(a.param) + ")";
    default: return name;
  }
}

}  // namespace rectifier
