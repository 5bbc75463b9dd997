// Losses over a batch of outputs (n, k) and integer labels. Each returns the mean loss and, when asked, the gradient
// of that mean with respect to the outputs.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rectifier {

enum class LossKind {
  cross_entropy,  // softmax + negative log-likelihood, fused and stable (log-sum-exp)
  mse,            // mean squared error against one-hot labels, averaged over n*k (PyTorch's MSELoss)
  bce,            // binary cross-entropy on a sigmoid output: k = 1, labels 0/1, fused with the sigmoid
};

std::optional<LossKind> parse_loss(std::string_view name);
std::string loss_name(LossKind k);

struct LossResult {
  double loss = 0;   // mean over the batch
  int correct = 0;   // examples whose prediction equals the label
};

// out: (n, k), labels: (n), dout: (n, k) or null.
template <class T>
LossResult loss_forward_backward(LossKind kind, const T* out, const int32_t* labels, int n, int k, T* dout);

// The predicted class of one row of outputs.
template <class T> int predict_class(LossKind kind, const T* row, int k);

}  // namespace rectifier
