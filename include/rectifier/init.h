// Weight initialisers. Fan-in and fan-out count the receptive field for convolutions, as PyTorch does.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include "rectifier/rng.h"

namespace rectifier {

enum class InitScheme {
  he_normal,       // N(0, 2/fan_in)             Kaiming normal, the default for the ReLU family
  he_uniform,      // U(+-sqrt(6/fan_in))
  xavier_normal,   // N(0, 2/(fan_in+fan_out))   Glorot
  xavier_uniform,  // U(+-sqrt(6/(fan_in+fan_out)))
  lecun_normal,    // N(0, 1/fan_in)             the init SELU expects
  lecun_uniform,   // U(+-sqrt(3/fan_in))
  torch_default,   // PyTorch's nn.Linear/Conv2d default: U(+-1/sqrt(fan_in)) for weights and biases
};

struct InitSpec {
  InitScheme scheme = InitScheme::he_normal;
  double gain = 1.0;            // multiplies the standard deviation (or bound): gain > 1 provokes exploding signals
  std::optional<double> bias;   // constant bias; unset = 0 (or the torch_default draw)
};

std::optional<InitScheme> parse_init(std::string_view name);
std::string init_name(InitScheme s);
// Fills w[0..n) for a weight with the given fans.
template <class T> void init_weights(const InitSpec& spec, int fan_in, int fan_out, T* w, size_t n, Rng& rng);
template <class T> void init_bias(const InitSpec& spec, int fan_in, T* b, size_t n, Rng& rng);

}  // namespace rectifier
