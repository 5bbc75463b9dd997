#include "rectifier/arch.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <map>
#include "kernels/conv_kernels.h"
#include "rectifier/error.h"

namespace rectifier {

namespace {

std::string num(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

struct Arg {
  std::string key;  // empty for positional
  double value = 0;
  size_t pos = 0;
};

class Parser {
 public:
  explicit Parser(const std::string& text) : s_(text) {}

  std::vector<LayerSpec> parse() {
    std::vector<LayerSpec> out;
    skip_separators();
    if (i_ == s_.size()) fail(i_, "a layer", "the end of the text");
    while (i_ < s_.size()) {
      out.push_back(layer());
      size_t before = i_;
      skip_separators();
      if (i_ < s_.size() && i_ == before) fail(i_, "a space between layers", quote(i_));
    }
    return out;
  }

 private:
  [[noreturn]] void fail(size_t pos, const std::string& expected, const std::string& found) const {
    throw Error("architecture '" + s_ + "': at position " + std::to_string(pos + 1) + ": expected " + expected +
                ", found " + found);
  }
  std::string quote(size_t pos) const {
    if (pos >= s_.size()) return "the end of the text";
    size_t e = pos;
    while (e < s_.size() && !std::isspace(static_cast<unsigned char>(s_[e])) && e - pos < 12) ++e;
    return "'" + s_.substr(pos, std::max<size_t>(e - pos, 1)) + "'";
  }
  void skip_separators() {
    while (i_ < s_.size() && (std::isspace(static_cast<unsigned char>(s_[i_])) || s_[i_] == ',')) ++i_;
  }
  void skip_spaces() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  std::string name() {
    size_t b = i_;
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_')) ++i_;
    std::string n = s_.substr(b, i_ - b);
    for (auto& c : n) c = char(std::tolower(static_cast<unsigned char>(c)));
    return n;
  }
  std::vector<Arg> args(const std::string& layer) {
    std::vector<Arg> out;
    if (i_ >= s_.size() || s_[i_] != '(') return out;
    ++i_;
    skip_spaces();
    if (i_ < s_.size() && s_[i_] == ')') { ++i_; return out; }
    while (true) {
      skip_spaces();
      Arg a;
      a.pos = i_;
      if (i_ < s_.size() && std::isalpha(static_cast<unsigned char>(s_[i_]))) {
        a.key = name();
        skip_spaces();
        if (i_ >= s_.size() || s_[i_] != '=') fail(i_, "'=' after '" + a.key + "' in " + layer + "(...)", quote(i_));
        ++i_;
        skip_spaces();
      }
      const char* b = s_.data() + i_;
      auto r = std::from_chars(b, s_.data() + s_.size(), a.value);
      if (r.ec != std::errc() || r.ptr == b) fail(i_, "a number in " + layer + "(...)", quote(i_));
      i_ += size_t(r.ptr - b);
      out.push_back(a);
      skip_spaces();
      if (i_ < s_.size() && s_[i_] == ',') { ++i_; continue; }
      if (i_ < s_.size() && s_[i_] == ')') { ++i_; return out; }
      fail(i_, "',' or ')' in " + layer + "(...)", quote(i_));
    }
  }

  // Binds positional and keyword args to named slots; checks counts and integer-ness.
  std::map<std::string, Arg> bind(const std::string& layer, const std::vector<Arg>& given,
                                  const std::vector<std::string>& slots, size_t required, size_t at) {
    std::map<std::string, Arg> out;
    size_t positional = 0;
    for (const auto& a : given) {
      std::string key = a.key;
      if (key.empty()) {
        if (positional >= slots.size())
          fail(a.pos, "at most " + std::to_string(slots.size()) + " arguments to " + layer, "another");
        key = slots[positional++];
      } else {
        bool known = false;
        for (const auto& s : slots) known |= s == key;
        if (!known) {
          std::string list;
          for (const auto& s : slots) list += (list.empty() ? "" : ", ") + s;
          fail(a.pos, "one of " + list + " in " + layer + "(...)", "'" + key + "'");
        }
      }
      if (out.count(key)) fail(a.pos, key + " given once", "it twice");
      out[key] = a;
    }
    for (size_t k = 0; k < required; ++k)
      if (!out.count(slots[k])) fail(at, layer + "(...) with " + slots[k], given.empty() ? "no arguments" : "too few");
    return out;
  }
  int integer(const Arg& a, const std::string& what, int min) {
    if (a.value != std::floor(a.value) || a.value < min || a.value > 1e7)
      fail(a.pos, what + " as a whole number >= " + std::to_string(min), num(a.value));
    return int(a.value);
  }

  LayerSpec layer() {
    LayerSpec l;
    l.pos = i_;
    if (!std::isalpha(static_cast<unsigned char>(s_[i_]))) fail(i_, "a layer name", quote(i_));
    std::string n = name();
    size_t args_pos = i_;
    auto given = args(n);
    auto no_args = [&] { if (!given.empty()) fail(args_pos, n + " without arguments", "'('"); };
    if (n == "dense" || n == "linear") {
      auto a = bind(n, given, {"units"}, 1, args_pos);
      l.kind = LayerKind::dense;
      l.units = integer(a["units"], "units", 1);
    } else if (n == "conv" || n == "conv2d") {
      auto a = bind(n, given, {"out", "kernel", "stride", "pad"}, 2, args_pos);
      l.kind = LayerKind::conv;
      l.units = integer(a["out"], "output channels", 1);
      l.kernel = integer(a["kernel"], "kernel size", 1);
      l.stride = a.count("stride") ? integer(a["stride"], "stride", 1) : 1;
      l.pad = a.count("pad") ? integer(a["pad"], "padding", 0) : 0;
    } else if (n == "maxpool" || n == "avgpool") {
      auto a = bind(n, given, {"kernel", "stride"}, 1, args_pos);
      l.kind = n == "maxpool" ? LayerKind::maxpool : LayerKind::avgpool;
      l.kernel = integer(a["kernel"], "kernel size", 1);
      if (l.kind == LayerKind::maxpool && l.kernel > kernels::kMaxPoolWindow)
        fail(a["kernel"].pos, "a max-pooling window of at most " + std::to_string(kernels::kMaxPoolWindow),
             num(a["kernel"].value));
      l.stride = a.count("stride") ? integer(a["stride"], "stride", 1) : l.kernel;
    } else if (n == "dropout") {
      auto a = bind(n, given, {"p"}, 1, args_pos);
      l.kind = LayerKind::dropout;
      l.p = a["p"].value;
      if (!(l.p >= 0 && l.p < 1)) fail(a["p"].pos, "a dropout probability in [0, 1)", num(l.p));
    } else if (n == "gap") { no_args(); l.kind = LayerKind::gap; }
    else if (n == "flatten") { no_args(); l.kind = LayerKind::flatten; }
    else if (n == "batchnorm" || n == "bn") { no_args(); l.kind = LayerKind::batchnorm; }
    else if (n == "prelu") { no_args(); l.kind = LayerKind::prelu; }
    else if (auto act = parse_activation(n)) {
      l.kind = LayerKind::activation;
      l.act = *act;
      std::vector<std::string> slot = {"param"};
      if (act->kind == Act::relu) slot = {"prime0"};
      else if (act->kind == Act::leaky_relu || act->kind == Act::elu) slot = {"alpha"};
      else if (act->kind == Act::softplus) slot = {"beta"};
      else if (!given.empty()) fail(args_pos, n + " without arguments", "'('");
      auto a = bind(n, given, slot, 0, args_pos);
      if (a.count(slot[0])) l.act.param = a[slot[0]].value;
    } else {
      std::string names = "dense, conv, maxpool, avgpool, gap, flatten, dropout, batchnorm, prelu";
      for (const auto& an : activation_names()) names += ", " + an;
      fail(l.pos, "a layer (" + names + ")", "'" + n + "'");
    }
    return l;
  }

  const std::string& s_;
  size_t i_ = 0;
};

bool is_widths(const std::string& t) {
  if (t.empty() || !std::isdigit(static_cast<unsigned char>(t[0]))) return false;
  for (char c : t)
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != '-') return false;
  return t.find('-') != std::string::npos;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\n"), e = s.find_last_not_of(" \t\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::vector<LayerSpec> widths(const std::string& t, const ArchContext& ctx) {
  std::vector<int> w;
  size_t pos = 0;
  std::vector<size_t> at;
  while (pos <= t.size()) {
    size_t dash = t.find('-', pos);
    std::string part = t.substr(pos, dash == std::string::npos ? std::string::npos : dash - pos);
    if (part.empty())
      throw Error("architecture '" + t + "': at position " + std::to_string(pos + 1) + ": expected a width, found " +
                  (pos >= t.size() ? "the end of the text" : "'-'"));
    long v = std::stol(part);
    if (v < 1 || v > 10000000)
      throw Error("architecture '" + t + "': at position " + std::to_string(pos + 1) + ": expected a width >= 1, found " + part);
    w.push_back(int(v));
    at.push_back(pos);
    if (dash == std::string::npos) break;
    pos = dash + 1;
  }
  if (!ctx.input.empty() && size_t(w[0]) != numel(ctx.input))
    throw Error("architecture '" + t + "': input width " + std::to_string(w[0]) + " does not match the data's " +
                std::to_string(numel(ctx.input)) + " inputs per example (shape " + shape_str(ctx.input) + ")");
  std::vector<LayerSpec> out;
  for (size_t k = 1; k < w.size(); ++k) {
    LayerSpec d;
    d.kind = LayerKind::dense;
    d.units = w[k];
    d.pos = at[k];
    out.push_back(d);
    if (k + 1 < w.size()) {
      LayerSpec a;
      a.kind = LayerKind::activation;
      a.act = ctx.act;
      a.pos = at[k];
      out.push_back(a);
      if (ctx.dropout > 0) {
        LayerSpec dr;
        dr.kind = LayerKind::dropout;
        dr.p = ctx.dropout;
        dr.pos = at[k];
        out.push_back(dr);
      }
    }
  }
  return out;
}

std::string preset_text(const std::string& name, const ArchContext& ctx) {
  const std::string a = activation_spec(ctx.act), c = std::to_string(ctx.classes);
  const std::string drop = ctx.dropout > 0 ? " dropout(" + num(ctx.dropout) + ")" : "";
  if (name == "mlp") {
    bool image = ctx.input.size() == 3;
    std::string in = std::to_string(numel(ctx.input));
    return image ? in + "-256-128-" + c : in + "-64-64-" + c;
  }
  if (ctx.input.size() != 3)
    throw Error("architecture '" + name + "' needs image input [C, H, W]; the data's examples are " + shape_str(ctx.input));
  if (name == "cnn")
    return "conv(16,5,pad=2) " + a + " maxpool(2) conv(32,5,pad=2) " + a + " maxpool(2) flatten dense(128) " + a + drop +
           " dense(" + c + ")";
  // lenet5: LeCun et al. 1998, with max pooling and the chosen activation
  return "conv(6,5,pad=2) " + a + " maxpool(2) conv(16,5) " + a + " maxpool(2) flatten dense(120) " + a + drop +
         " dense(84) " + a + drop + " dense(" + c + ")";
}

}  // namespace

std::vector<std::pair<std::string, std::string>> arch_presets() {
  return {{"mlp", "dense layers IN-256-128-CLASSES for images, IN-64-64-CLASSES otherwise"},
          {"cnn", "conv(16,5,pad=2) act maxpool(2) conv(32,5,pad=2) act maxpool(2) flatten dense(128) act dense(CLASSES)"},
          {"lenet5", "conv(6,5,pad=2) act maxpool(2) conv(16,5) act maxpool(2) flatten dense(120) act dense(84) act dense(CLASSES)"}};
}

std::vector<LayerSpec> parse_arch(const std::string& text, const ArchContext& ctx) {
  std::string t = trim(text);
  for (const auto& [name, _] : arch_presets())
    if (t == name) return parse_arch(preset_text(name, ctx), ctx);
  if (is_widths(t)) return widths(t, ctx);
  return Parser(t).parse();
}

std::string layer_text(const LayerSpec& s) {
  switch (s.kind) {
    case LayerKind::dense: return "dense(" + std::to_string(s.units) + ")";
    case LayerKind::conv: {
      std::string t = "conv(" + std::to_string(s.units) + "," + std::to_string(s.kernel);
      if (s.stride != 1) t += ",stride=" + std::to_string(s.stride);
      if (s.pad != 0) t += ",pad=" + std::to_string(s.pad);
      return t + ")";
    }
    case LayerKind::maxpool: case LayerKind::avgpool: {
      std::string t = std::string(s.kind == LayerKind::maxpool ? "maxpool(" : "avgpool(") + std::to_string(s.kernel);
      if (s.stride != s.kernel) t += ",stride=" + std::to_string(s.stride);
      return t + ")";
    }
    case LayerKind::gap: return "gap";
    case LayerKind::flatten: return "flatten";
    case LayerKind::dropout: return "dropout(" + num(s.p) + ")";
    case LayerKind::batchnorm: return "batchnorm";
    case LayerKind::prelu: return "prelu";
    case LayerKind::activation: return activation_spec(s.act);
  }
  return "?";
}

std::string arch_text(const std::vector<LayerSpec>& layers) {
  std::string t;
  for (const auto& l : layers) t += (t.empty() ? "" : " ") + layer_text(l);
  return t;
}

}  // namespace rectifier
