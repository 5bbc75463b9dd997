// The architecture text: what `--arch` accepts and what the model file stores.
//
//   arch   := preset | widths | layer+          layers are separated by spaces (commas between layers also work)
//   widths := INT ('-' INT)+                    e.g. 784-256-128-10: dense layers with --act between them
//   layer  := NAME [ '(' arg (',' arg)* ')' ]   arg := NUMBER | NAME '=' NUMBER
//   preset := mlp | cnn | lenet5                resolved against the data's input shape and class count
//
// Layers: dense(units) (alias linear), conv(out_channels, kernel, stride=1, pad=0), maxpool(kernel, stride=kernel),
// avgpool(kernel, stride=kernel), gap, flatten, dropout(p), batchnorm (alias bn), prelu, and every activation name
// (relu, relu(prime0=1), leaky_relu(0.01), elu(1), selu, gelu, silu, swish, relu6, softplus(1), mish, sigmoid, tanh,
// identity).
#pragma once
#include <string>
#include <vector>
#include "rectifier/activation.h"
#include "rectifier/tensor.h"

namespace rectifier {

enum class LayerKind { dense, conv, maxpool, avgpool, gap, flatten, dropout, batchnorm, prelu, activation };

struct LayerSpec {
  LayerKind kind = LayerKind::dense;
  int units = 0;            // dense: output width; conv: output channels
  int kernel = 0, stride = 0, pad = 0;
  double p = 0;             // dropout probability
  Activation act;           // activation layers
  size_t pos = 0;           // offset of the layer in the text it came from, for error messages
};

// What presets and the widths form need to know.
struct ArchContext {
  Shape input;                 // one example's shape
  int classes = 10;            // output width of the last layer
  Activation act;              // activation between dense layers in the widths form and presets
  double dropout = 0;          // dropout after each hidden activation in the widths form and presets
};

// Throws Error("architecture: at position P (...): expected ..., found ...") on a malformed text.
std::vector<LayerSpec> parse_arch(const std::string& text, const ArchContext& ctx);
// The text of one layer / a whole list, in the grammar above (canonical: parse_arch(arch_text(x)) == x).
std::string layer_text(const LayerSpec& s);
std::string arch_text(const std::vector<LayerSpec>& layers);
// Names of the presets with a one-line description each.
std::vector<std::pair<std::string, std::string>> arch_presets();

}  // namespace rectifier
