#include "rectifier/optimizer.h"

#include <algorithm>
#include <cmath>

namespace rectifier {

std::optional<OptKind> parse_optimizer(std::string_view name) {
  if (name == "sgd") return OptKind::sgd;
  if (name == "adam") return OptKind::adam;
  if (name == "adamw") return OptKind::adamw;
  if (name == "rmsprop") return OptKind::rmsprop;
  return std::nullopt;
}

std::string optimizer_name(OptKind k) {
  switch (k) {
    case OptKind::sgd: return "sgd";
    case OptKind::adam: return "adam";
    case OptKind::adamw: return "adamw";
    case OptKind::rmsprop: return "rmsprop";
  }
  return "?";
}

std::optional<ScheduleKind> parse_schedule(std::string_view name) {
  if (name == "constant") return ScheduleKind::constant;
  if (name == "step") return ScheduleKind::step;
  if (name == "cosine") return ScheduleKind::cosine;
  return std::nullopt;
}

std::string schedule_name(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::constant: return "constant";
    case ScheduleKind::step: return "step";
    case ScheduleKind::cosine: return "cosine";
  }
  return "?";
}

double Schedule::lr_at(double base, double e, double total) const {
  if (warmup_epochs > 0 && e < warmup_epochs) return base * e / warmup_epochs;
  switch (kind) {
    case ScheduleKind::constant: return base;
    case ScheduleKind::step: return base * std::pow(gamma, std::floor(e / step_epochs));
    case ScheduleKind::cosine: {
      const double span = total - warmup_epochs;
      const double t = span > 0 ? (e - warmup_epochs) / span : 1.0;
      return min_lr + (base - min_lr) * 0.5 * (1 + std::cos(3.141592653589793 * std::min(t, 1.0)));
    }
  }
  return base;
}

template <class T>
Optimizer<T>::Optimizer(const OptimizerConfig& cfg, size_t n) : cfg_(cfg), n_(n) {
  const bool first = cfg.kind != OptKind::sgd || cfg.momentum != 0;
  const bool second = cfg.kind != OptKind::sgd;
  if (first) m_.resize(n);
  if (second) v_.resize(n);
}

template <class T>
void Optimizer<T>::step(T* p, const T* g, double lr_d, T* backup) {
  ++t_;
  const T lr = T(lr_d), wd = T(cfg_.weight_decay);
  T* m = m_.data();
  T* v = v_.data();
  const long n = long(n_);
  // Element-wise updates: split over threads in fixed blocks, the same result for any thread count.
  auto each = [&](auto&& update) {
#pragma omp parallel for schedule(static) if (n > 32768)
    for (long b = 0; b < n; b += 4096) {
      const long e = std::min(n, b + 4096);
      if (backup) std::copy(p + b, p + e, backup + b);
      for (long i = b; i < e; ++i) update(size_t(i));
    }
  };
  switch (cfg_.kind) {
    case OptKind::sgd: {
      const T mu = T(cfg_.momentum);
      if (mu == T(0)) {
        each([&](size_t i) { p[i] -= lr * (g[i] + wd * p[i]); });
        break;
      }
      // PyTorch starts the buffer as the first gradient: the same as mu * 0 + g, the buffer being zero-filled.
      // Nesterov steps along g + mu * m, plain momentum along m: p -= lr * (a * g + c * m), branch-free.
      const T a = cfg_.nesterov ? T(1) : T(0), c = cfg_.nesterov ? mu : T(1);
      each([&](size_t i) {
        const T gi = g[i] + wd * p[i];
        m[i] = mu * m[i] + gi;
        p[i] -= lr * (a * gi + c * m[i]);
      });
      break;
    }
    case OptKind::adam: case OptKind::adamw: {
      const T b1 = T(cfg_.beta1), b2 = T(cfg_.beta2), eps = T(cfg_.eps);
      const T c1 = T(1 - std::pow(cfg_.beta1, double(t_))), c2 = T(1 - std::pow(cfg_.beta2, double(t_)));
      const T c2s = std::sqrt(c2);
      const bool decoupled = cfg_.kind == OptKind::adamw;
      each([&](size_t i) {
        T gi = g[i];
        if (decoupled) p[i] *= T(1) - lr * wd;
        else gi += wd * p[i];
        m[i] = b1 * m[i] + (T(1) - b1) * gi;
        v[i] = b2 * v[i] + (T(1) - b2) * gi * gi;
        // PyTorch: p -= (lr / c1) * m / (sqrt(v) / sqrt(c2) + eps)
        p[i] -= (lr / c1) * m[i] / (std::sqrt(v[i]) / c2s + eps);
      });
      break;
    }
    case OptKind::rmsprop: {
      const T a = T(cfg_.alpha), eps = T(cfg_.eps), mu = T(cfg_.momentum);
      each([&](size_t i) {
        const T gi = g[i] + wd * p[i];
        v[i] = a * v[i] + (T(1) - a) * gi * gi;
        const T step = gi / (std::sqrt(v[i]) + eps);
        if (mu > T(0)) {
          m[i] = mu * m[i] + step;
          p[i] -= lr * m[i];
        } else {
          p[i] -= lr * step;
        }
      });
      break;
    }
  }
}

template <class T>
double clip_grad_norm(T* g, size_t n, double max_norm) {
  double ss = 0;
#pragma omp parallel for simd reduction(+ : ss) schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; ++i) ss += double(g[i]) * g[i];
  const double norm = std::sqrt(ss);
  if (max_norm > 0 && norm > max_norm) {
    const T s = T(max_norm / (norm + 1e-6));  // PyTorch's clip_grad_norm_
    for (size_t i = 0; i < n; ++i) g[i] *= s;
  }
  return norm;
}

template class Optimizer<float>;
template class Optimizer<double>;
template double clip_grad_norm<float>(float*, size_t, double);
template double clip_grad_norm<double>(double*, size_t, double);

}  // namespace rectifier
