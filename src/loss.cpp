#include "rectifier/loss.h"

#include <algorithm>
#include <cmath>

namespace rectifier {

std::optional<LossKind> parse_loss(std::string_view name) {
  if (name == "cross_entropy" || name == "ce" || name == "softmax") return LossKind::cross_entropy;
  if (name == "mse") return LossKind::mse;
  if (name == "bce") return LossKind::bce;
  return std::nullopt;
}

std::string loss_name(LossKind k) {
  switch (k) {
    case LossKind::cross_entropy: return "cross_entropy";
    case LossKind::mse: return "mse";
    case LossKind::bce: return "bce";
  }
  return "?";
}

template <class T>
int predict_class(LossKind kind, const T* row, int k) {
  if (kind == LossKind::bce) return row[0] > T(0) ? 1 : 0;
  int best = 0;
  for (int j = 1; j < k; ++j)
    if (row[j] > row[best]) best = j;
  return best;
}

namespace {

// One example's loss (and dz, when not null: the gradient of the batch mean, so scaled by 1/n).
template <class T>
double example_loss(LossKind kind, const T* z, int y, int n, int k, T* dz) {
  double loss = 0;
  switch (kind) {
    case LossKind::cross_entropy: {
      // loss = logsumexp(z) - z[y]; dz = (softmax(z) - onehot(y)) / n. One exp per logit, in T (expf for float:
      // two double exps per logit were 3% of an MLP step), kept in dz until the sum is known; sums in double.
      T mx = z[0];
      for (int j = 1; j < k; ++j) mx = std::max(mx, z[j]);
      double s = 0;
      for (int j = 0; j < k; ++j) {
        const T e = std::exp(z[j] - mx);
        s += double(e);
        if (dz) dz[j] = e;
      }
      loss += double(mx) + std::log(s) - double(z[y]);
      if (dz) {
        const T scale = T(1 / (s * n)), hit = T(1.0 / n);
        for (int j = 0; j < k; ++j) dz[j] = dz[j] * scale - (j == y ? hit : T(0));
      }
      break;
    }
    case LossKind::mse: {
      for (int j = 0; j < k; ++j) {
        const double d = double(z[j]) - (j == y);
        loss += d * d / k;
        if (dz) dz[j] = T(2 * d / (double(n) * k));
      }
      break;
    }
    case LossKind::bce: {
      // stable: max(z,0) - z*y + log(1 + exp(-|z|)); d/dz = sigmoid(z) - y
      const double x = z[0];
      loss += std::max(x, 0.0) - x * y + std::log1p(std::exp(-std::abs(x)));
      if (dz) dz[0] = T((1 / (1 + std::exp(-x)) - y) / n);
      break;
    }
  }
  return loss;
}

}  // namespace

template <class T>
LossResult loss_forward_backward(LossKind kind, const T* out, const int32_t* labels, int n, int k, T* dout) {
  // Examples in chunks: each chunk's losses over the threads (one example per index, no shared state), then summed
  // in example order, so the loss's bits do not depend on the thread count. A batch's loss was a serial pass while
  // the other core waited (15 us of a 1.2 ms MLP step).
  constexpr int kChunk = 256;
  double losses[kChunk];
  LossResult r;
  double total = 0;
  for (int c0 = 0; c0 < n; c0 += kChunk) {
    const int c1 = std::min(n, c0 + kChunk);
    int correct = 0;
#pragma omp parallel for schedule(static) reduction(+ : correct) if ((c1 - c0) * k >= 640)
    for (int i = c0; i < c1; ++i) {
      const T* z = out + size_t(i) * k;
      correct += predict_class(kind, z, k) == labels[i];
      losses[i - c0] = example_loss(kind, z, labels[i], n, k, dout ? dout + size_t(i) * k : nullptr);
    }
    r.correct += correct;
    for (int i = c0; i < c1; ++i) total += losses[i - c0];
  }
  r.loss = n ? total / n : 0;
  return r;
}

template LossResult loss_forward_backward<float>(LossKind, const float*, const int32_t*, int, int, float*);
template LossResult loss_forward_backward<double>(LossKind, const double*, const int32_t*, int, int, double*);
template int predict_class<float>(LossKind, const float*, int);
template int predict_class<double>(LossKind, const double*, int);

}  // namespace rectifier
