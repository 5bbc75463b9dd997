#include "rectifier/optimizer.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include "kernels/optim_kernels.h"

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
void Optimizer<T>::step(T* p, const T* g, double lr, T* backup, StepStats* stats) {
  run<false>(p, const_cast<T*>(g), lr, backup, stats);  // Z = false: g is only read
}

template <class T>
void Optimizer<T>::step_and_clear(T* p, T* g, double lr, T* backup, StepStats* stats) {
  run<true>(p, g, lr, backup, stats);
}

template <class T>
template <bool Z>
void Optimizer<T>::run(T* p, T* g, double lr_d, T* backup, StepStats* stats) {
  ++t_;
  const T lr = T(lr_d), wd = T(cfg_.weight_decay);
  T* m = m_.data();
  T* v = v_.data();
  const long n = long(n_);
  // Split over threads in fixed blocks: the same result for any thread count. f(B, offset, length) with B a
  // std::bool_constant: whether to keep the backup. With stats, fsum(B, offset, length, ratio) does f's update of a
  // block and returns the monitor's sums over it (kernels::BlockSums) in the same pass, leaving g.
  auto each = [&](auto&& f, auto&& fsum) {
    auto run = [&](auto B) {
      if (!stats) {
#pragma omp parallel for schedule(static) if (n > 32768)
        for (long b = 0; b < n; b += 4096) f(B, b, std::min(n, b + 4096) - b);
        return;
      }
      // The monitor's ranges, each a thread's at a time (they differ in size: dynamic), in blocks of 4096 from the
      // range's start, each block's figures taken in its update's pass.
      StepStats& st = *stats;
      const long nr = long(st.ranges.size());
      st.grad_ss.assign(size_t(nr), 0.0);
      st.first_bad.assign(size_t(nr), SIZE_MAX);
      st.first_bad_nan.assign(size_t(nr), 0);
      if (st.ratio) st.update_ss.assign(size_t(nr), 0.0), st.weight_ss.assign(size_t(nr), 0.0);
#pragma omp parallel for schedule(dynamic, 1) if (n > 32768)
      for (long r = 0; r < nr; ++r) {
        const auto [off, size] = st.ranges[size_t(r)];
        double gs = 0, du = 0, w = 0;
        for (size_t b = off; b < off + size; b += 4096) {
          const size_t k = std::min(off + size, b + 4096) - b;
          const kernels::BlockSums sums = fsum(B, long(b), long(k), st.ratio);
          if (!std::isfinite(sums.g2) && st.first_bad[size_t(r)] == SIZE_MAX)
            for (size_t j = b; j < b + k; ++j)
              if (!std::isfinite(g[j])) {
                st.first_bad[size_t(r)] = j;
                st.first_bad_nan[size_t(r)] = std::isnan(g[j]);
                break;
              }
          gs += sums.g2;
          if (Z) std::fill(g + b, g + b + k, T(0));
          du += sums.du, w += sums.w;
        }
        st.grad_ss[size_t(r)] = gs;
        if (st.ratio) st.update_ss[size_t(r)] = du, st.weight_ss[size_t(r)] = w;
      }
    };
    if (backup) run(std::true_type{});
    else run(std::false_type{});
  };
  auto bk = [&](long b) { return backup ? backup + b : nullptr; };
  switch (cfg_.kind) {
    case OptKind::sgd: {
      const T mu = T(cfg_.momentum);
      if (mu == T(0)) {
        each([&](auto B, long b, long k) {
          if constexpr (std::is_same_v<T, float>) kernels::sgd_update(p + b, g + b, bk(b), size_t(k), lr, wd, Z);
          else kernels::sgd_update_ref<B(), Z>(p + b, g + b, bk(b), k, lr, wd);
        }, [&](auto, long b, long k, bool ratio) {
          if constexpr (std::is_same_v<T, float>)
            return kernels::update_with_sums(p + b, g + b, nullptr, bk(b), size_t(k), lr, wd, T(0), T(0), T(1), ratio);
          else
            return kernels::update_with_sums_ref<T>(p + b, g + b, nullptr, bk(b), k, lr, wd, T(0), T(0), T(1), ratio);
        });
        break;
      }
      // PyTorch starts the buffer as the first gradient: the same as mu * 0 + g, the buffer being zero-filled.
      // Nesterov steps along g + mu * m, plain momentum along m: p -= lr * (a * g + c * m), branch-free.
      const T a = cfg_.nesterov ? T(1) : T(0), c = cfg_.nesterov ? mu : T(1);
      each([&](auto B, long b, long k) {
        if constexpr (std::is_same_v<T, float>)
          kernels::momentum_update(p + b, g + b, m + b, bk(b), size_t(k), lr, wd, mu, a, c, Z);
        else
          kernels::momentum_update_ref<B(), Z>(p + b, g + b, m + b, bk(b), k, lr, wd, mu, a, c);
      }, [&](auto, long b, long k, bool ratio) {
        if constexpr (std::is_same_v<T, float>)
          return kernels::update_with_sums(p + b, g + b, m + b, bk(b), size_t(k), lr, wd, mu, a, c, ratio);
        else
          return kernels::update_with_sums_ref<T>(p + b, g + b, m + b, bk(b), k, lr, wd, mu, a, c, ratio);
      });
      break;
    }
    case OptKind::adam: case OptKind::adamw: {
      const T b1 = T(cfg_.beta1), b2 = T(cfg_.beta2), eps = T(cfg_.eps);
      const T c1 = T(1 - std::pow(cfg_.beta1, double(t_))), c2 = T(1 - std::pow(cfg_.beta2, double(t_)));
      const T c2s = std::sqrt(c2);
      const bool decoupled = cfg_.kind == OptKind::adamw;
      each([&](auto B, long b, long k) {
        if constexpr (std::is_same_v<T, float>)
          kernels::adam_update(p + b, g + b, m + b, v + b, bk(b), size_t(k), lr, wd, decoupled, b1, b2, eps, c1, c2s,
                               Z);
        else
          kernels::adam_update_ref<B(), Z>(p + b, g + b, m + b, v + b, bk(b), k, lr, wd, decoupled, b1, b2, eps, c1,
                                           c2s);
      }, [&](auto, long b, long k, bool ratio) {
        if constexpr (std::is_same_v<T, float>)
          return kernels::adam_with_sums(p + b, g + b, m + b, v + b, bk(b), size_t(k), lr, wd, decoupled, b1, b2, eps,
                                         c1, c2s, ratio);
        else
          return kernels::rule_with_sums_ref<T>(p + b, g + b, bk(b), k,
                                                kernels::AdamRule<T>(m + b, v + b, lr, wd, decoupled, b1, b2, eps, c1, c2s),
                                                ratio);
      });
      break;
    }
    case OptKind::rmsprop: {
      const T a = T(cfg_.alpha), eps = T(cfg_.eps), mu = T(cfg_.momentum);
      each([&](auto B, long b, long k) {
        if constexpr (std::is_same_v<T, float>)
          kernels::rmsprop_update(p + b, g + b, m + b, v + b, bk(b), size_t(k), lr, wd, a, eps, mu, Z);
        else
          kernels::rmsprop_update_ref<B(), Z>(p + b, g + b, m + b, v + b, bk(b), k, lr, wd, a, eps, mu);
      }, [&](auto, long b, long k, bool ratio) {
        if constexpr (std::is_same_v<T, float>)
          return kernels::rmsprop_with_sums(p + b, g + b, m + b, v + b, bk(b), size_t(k), lr, wd, a, eps, mu, ratio);
        else
          return kernels::rule_with_sums_ref<T>(p + b, g + b, bk(b), k,
                                                kernels::RmspropRule<T>{m + b, v + b, lr, wd, a, eps, mu}, ratio);
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
