// Dense, activation, PReLU, dropout and flatten layers.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <omp.h>

#include "kernels/gemm.h"
#include "kernels/packed.h"
#include "kernels/parallel.h"
#include "kernels/sparse.h"
#include "layers_internal.h"

namespace rectifier {
using detail::fmt_num;

// y = x W^T + b with W stored [out, in] as nn.Linear. A multi-dimensional input is read flattened.
template <class T>
class Dense final : public Layer<T> {
 public:
  using Layer<T>::Layer;
  Shape build(const Shape& in) override {
    this->in_ = in;
    in_f_ = int(numel(in));
    out_f_ = this->spec_.units;
    this->out_ = {out_f_};
    this->params_ = {{"weight", {out_f_, in_f_}}, {"bias", {out_f_}}};
    return this->out_;
  }
  void init(const InitSpec& s, Rng& rng) override {
    init_weights(s, in_f_, out_f_, this->params_[0].value, this->params_[0].size(), rng);
    init_bias(s, in_f_, this->params_[1].value, size_t(out_f_), rng);
  }
  // x: (n, in)  y: (n, out)
  void forward(const T* x, T* y, int n, bool) override {
    if (n == 1) {  // one example: a matrix-vector product
      const T* W = this->params_[0].value;
      if constexpr (std::is_same_v<T, float>) {
        // frozen: from the panels packed once, visiting only the input's non-zero entries when it is sparse enough
        if (frozen_) kernels::packed_gemv(out_f_, in_f_, x, packed_.data(), y, sparse_input(x, 1));
        else kernels::pgemv(out_f_, in_f_, W, x, y);
      } else {
        kernels::pgemv(out_f_, in_f_, W, x, y);
      }
      add_bias(y, 1, 0, out_f_);
      return;
    }
    forward_gemm(x, y, n, {});
  }
  // Frozen (float, more than kernels::kThin units): W packed once, here, and the forward products read the panels
  // as they are. One example's product then reads only the panels' rows of its non-zero inputs (half of W or less
  // for an image, or behind a ReLU), where the matrix-vector product of W reads all of it.
  void freeze(bool on) override {
    frozen_ = false;
    if constexpr (std::is_same_v<T, float>) {
      if (!on || out_f_ <= kernels::kThin) return;
      packed_.resize(kernels::packed_size(out_f_, in_f_));
      const int nr = kernels::packed_panel_width();
      kernels::pack_panels(this->params_[0].value, out_f_, in_f_, 0, (out_f_ + nr - 1) / nr, packed_.data());
      frozen_ = true;
    }
  }
  // The ReLU (or any per-example layer) after a dense layer runs on each thread's rows of y as soon as the product
  // and the bias are done with them, in cache and in parallel, instead of in a pass of its own.
  bool forward_then(const T* x, const ChainOut<T>& out, int n, bool, const std::function<void(int, int)>& then) override {
    if (n == 1 || !out.y) return false;  // whole ranges of rows at a time: no transient output
    forward_gemm(x, out.y, n, then);
    return true;
  }
  // A thin layer (float, at most kernels::kThin units: a classifier's output) is a per-example product: in a chain
  // after a dense layer and its ReLU, each thread multiplies its own rows of the ReLU's output while they are in its
  // cache, instead of one thread reading all of them (half from the other core's cache) after the parallel region.
  // The same kernel (kernels::gemm, ThinNT) computes each row the same way whatever the range: the same bits.
  bool per_example() const override { return thin(); }
  void forward_examples(const T* x, T* y, int i0, int i1) override {
    const int rows = i1 - i0;
    kernels::gemm(false, true, rows, out_f_, in_f_, T(1), x, in_f_, this->params_[0].value, in_f_, T(0), y, out_f_);
    add_bias(y, rows, 0, out_f_);
  }
  void reserve(int batch) override {
    if constexpr (std::is_same_v<T, float>) {  // room for the lists of the sparse path, by units or by examples
      list_idx_.resize(size_t(out_f_) * size_t(batch));
      list_val_.resize(size_t(out_f_) * size_t(batch));
      list_count_.resize(size_t(std::max(out_f_, batch)));
      if (out_f_ > kernels::kThin) packed_.resize(kernels::packed_size(out_f_, in_f_));
    }
  }
  // dy: (n, out)  dx: (n, in)
  void backward(const T* x, const T*, const T* dy, T* dx, int n) override {
    if ((last_sparse_ = sparse_backward(x, dy, dx, n, nullptr))) return;
    if (thin_backward(x, dy, dx, n, nullptr)) return;
    weight_grad(x, dy, n);
    if (dx) input_grad(dy, dx, n, nullptr);
  }
  // After a ReLU, x is its output, and x > 0 exactly where its input was > 0 (derivative 0 at 0): dx = (dy W) where
  // x > 0, else 0, on each thread's block of dx while it is in cache. The ReLU's own backward pass, and the buffer
  // for the gradient between the two, are skipped.
  bool backward_through_relu(const T* x, const T*, const T* dy, T* dx, int n) override {
    if ((last_sparse_ = sparse_backward(x, dy, dx, n, x))) return true;
    if (thin_backward(x, dy, dx, n, x)) return true;
    weight_grad(x, dy, n);
    input_grad(dy, dx, n, x);
    return true;
  }
  bool last_backward_sparse() const override { return last_sparse_; }
  bool overwrites_grads() const override { return true; }  // every path: the sparse, the thin and the full products
  std::string torch_module() const override {
    return "nn.Linear(" + std::to_string(in_f_) + ", " + std::to_string(out_f_) + ")";
  }

 private:
  // dW += dy^T x and db += the batch sum of dy, with full products
  void weight_grad(const T* x, const T* dy, int n) {
    T* dW = this->params_[0].grad;
    // dW += dy^T x; each thread's block of dW also takes bias entries: its rows when the product is split by rows,
    // a share of the rows proportional to its columns when split by columns (each entry summed by one thread, in
    // the same order either way).
    const bool overwrite = this->overwrite_grads_;
    kernels::pgemm(true, false, out_f_, in_f_, n, T(1), dy, out_f_, x, in_f_, T(overwrite ? 0 : 1), dW, in_f_, [&](int r0, int rows, int c0, int cols) {
      bias_grad(dy, n, r0 + int(long(rows) * c0 / in_f_), r0 + int(long(rows) * (c0 + cols) / in_f_));
    });
  }
  // db[lo, hi) += (or =, while overwrite_grads_) the batch sum of dy's columns [lo, hi), example by example in order
  void bias_grad(const T* dy, int n, int lo, int hi) {
    T* db = this->params_[1].grad;
    if (this->overwrite_grads_) std::fill(db + lo, db + hi, T(0));
    for (int i = 0; i < n; ++i) {
      const T* row = dy + size_t(i) * out_f_;
      for (int j = lo; j < hi; ++j) db[j] += row[j];
    }
  }
  // y's rows [0, rows), columns [c0, c1) += the bias
  void add_bias(T* y, int rows, int c0, int c1) const {
    const T* b = this->params_[1].value;
    for (int i = 0; i < rows; ++i) {
      T* yi = y + size_t(i) * out_f_;
      for (int j = c0; j < c1; ++j) yi[j] += b[j];
    }
  }
  // At most this fraction of dy non-zero, the products with dy take the sparse path. Where the two paths cost the
  // same, measured on the reference machine (random dy of a given density, batch 128, 64-byte aligned input, 1 and
  // 2 threads; docs/benchmarks.md, "Adam at full speed, the sparse backward's limits by shape"): for dW alone (a
  // first layer: no dx) at 0.5-0.62 of dy non-zero (784 inputs, 256 and 1024 units); with dx too, at 0.45-0.65
  // while W takes at most 1 MB (each list entry reads a row of W from the core's own cache), and at 0.24-0.28
  // beyond (2 and 4 MB: rows read from L3). Fixed figures, not the running CPU's caches: the choice moves the last
  // bits (the order of the sums), and the results must not depend on the machine.
  static double sparse_density_limit(bool with_dx, size_t weights) {
    return with_dx && weights * sizeof(float) > (size_t(1) << 20) ? 0.25 : 0.55;
  }

  // Behind a ReLU most of dy is exactly zero (the units that did not fire), so when few of its entries are non-zero
  // (float, at most sparse_density_limit of them) the gradients come from lists of them instead of full products: for
  // each unit the examples where its dy is non-zero, dW (u, :) += sum dy (s, u) x (s, :), and db (u) the sum of the
  // same dy in the same order as the full path; for each example the units, dx (s, :) = sum dy (s, u) W (u, :),
  // then zeroed where relu_out (if not null) is not positive. The zeros skipped add nothing: the results are the
  // full products' up to rounding (the order of the sums differs), and do not depend on the number of threads.
  // Returns false, having done nothing, when the full path is to run.
  bool sparse_backward(const T* x, const T* dy, T* dx, int n, const T* relu_out) {
    if constexpr (!std::is_same_v<T, float>) {
      return false;
    } else {
      const int units = out_f_, in = in_f_;
      const size_t m = size_t(n) * size_t(units);
      if (list_idx_.size() < m || list_count_.size() < size_t(std::max(n, units)) || m < 4096) return false;
      const double limit = sparse_density_limit(dx != nullptr, size_t(units) * size_t(in));
      if (double(kernels::count_nonzero(dy, m)) > limit * double(m)) return false;
      float* dW = this->params_[0].grad;
      float* db = this->params_[1].grad;
      const float* W = this->params_[0].value;
      int32_t* count = list_count_.data();
      int32_t* idx = list_idx_.data();
      float* val = list_val_.data();
      const int threads = std::min(omp_in_parallel() ? 1 : omp_get_max_threads(), kernels::SplitBalance::kMax);
      double work[kernels::SplitBalance::kMax], seconds[kernels::SplitBalance::kMax];
      int ran = 1;
#pragma omp parallel num_threads(threads)
      {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        if (t == 0) ran = nt;
        // Each unit's list (room for n): the examples where its dy is non-zero, in order.
        const int u0 = int(long(units) * t / nt), u1 = int(long(units) * (t + 1) / nt);
        for (int u = u0; u < u1; ++u) count[u] = 0;
        for (int s = 0; s < n; ++s) {
          const float* row = dy + size_t(s) * size_t(units);
          kernels::for_each_nonzero(row, u0, u1, [&](int u) {
            const size_t at = size_t(u) * size_t(n) + size_t(count[u]++);
            idx[at] = s;
            val[at] = row[u];
          });
        }
#pragma omp barrier
        // dW and db split by the lists' lengths, in shares that follow each thread's measured speed (as pgemm's
        // blocks: kernels::SplitBalance), so the threads finish together.
        long total = 0;
        for (int u = 0; u < units; ++u) total += count[u];
        // This thread's units: from the first whose preceding entries reach bounds[t] to the first that reach
        // bounds[t + 1] (the last thread: to the end).
        int bounds[kernels::SplitBalance::kMax + 1];
        kernels::SplitBalance::get().split(int(std::min<long>(total, 1L << 30)), 1, nt, bounds, true);  // exact anyway
        int a = units, b = units;
        long before = 0;
        for (int u = 0; u < units && b == units; before += count[u], ++u) {
          if (a == units && before >= bounds[t]) a = u;
          if (t + 1 < nt && before >= bounds[t + 1]) b = u;
        }
        const double t0 = omp_get_wtime();
        kernels::spmm_rows(a, b, count, n, idx, val, x, size_t(in), in, dW, size_t(in), !this->overwrite_grads_);
        long mine = 0;
        for (int u = a; u < b; ++u) {
          mine += count[u];
          if (this->overwrite_grads_) db[u] = 0.0f;
          for (int j = 0; j < count[u]; ++j) db[u] += val[size_t(u) * size_t(n) + size_t(j)];
        }
        work[t] = double(mine);
        seconds[t] = omp_get_wtime() - t0;
        if (dx) {  // the lists by example (room for units each), over the same storage once every thread is done
#pragma omp barrier
          const int s0 = int(long(n) * t / nt), s1 = int(long(n) * (t + 1) / nt);
          for (int s = s0; s < s1; ++s)
            count[s] = kernels::nonzero_list(dy + size_t(s) * size_t(units), units, idx + size_t(s) * size_t(units),
                                             val + size_t(s) * size_t(units));
          kernels::spmm_rows(s0, s1, count, units, idx, val, W, size_t(in), in, dx, size_t(in), false);
          if (relu_out) zero_where_off(relu_out, dx, s0, s1, 0, in);
        }
      }
      if (ran > 1) kernels::SplitBalance::get().record(ran, work, seconds);
      return true;
    }
  }
  bool thin() const { return std::is_same_v<T, float> && out_f_ <= kernels::kThin; }
  // A thin layer's backward over the threads, in one region: dW by blocks of columns (of in_f_), each entry summed
  // over the batch in order by one thread, and dx by blocks of rows (examples), zeroed where relu_out is not
  // positive; db on the first thread. The same kernels on the same entries as the one-thread products, which run a
  // layer this small (pgemm's threshold): the same bits. Returns false, having done nothing, when they are to run.
  static constexpr int kThinColumnAlign = 32;  // the widest target's column strip (ThinTN: 2 vectors of 16 floats)
  bool thin_backward(const T* x, const T* dy, T* dx, int n, const T* relu_out) {
    if constexpr (!std::is_same_v<T, float>) {
      return false;
    } else {
      if (!thin() || omp_in_parallel() || omp_get_max_threads() < 2 || in_f_ < 2 * kThinColumnAlign || n < 16 ||
          size_t(n) * size_t(in_f_) > (size_t(1) << 16))
        return false;
      float* dW = this->params_[0].grad;
      const float* W = this->params_[0].value;
      const int strips = (in_f_ + kThinColumnAlign - 1) / kThinColumnAlign;
#pragma omp parallel num_threads(std::min(omp_get_max_threads(), strips))
      {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int c0 = std::min(in_f_, strips * t / nt * kThinColumnAlign);
        const int c1 = std::min(in_f_, strips * (t + 1) / nt * kThinColumnAlign);
        if (c1 > c0)
          kernels::gemm(true, false, out_f_, c1 - c0, n, 1.0f, dy, out_f_, x + c0, in_f_, this->overwrite_grads_ ? 0.0f : 1.0f,
                        dW + c0, in_f_);
        if (t == 0) bias_grad(dy, n, 0, out_f_);
        if (dx) {
          const int s0 = int(long(n) * t / nt), s1 = int(long(n) * (t + 1) / nt);
          kernels::gemm(false, false, s1 - s0, in_f_, out_f_, 1.0f, dy + size_t(s0) * size_t(out_f_), out_f_, W, in_f_,
                        0.0f, dx + size_t(s0) * size_t(in_f_), in_f_);
          if (relu_out) zero_where_off(relu_out, dx, s0, s1, 0, in_f_);
        }
      }
      return true;
    }
  }
  // y = x W^T, then + b on each thread's block while it is in cache, then then(i0, i1) on its whole rows. In float,
  // with more than kernels::kThin units and a batch of at least 8, W is packed once for all the threads
  // (kernels::pgemm_nt_packed): in the reference MLP's first layer, each thread's OpenBLAS call spent a quarter of
  // its time packing the whole of W for itself.
  void forward_gemm(const T* x, T* y, int n, const std::function<void(int, int)>& then) {
    const T* W = this->params_[0].value;
    auto epilogue = [&](int r0, int rows, int c0, int cols) {
      add_bias(y + size_t(r0) * out_f_, rows, c0, c0 + cols);
      if (then) then(r0, r0 + rows);
    };
    if constexpr (std::is_same_v<T, float>) {
      if ((n >= 8 || frozen_) && packed_.size() > 0) {
        kernels::pgemm_nt_packed(n, out_f_, in_f_, x, in_f_, frozen_ ? nullptr : W, packed_.data(), y, out_f_, epilogue,
                                 sparse_input(x, n));
        return;
      }
    }
    kernels::pgemm(false, true, n, out_f_, in_f_, T(1), x, in_f_, W, in_f_, T(0), y, out_f_, epilogue, bool(then));
  }
  // At most this fraction of x non-zero, estimated on the batch's first rows: the forward product skips x's zeros
  // (kernels::gemm_packed_sparse_a: the same sums but for the zero terms, so the choice changes no result, but for
  // a non-finite weight facing a zero input). In the reference MLP both layers take it (images 48% non-zero, the
  // first ReLU's output about 30%): its training step ran 5% faster (docs/benchmarks.md, run 28).
  static constexpr double kSparseInput = 0.6;
  static constexpr int kSampleRows = 8;
  bool sparse_input(const float* x, int n) const {
    const size_t m = size_t(std::min(n, kSampleRows)) * size_t(in_f_);
    return double(kernels::count_nonzero(x, m)) <= kSparseInput * double(m);
  }
  // dx = dy W, zeroed where relu_out (if not null) is not positive, on each thread's block while it is in cache
  void input_grad(const T* dy, T* dx, int n, const T* relu_out) {
    const T* W = this->params_[0].value;
    kernels::pgemm(false, false, n, in_f_, out_f_, T(1), dy, out_f_, W, in_f_, T(0), dx, in_f_, [&](int r0, int rows, int c0, int cols) {
      if (relu_out) zero_where_off(relu_out, dx, r0, r0 + rows, c0, c0 + cols);
    });
  }
  // The ReLU's derivative applied to the input gradient: dx = 0 where relu_out is not positive, on rows [i0, i1)
  // and columns [j0, j1)
  void zero_where_off(const T* relu_out, T* dx, int i0, int i1, int j0, int j1) const {
    for (int i = i0; i < i1; ++i) {
      const T* xi = relu_out + size_t(i) * in_f_;
      T* di = dx + size_t(i) * in_f_;
      for (int j = j0; j < j1; ++j) di[j] = xi[j] > T(0) ? di[j] : T(0);
    }
  }
  int in_f_ = 0, out_f_ = 0;
  // The sparse path's lists (float only; sized by reserve), by unit, then by example
  Buffer<int32_t> list_idx_, list_count_;
  Buffer<float> list_val_;
  bool last_sparse_ = false;
  // W's panels for the packed forward product (float, more than kernels::kThin units, which the thin products take
  // otherwise; sized by reserve), packed at each forward, or once by freeze (frozen_)
  Buffer<float> packed_;
  bool frozen_ = false;
};

template <class T>
class ActivationLayer final : public Layer<T> {
 public:
  using Layer<T>::Layer;
  Shape build(const Shape& in) override { return this->in_ = this->out_ = in, this->out_; }
  void reserve(int batch) override {
    if (masked()) mask_.resize(relu_mask_bytes(size_t(batch) * numel(this->in_)));
  }
  void forward(const T* x, T* y, int n, bool) override {
    const size_t m = size_t(n) * numel(this->in_);
    mask_valid_ = masked();
    if constexpr (std::is_same_v<T, float>) {
      if (masked()) {  // keep 1 bit per element for backward (eval too: diagnose runs backward after it)
        relu_forward(x, y, mask_.data(), m);
        return;
      }
    }
    act_forward(this->spec_.act, x, y, m);
  }
  // Chained after a convolution: no mask (its layout is the whole batch's); backward then reads the input.
  bool per_example() const override { return true; }
  void begin_examples(int) override { mask_valid_ = false; }
  void forward_examples(const T* x, T* y, int i0, int i1) override {
    act_forward(this->spec_.act, x, y, size_t(i1 - i0) * numel(this->in_));
  }
  void backward(const T* x, const T* y, const T* dy, T* dx, int n) override {
    if (!dx) return;
    const size_t m = size_t(n) * numel(this->in_);
    if constexpr (std::is_same_v<T, float>) {
      if (mask_valid_) {
        relu_backward_mask(mask_.data(), dy, dx, m);
        return;
      }
    }
    if (act_backward_from_output(this->spec_.act, y, dy, dx, m)) return;  // sigmoid, tanh: no exp needed
    act_backward(this->spec_.act, x, dy, dx, m);
  }
  std::string torch_module() const override {
    const Activation& a = this->spec_.act;
    switch (a.kind) {
      case Act::identity: return "nn.Identity()";
      case Act::relu: return "nn.ReLU()";
      case Act::leaky_relu: return "nn.LeakyReLU(" + fmt_num(a.param) + ")";
      case Act::elu: return "nn.ELU(" + fmt_num(a.param) + ")";
      case Act::selu: return "nn.SELU()";
      case Act::gelu: return "nn.GELU()";
      case Act::silu: return "nn.SiLU()";
      case Act::relu6: return "nn.ReLU6()";
      case Act::softplus: return "nn.Softplus(" + fmt_num(a.param) + ")";
      case Act::mish: return "nn.Mish()";
      case Act::sigmoid: return "nn.Sigmoid()";
      case Act::tanh: return "nn.Tanh()";
    }
    return "nn.Identity()";
  }

 private:
  bool masked() const { return std::is_same_v<T, float> && this->spec_.act.kind == Act::relu && this->spec_.act.param == 0; }
  Buffer<uint8_t> mask_;
  bool mask_valid_ = false;  // the last forward kept the mask
};

// Leaky ReLU whose slope is learned: one slope for the whole layer (nn.PReLU()), initialised to 0.25.
template <class T>
class PReLU final : public Layer<T> {
 public:
  using Layer<T>::Layer;
  Shape build(const Shape& in) override {
    this->in_ = this->out_ = in;
    this->params_ = {{"weight", {1}}};
    return this->out_;
  }
  void init(const InitSpec&, Rng&) override { this->params_[0].value[0] = T(0.25); }
  void forward(const T* x, T* y, int n, bool) override {
    const T a = this->params_[0].value[0];
    const size_t m = size_t(n) * numel(this->in_);
    for (size_t i = 0; i < m; ++i) y[i] = x[i] > T(0) ? x[i] : a * x[i];
  }
  void backward(const T* x, const T*, const T* dy, T* dx, int n) override {
    const T a = this->params_[0].value[0];
    const size_t m = size_t(n) * numel(this->in_);
    double da = 0;
    for (size_t i = 0; i < m; ++i) {
      if (x[i] <= T(0)) da += double(dy[i]) * double(x[i]);
      if (dx) dx[i] = x[i] > T(0) ? dy[i] : a * dy[i];
    }
    this->params_[0].grad[0] += T(da);
  }
  std::string torch_module() const override { return "nn.PReLU()"; }
};

// Inverted dropout: in training each value is zeroed with probability p and the rest scaled by 1/(1-p).
template <class T>
class Dropout final : public Layer<T> {
 public:
  using Layer<T>::Layer;
  Shape build(const Shape& in) override { return this->in_ = this->out_ = in, this->out_; }
  void reserve(int batch) override { mask_.resize(size_t(batch) * numel(this->in_)); }
  void seed(uint64_t s) override { rng_.reseed(s); }
  void forward(const T* x, T* y, int n, bool training) override {
    const size_t m = size_t(n) * numel(this->in_);
    training_ = training && this->spec_.p > 0;
    if (!training_) { std::memcpy(y, x, sizeof(T) * m); return; }
    const double p = this->spec_.p;
    const T keep = T(1.0 / (1.0 - p));
    // Element i is dropped when the top 32 bits of SplitMix64's output number i from this pass's seed (one draw of
    // the layer's generator) fall under p 2^32: the same mask on any number of threads, over them by fixed blocks;
    // the mask without a branch (a dropped element mispredicts one), then the product in a pass of its own. Drawn
    // one by one from the layer's generator (a double each), the mask took 107 us for 128 x 256 on one thread; 55
    // now (34 on two).
    const uint64_t base = rng_.next();
    const uint64_t cut = uint64_t(std::ldexp(p, 32));
    T* mask = mask_.data();
    kernels::parallel_chunks(m, size_t(1) << 13, [&](size_t lo, size_t len) {
      for (size_t i = lo; i < lo + len; ++i) mask[i] = keep_if((Rng::splitmix_at(base, i) >> 32) >= cut, keep);
      for (size_t i = lo; i < lo + len; ++i) y[i] = x[i] * mask[i];
    });
  }
  void backward(const T*, const T*, const T* dy, T* dx, int n) override {
    if (!dx) return;
    const size_t m = size_t(n) * numel(this->in_);
    if (!training_) { std::memcpy(dx, dy, sizeof(T) * m); return; }
    for (size_t i = 0; i < m; ++i) dx[i] = dy[i] * mask_[i];
  }
  std::string torch_module() const override { return "nn.Dropout(" + fmt_num(this->spec_.p) + ")"; }

 private:
  // keep if on, else +0, by the bits
  static T keep_if(bool on, T keep) {
    using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    U bits;
    std::memcpy(&bits, &keep, sizeof(T));
    bits &= U(0) - U(on);
    T k;
    std::memcpy(&k, &bits, sizeof(T));
    return k;
  }
  Buffer<T> mask_;
  Rng rng_;
  bool training_ = false;
};

template <class T>
class Flatten final : public Layer<T> {
 public:
  using Layer<T>::Layer;
  Shape build(const Shape& in) override {
    this->in_ = in;
    this->out_ = {int(numel(in))};
    return this->out_;
  }
  bool is_view() const override { return true; }
  // The model skips both for a view; they are here for a caller that runs the layer on its own.
  void forward(const T* x, T* y, int n, bool) override { std::memcpy(y, x, sizeof(T) * size_t(n) * numel(this->in_)); }
  void backward(const T*, const T*, const T* dy, T* dx, int n) override {
    if (dx) std::memcpy(dx, dy, sizeof(T) * size_t(n) * numel(this->in_));
  }
  std::string torch_module() const override { return "nn.Flatten()"; }
};

template <class T> std::unique_ptr<Layer<T>> make_conv_layer(const LayerSpec& spec);  // layers_conv.cpp

template <class T>
std::unique_ptr<Layer<T>> make_layer(const LayerSpec& spec) {
  switch (spec.kind) {
    case LayerKind::dense: return std::make_unique<Dense<T>>(spec);
    case LayerKind::activation: return std::make_unique<ActivationLayer<T>>(spec);
    case LayerKind::prelu: return std::make_unique<PReLU<T>>(spec);
    case LayerKind::dropout: return std::make_unique<Dropout<T>>(spec);
    case LayerKind::flatten: return std::make_unique<Flatten<T>>(spec);
    default: return make_conv_layer<T>(spec);
  }
}

template std::unique_ptr<Layer<float>> make_layer<float>(const LayerSpec&);
template std::unique_ptr<Layer<double>> make_layer<double>(const LayerSpec&);

}  // namespace rectifier
