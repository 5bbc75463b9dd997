#include "rectifier/monitor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <omp.h>
#include "kernels/monitor_kernels.h"
#include "kernels/reduce.h"
#include "rectifier/error.h"

namespace rectifier {

using nlohmann::json;

namespace {
constexpr size_t kPiece = size_t(1) << 14;
std::string pct(double f) {
  char b[32];
  std::snprintf(b, sizeof b, "%.0f%%", 100 * f);
  return b;
}
std::string sci(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2g", v);
  return b;
}
}  // namespace

Monitor::Monitor(Model<float>& model, MonitorConfig cfg) : model_(model), cfg_(cfg) {
  if (cfg_.hist_every < 1 || cfg_.hist_bins < 1)
    throw Error("monitor: hist_every and hist_bins must be at least 1 (got " + std::to_string(cfg_.hist_every) + ", " +
                std::to_string(cfg_.hist_bins) + ")");
  for (size_t i = 0; i < model.num_layers(); ++i) {
    const Activation* a = model.layer(i).activation();
    if (!a) continue;
    const Shape& s = model.layer(i).out_shape();
    Watched w;
    w.layer = i;
    w.units = s.size() == 3 ? s[0] : int(numel(s));
    w.spatial = s.size() == 3 ? s[1] * s[2] : 1;
    w.name = activation_spec(*a);
    w.can_die = a->kind == Act::relu || a->kind == Act::relu6;
    w.saturates = a->kind == Act::sigmoid || a->kind == Act::tanh;
    w.active.assign(size_t(w.units), 0);
    w.was_alive.assign(size_t(w.units), 1);
    w.hist.assign(size_t(cfg_.hist_bins), 0);
    watched_.push_back(std::move(w));
  }
  for (size_t i = 0; i < model.num_layers(); ++i) {
    auto& l = model.layer(i);
    for (auto& p : l.params())
      params_.push_back({std::to_string(i) + "." + p.name, p.value, p.grad, p.size(),
                         p.name == "weight" && (l.kind() == LayerKind::dense || l.kind() == LayerKind::conv)});
  }
  auto& pieces = stats_.ranges;
  for (auto& p : params_) {
    p.piece0 = pieces.size();
    const size_t base = size_t(p.value - model.params());
    for (size_t off = 0; off < p.size; off += kPiece) pieces.push_back({base + off, std::min(kPiece, p.size - off)});
    p.pieces = pieces.size() - p.piece0;
  }
  piece_a_.resize(pieces.size());
  piece_b_.resize(pieces.size());
  // The fused path needs the pieces to cover the flat parameters in order.
  size_t next = 0;
  fusable_ = true;
  for (const auto& [offset, size] : pieces) {
    fusable_ = fusable_ && offset == next;
    next = offset + size;
  }
  fusable_ = fusable_ && next == model.num_params();
  hist_counts_.assign(4 * size_t(cfg_.hist_bins), 0);
  watch_of_.assign(model.num_layers(), -1);
  for (size_t k = 0; k < watched_.size(); ++k) watch_of_[watched_[k].layer] = int(k);
  ex_sum_.resize(watched_.size());
  ex_sq_.resize(watched_.size());
  model_.add_observer(this);
}

Monitor::~Monitor() { model_.remove_observer(this); }

void Monitor::begin_epoch() {
  for (auto& w : watched_) {
    std::fill(w.active.begin(), w.active.end(), 0);
    std::fill(w.hist.begin(), w.hist.end(), 0);
    w.zeros = w.count = w.pre_sum = w.pre_sq = w.pre_n = w.saturated = 0;
    w.lo = w.hi = 0;
  }
  for (auto& p : params_) p.norm_sum = p.norm_n = p.ratio_sum = p.ratio_n = 0;
  total_norm_sum_ = total_norm_max_ = 0;
  total_norm_n_ = 0;
  batch_ = 0;
}

namespace {
using kernels::sum_squares;

constexpr size_t kMomentSample = size_t(1) << 16;

size_t count_zeros(const float* y, size_t n) {
  size_t z = 0;
#pragma omp simd reduction(+ : z)
  for (size_t j = 0; j < n; ++j) z += y[j] == 0.0f;
  return z;
}

// Whether any of y[0, n) is non-zero, by blocks of 64 (vectorised inside a block, stopping after the first hit).
bool any_nonzero(const float* y, size_t n) {
  for (size_t j0 = 0; j0 < n; j0 += 64) {
    const size_t j1 = std::min(n, j0 + 64);
    int nz = 0;
#pragma omp simd reduction(| : nz)
    for (size_t j = j0; j < j1; ++j) nz |= y[j] != 0.0f;
    if (nz) return true;
  }
  return false;
}
}  // namespace

// Sized for the batch and the threads, zeroed: allocates only when the batch or the thread count grows.
void Monitor::begin_forward(int n) {
  forward_n_ = n;
  const size_t T = size_t(std::max(omp_get_max_threads(), 1)) + 1;
  if (slots_.size() < T) slots_.resize(T);
  for (Slot& s : slots_) {
    s.active.resize(watched_.size());
    s.zeros.assign(watched_.size(), 0);
    s.saturated.assign(watched_.size(), 0);
    for (size_t k = 0; k < watched_.size(); ++k) s.active[k].assign(size_t(watched_[k].units), 0);
  }
  for (size_t k = 0; k < watched_.size(); ++k) {
    const size_t per = size_t(watched_[k].units) * size_t(watched_[k].spatial);
    const size_t rows = std::min(size_t(n), (kMomentSample + per - 1) / per);  // the examples the sample touches
    ex_sum_[k].assign(rows, 0.0);
    ex_sq_[k].assign(rows, 0.0);
  }
}

// Examples [i0, i1) of a watched layer's output are done: called from the thread that made them. Each thread adds
// into its own slot; the per-example sums land at their example's index, so their total, summed in example order
// by after_forward, does not depend on how the examples were shared.
void Monitor::rows_done(size_t layer, int i0, int i1, const float* x, const float* y) {
  if (layer >= watch_of_.size() || watch_of_[layer] < 0) return;
  const size_t w = size_t(watch_of_[layer]);
  const size_t per = size_t(watched_[w].units) * size_t(watched_[w].spatial);
  if (!omp_in_parallel() && size_t(i1 - i0) * per > 16384) {  // after a layer's own forward: split it here
    const int T = std::min(omp_get_max_threads(), int(slots_.size()) - 1);
#pragma omp parallel num_threads(T)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int a = i0 + int(long(i1 - i0) * t / nt), b = i0 + int(long(i1 - i0) * (t + 1) / nt);
      if (b > a) observe(w, slots_[size_t(t)], a, b, x + size_t(a - i0) * per, y + size_t(a - i0) * per);
    }
    return;
  }
  const size_t t = size_t(omp_get_thread_num());
  if (t + 1 < slots_.size()) {
    observe(w, slots_[t], i0, i1, x, y);
    return;
  }
#pragma omp critical(rectifier_monitor_slot)
  observe(w, slots_.back(), i0, i1, x, y);
}

void Monitor::observe(size_t wi, Slot& slot, int i0, int i1, const float* x0, const float* y0) {
  const Watched& w = watched_[wi];
  const size_t U = size_t(w.units), P = size_t(w.spatial), per = U * P;
  int32_t* act = slot.active[wi].data();
  // Dense units: every value counted. Conv channels: a channel already seen active (this epoch, or by this thread
  // in this batch) is not looked at again; the others are scanned up to their first non-zero output (a dead
  // channel is scanned whole: dead units see every value), and sparsity counts the batch's first kMomentSample
  // values (whole examples, and the batch is shuffled).
  size_t lo = size_t(i0) * per, hi = size_t(i1) * per;
  if (P == 1) {
    size_t z = 0;
    for (int i = i0; i < i1; ++i) z += kernels::mark_active(y0 + size_t(i - i0) * per, U, act);
    slot.zeros[wi] += z;
  } else {
    for (int i = i0; i < i1; ++i)
      for (size_t u = 0; u < U; ++u)
        if (!w.active[u] && !act[u]) act[u] = any_nonzero(y0 + size_t(i - i0) * per + u * P, P);
    hi = std::min(hi, kMomentSample);
    if (hi > lo) slot.zeros[wi] += count_zeros(y0, hi - lo);
  }
  if (w.saturates && hi > lo) {
    const bool sig = w.name == "sigmoid";
    size_t sat = 0;
#pragma omp simd reduction(+ : sat)
    for (size_t j = 0; j < hi - lo; ++j) sat += sig ? (y0[j] < 0.01f || y0[j] > 0.99f) : (y0[j] < -0.99f || y0[j] > 0.99f);
    slot.saturated[wi] += sat;
  }
  // Pre-activation moments of the batch's first values, at most kMomentSample (a random sample: the batch is
  // shuffled), per example.
  const int rows = int(ex_sum_[wi].size());
  for (int i = i0; i < std::min(i1, rows); ++i) {
    const size_t a = size_t(i) * per, b = std::min(a + per, kMomentSample);
    kernels::moments(x0 + (a - size_t(i0) * per), b - a, ex_sum_[wi][size_t(i)], ex_sq_[wi][size_t(i)]);
  }
}

void Monitor::after_forward(int n) {
  if (n != forward_n_) throw Error("Monitor::after_forward(" + std::to_string(n) + ") after a forward pass of " +
                                   std::to_string(forward_n_) + " examples");
  const bool hist = batch_ % cfg_.hist_every == 0;
  last_n_ = n;
  ++batch_;
  for (size_t wi = 0; wi < watched_.size(); ++wi) {
    Watched& w = watched_[wi];
    const float* x = model_.layer_input(w.layer);
    const size_t U = size_t(w.units), P = size_t(w.spatial), total = U * P * size_t(n);
    const size_t counted = P == 1 ? total : std::min(total, kMomentSample);
    size_t zeros = 0, sat = 0;
    for (Slot& s : slots_) {
      zeros += s.zeros[wi];
      sat += s.saturated[wi];
      const int32_t* a = s.active[wi].data();
      for (size_t u = 0; u < U; ++u) w.active[u] |= a[u] != 0;
    }
    const size_t sampled = std::min(total, kMomentSample);
    double s = 0, ss = 0;
    for (size_t i = 0; i < ex_sum_[wi].size(); ++i) s += ex_sum_[wi][i], ss += ex_sq_[wi][i];
    w.zeros += double(zeros);
    w.count += double(counted);
    w.saturated += double(sat);
    w.pre_sum += s;
    w.pre_sq += ss;
    w.pre_n += double(sampled);
    if (hist && std::isfinite(ss)) {
      if (w.lo == w.hi) {  // the epoch's first histogram batch fixes the range: mean +- 4 std
        const double m = s / double(sampled), sd = std::sqrt(std::max(ss / double(sampled) - m * m, 0.0));
        w.lo = m - 4 * sd - 1e-6;
        w.hi = m + 4 * sd + 1e-6;
      }
      // The batch is shuffled, so its first examples are a random sample: at most 16K values per histogram batch
      // (over an epoch of the reference nets, 60 batches: a million values), binned in float into int counts.
      const size_t m = std::min(total, size_t(1) << 14);
      const float lo = float(w.lo), scale = float(double(cfg_.hist_bins) / (w.hi - w.lo)), top = float(cfg_.hist_bins - 1);
      int32_t* counts = hist_counts_.data();  // four tables (kernels::histogram)
      const size_t bins = size_t(cfg_.hist_bins);
      kernels::histogram(x, m, lo, scale, top, cfg_.hist_bins, counts);
      for (size_t b = 0; b < bins; ++b) {
        w.hist[b] += counts[b] + counts[bins + b] + counts[2 * bins + b] + counts[3 * bins + b];
        counts[b] = counts[bins + b] = counts[2 * bins + b] = counts[3 * bins + b] = 0;
      }
    }
  }
}

std::optional<std::string> Monitor::find_nonfinite_activation() const {
  for (size_t i = 0; i < model_.num_layers(); ++i) {
    const size_t n = numel(model_.layer(i).out_shape());
    const float* y = model_.layer_output(i);
    if (!y) continue;  // not kept (Model::set_keep_outputs): the trainer runs the batch again keeping them all
    const size_t rows = size_t(last_n_);  // the buffers hold more rows than the last batch filled
    for (size_t j = 0; j < n * rows; ++j)
      if (!std::isfinite(y[j]))
        return "the output of layer " + std::to_string(i) + " (" + layer_text(model_.layer(i).spec()) + ") is " +
               (std::isnan(y[j]) ? "NaN" : "infinite") + " at example " + std::to_string(j / n) + ", element " +
               std::to_string(j % n);
  }
  return std::nullopt;
}

template <class F>
void Monitor::each_piece(F&& f) {
  const auto& pieces = stats_.ranges;
  const long np = long(pieces.size());
#pragma omp parallel for schedule(dynamic, 1) if (model_.num_params() > 65536)
  for (long k = 0; k < np; ++k) f(size_t(k), pieces[size_t(k)].first, pieces[size_t(k)].second);
}

double Monitor::sum_pieces(const ParamStat& p, const double* v) const {
  double sum = 0;
  for (size_t k = p.piece0; k < p.piece0 + p.pieces; ++k) sum += v[k];
  return sum;
}

std::optional<std::string> Monitor::after_backward() {
  ++step_;
  // Sum of squares of every gradient piece, in one parallel loop.
  const float* grads = model_.grads();
  each_piece([&](size_t k, size_t off, size_t size) { piece_a_[k] = sum_squares(grads + off, size); });
  return account_gradients(piece_a_.data(), nullptr);
}

StepStats* Monitor::prepare_step() {
  if (!fusable_) return nullptr;
  ++step_;
  stats_.ratio = wants_update_ratio();
  return &stats_;
}

std::optional<std::string> Monitor::after_fused_step() {
  auto bad = account_gradients(stats_.grad_ss.data(), &stats_);
  if (stats_.ratio) account_ratios(stats_.update_ss.data(), stats_.weight_ss.data());
  return bad;
}

std::optional<std::string> Monitor::account_gradients(const double* piece_ss, const StepStats* fused) {
  double total = 0;
  std::optional<std::string> bad;
  const float* grads = model_.grads();
  for (auto& p : params_) {
    const double ss = sum_pieces(p, piece_ss);
    const double norm = std::sqrt(ss);
    if (!std::isfinite(norm) && !bad) {
      // The first non-finite element: from the fused pass (the gradient is cleared by now), or looked up.
      const size_t base = size_t(p.grad - grads);
      size_t at = p.size;
      bool nan = false;
      if (fused) {
        for (size_t k = p.piece0; k < p.piece0 + p.pieces && at == p.size; ++k)
          if (fused->first_bad[k] != SIZE_MAX) at = fused->first_bad[k] - base, nan = fused->first_bad_nan[k];
      } else {
        at = 0;
        while (at < p.size && std::isfinite(p.grad[at])) ++at;
        nan = at < p.size && std::isnan(p.grad[at]);
      }
      bad = "the gradient of tensor '" + p.name + "' is " + (nan ? "NaN" : "infinite") +
            (at < p.size ? " at element " + std::to_string(at) : " (its norm overflows)");
    }
    p.norm_sum += norm;
    ++p.norm_n;
    total += ss;
  }
  total = std::sqrt(total);
  total_norm_sum_ += total;
  total_norm_max_ = std::max(total_norm_max_, total);
  ++total_norm_n_;
  return bad;
}

// Steps 1, 1 + N, 1 + 2N, ... (every step when N is 1)
bool Monitor::wants_update_ratio() const { return step_ > 0 && (step_ - 1) % std::max(cfg_.update_every, 1) == 0; }

void Monitor::before_step() {
  if (!wants_update_ratio()) return;
  before_.resize(model_.num_params());
  const float* base = model_.params();
  each_piece([&](size_t, size_t off, size_t size) { std::memcpy(before_.data() + off, base + off, sizeof(float) * size); });
}

void Monitor::after_step() {
  if (!wants_update_ratio()) return;
  const float* base = model_.params();
  each_piece([&](size_t k, size_t off, size_t size) {
    const float* now = base + off;
    const float* was = before_.data() + off;
    double du = 0, w = 0;
    kernels::add_update_sums(now, was, size, du, w);
    piece_a_[k] = du;
    piece_b_[k] = w;
  });
  account_ratios(piece_a_.data(), piece_b_.data());
}

void Monitor::account_ratios(const double* update_ss, const double* weight_ss) {
  for (auto& p : params_) {
    const double du = sum_pieces(p, update_ss), w = sum_pieces(p, weight_ss);
    if (w > 0) { p.ratio_sum += std::sqrt(du / w); ++p.ratio_n; }
  }
}

json Monitor::end_epoch() {
  json out;
  json layers = json::array(), params = json::array(), warns = json::array();
  std::vector<Warning> found;
  for (auto& w : watched_) {
    size_t alive = 0, revived = 0;
    for (size_t u = 0; u < w.active.size(); ++u) {
      alive += w.active[u];
      revived += w.have_prev && !w.was_alive[u] && w.active[u];
    }
    const double dead = w.active.empty() ? 0 : 1.0 - double(alive) / double(w.active.size());
    const double mean = w.pre_n > 0 ? w.pre_sum / w.pre_n : 0;
    const double sd = w.pre_n > 0 ? std::sqrt(std::max(w.pre_sq / w.pre_n - mean * mean, 0.0)) : 0;
    json l = {{"layer", w.layer}, {"activation", w.name}, {"units", w.units},
              {"dead_fraction", dead}, {"revived_fraction", double(revived) / double(std::max<size_t>(w.active.size(), 1))},
              {"sparsity", w.count > 0 ? w.zeros / w.count : 0}, {"pre_mean", mean}, {"pre_std", sd},
              {"hist", {{"lo", w.lo}, {"hi", w.hi}, {"counts", w.hist}}}};
    if (w.saturates) l["saturated_fraction"] = w.count > 0 ? w.saturated / w.count : 0;
    layers.push_back(l);
    if (w.can_die && (dead > cfg_.dead_warn || (w.have_prev && dead - w.prev_dead > cfg_.dead_rise && dead > cfg_.dead_rise))) {
      std::string msg = "dying ReLU: layer " + std::to_string(w.layer) + " (" + w.name + ") has " + pct(dead) +
                        " dead units (zero on every training example this epoch)" +
                        (w.have_prev ? ", " + pct(w.prev_dead) + " the epoch before" : "") +
                        ". Likely cause: a learning rate too high or a large negative bias. Remedies: lower the learning "
                        "rate, use He init, a non-negative bias init (--bias-init 0), leaky ReLU (--act leaky_relu), "
                        "or gradient clipping (--clip-norm 1).";
      found.push_back({"dying_relu", int(w.layer), msg});
    }
    w.was_alive = w.active;
    w.have_prev = true;
    w.prev_dead = dead;
  }
  const ParamStat* first = nullptr;
  const ParamStat* last = nullptr;
  for (auto& p : params_) {
    const double mean = p.norm_n ? p.norm_sum / double(p.norm_n) : 0;
    json j = {{"name", p.name}, {"grad_norm", mean}};
    if (p.ratio_n) j["update_ratio"] = p.ratio_sum / double(p.ratio_n);
    params.push_back(j);
    if (p.is_weight) {
      if (!first) first = &p;
      last = &p;
    }
  }
  if (first && last && first != last) {
    const double f = first->norm_n ? first->norm_sum / double(first->norm_n) : 0;
    const double l = last->norm_n ? last->norm_sum / double(last->norm_n) : 0;
    if (l > 0 && f * cfg_.vanish_ratio <= l)
      found.push_back({"vanishing_gradient", -1,
                       "vanishing gradients: the first layer's weight gradient norm (" + first->name + ": " + sci(f) +
                           ") is " + sci(l / std::max(f, 1e-300)) + " times below the last layer's (" + last->name + ": " +
                           sci(l) + "). Likely cause: saturating activations (sigmoid, tanh) or too small an init in a "
                           "deep net. Remedies: ReLU with He init (--act relu --init he), batch norm, fewer layers."});
  }
  const double total_mean = total_norm_n_ ? total_norm_sum_ / double(total_norm_n_) : 0;
  if (!std::isfinite(total_mean) || (prev_total_mean_ > 0 && total_mean > cfg_.explode_growth * prev_total_mean_))
    found.push_back({"exploding_gradient", -1,
                     "exploding gradients: the mean gradient norm grew from " + sci(prev_total_mean_) + " to " +
                         sci(total_mean) + " in one epoch (largest step: " + sci(total_norm_max_) +
                         "). Likely cause: a learning rate too high or an init gain too large. Remedies: gradient "
                         "clipping (--clip-norm 1), a lower learning rate, He init with gain 1."});
  prev_total_mean_ = total_mean;
  for (const auto& w : found) warns.push_back({{"kind", w.kind}, {"layer", w.layer}, {"message", w.message}});
  warnings_ = found;
  out["layers"] = layers;
  out["params"] = params;
  out["grad_norm"] = total_mean;
  out["grad_norm_max"] = total_norm_max_;
  out["warnings"] = warns;
  return out;
}

std::vector<Warning> Monitor::warnings_from_json(const json& d) {
  std::vector<Warning> out;
  if (!d.is_object() || !d.contains("warnings")) return out;
  for (const auto& w : d["warnings"]) out.push_back({w.value("kind", ""), w.value("layer", -1), w.value("message", "")});
  return out;
}

}  // namespace rectifier
