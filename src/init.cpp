#include "rectifier/init.h"

#include <cmath>

namespace rectifier {

namespace {
struct Entry { const char* name; InitScheme s; };
constexpr Entry kInits[] = {
    {"he", InitScheme::he_normal},           {"he_normal", InitScheme::he_normal},
    {"kaiming", InitScheme::he_normal},      {"he_uniform", InitScheme::he_uniform},
    {"xavier", InitScheme::xavier_normal},   {"xavier_normal", InitScheme::xavier_normal},
    {"glorot", InitScheme::xavier_normal},   {"xavier_uniform", InitScheme::xavier_uniform},
    {"lecun", InitScheme::lecun_normal},     {"lecun_normal", InitScheme::lecun_normal},
    {"lecun_uniform", InitScheme::lecun_uniform}, {"torch", InitScheme::torch_default},
};
}  // namespace

std::optional<InitScheme> parse_init(std::string_view name) {
  for (const auto& e : kInits)
    if (name == e.name) return e.s;
  return std::nullopt;
}

std::string init_name(InitScheme s) {
  switch (s) {
    case InitScheme::he_normal: return "he_normal";
    case InitScheme::he_uniform: return "he_uniform";
    case InitScheme::xavier_normal: return "xavier_normal";
    case InitScheme::xavier_uniform: return "xavier_uniform";
    case InitScheme::lecun_normal: return "lecun_normal";
    case InitScheme::lecun_uniform: return "lecun_uniform";
    case InitScheme::torch_default: return "torch";
  }
  return "?";
}

template <class T>
void init_weights(const InitSpec& spec, int fan_in, int fan_out, T* w, size_t n, Rng& rng) {
  const double fi = fan_in, fo = fan_out;
  double std = 0, bound = 0;  // one of the two is set
  switch (spec.scheme) {
    case InitScheme::he_normal: std = std::sqrt(2.0 / fi); break;
    case InitScheme::he_uniform: bound = std::sqrt(6.0 / fi); break;
    case InitScheme::xavier_normal: std = std::sqrt(2.0 / (fi + fo)); break;
    case InitScheme::xavier_uniform: bound = std::sqrt(6.0 / (fi + fo)); break;
    case InitScheme::lecun_normal: std = std::sqrt(1.0 / fi); break;
    case InitScheme::lecun_uniform: bound = std::sqrt(3.0 / fi); break;
    case InitScheme::torch_default: bound = 1.0 / std::sqrt(fi); break;
  }
  std *= spec.gain;
  bound *= spec.gain;
  for (size_t i = 0; i < n; ++i) w[i] = T(std > 0 ? std * rng.normal() : rng.uniform(-bound, bound));
}

template <class T>
void init_bias(const InitSpec& spec, int fan_in, T* b, size_t n, Rng& rng) {
  if (!spec.bias && spec.scheme == InitScheme::torch_default) {
    double bound = 1.0 / std::sqrt(double(fan_in));
    for (size_t i = 0; i < n; ++i) b[i] = T(rng.uniform(-bound, bound));
    return;
  }
  for (size_t i = 0; i < n; ++i) b[i] = T(spec.bias.value_or(0.0));
}

template void init_weights<float>(const InitSpec&, int, int, float*, size_t, Rng&);
template void init_weights<double>(const InitSpec&, int, int, double*, size_t, Rng&);
template void init_bias<float>(const InitSpec&, int, float*, size_t, Rng&);
template void init_bias<double>(const InitSpec&, int, double*, size_t, Rng&);

}  // namespace rectifier
