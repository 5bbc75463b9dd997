// Convolution (im2col + GEMM over groups of images), max and average pooling, global average pooling, batch norm.
// Data are NCHW; weights [out_channels, in_channels, kh, kw] as nn.Conv2d.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <omp.h>
#include "kernels/conv_direct.h"
#include "kernels/conv_kernels.h"
#include "kernels/gemm.h"
#include "kernels/layout.h"
#include "kernels/parallel.h"
#include "kernels/sparse.h"
#include "kernels/winograd.h"
#include "layers_internal.h"

namespace rectifier {
using detail::shape_error;
using kernels::gemm;

namespace {
int pooled(int size, int k, int stride, int pad) { return (size + 2 * pad - k) / stride + 1; }

void need_image(const LayerSpec& s, const Shape& in) {
  if (in.size() != 3) shape_error(s, in, "is not an image [C, H, W] (add no flatten before it)");
}
}  // namespace

// Each thread takes whole images: im2col into its own column buffer (from a zero-padded copy of each channel), then
// one single-threaded GEMM per image that writes the NCHW output directly. Images are handed out dynamically, so a
// core the host stalls does not leave the other spinning. Weight gradients go to one accumulator per fixed chunk of
// images, summed in chunk order: a run gives the same result for any thread count.
template <class T>
class Conv2D final : public Layer<T> {
 public:
  using Layer<T>::Layer;
  Shape build(const Shape& in) override {
    const auto& s = this->spec_;
    need_image(s, in);
    g_ = {in[0], in[1], in[2], s.units, s.kernel, s.stride, s.pad, 0, 0};
    g_.oh = pooled(g_.h, g_.k, g_.stride, g_.pad);
    g_.ow = pooled(g_.w, g_.k, g_.stride, g_.pad);
    if (g_.oh < 1 || g_.ow < 1)
      shape_error(s, in, "is smaller than the kernel " + std::to_string(g_.k) + "x" + std::to_string(g_.k) +
                             " with padding " + std::to_string(g_.pad));
    this->in_ = in;
    this->out_ = {g_.oc, g_.oh, g_.ow};
    this->params_ = {{"weight", {g_.oc, g_.c, g_.k, g_.k}}, {"bias", {g_.oc}}};
    return this->out_;
  }
  void reserve(int batch) override {
    threads_ = omp_get_max_threads();
    if (!direct()) col_.resize(K() * P() * size_t(threads_));
    plane_.resize(kernels::padded_plane(g_) * size_t(threads_));
    if (direct()) {
      const auto gt = kernels::input_grad_geometry(g_);
      direct_scratch_ = std::max(kernels::direct_layout(g_).scratch, kernels::direct_layout(gt).scratch);
      scratch_.resize(direct_scratch_ * size_t(threads_));
      wr_.resize(kernels::direct_weights_floats(g_));
      wt_.resize(kernels::direct_weights_floats(gt));
      group_.resize(kernels::direct_grad_image_floats(g_) * size_t(kGroup) * size_t(threads_));
    }
    if (winograd()) {
      wu_.resize(kernels::winograd_weights_floats(g_));
      wino_.resize(kernels::winograd_layout(g_).scratch * size_t(threads_));
    }
    if (winograd_dx()) {
      const auto gt = kernels::input_grad_geometry(g_);
      wut_.resize(kernels::winograd_weights_floats(gt));
      wino_dx_.resize(kernels::winograd_layout(gt).scratch * size_t(threads_));
    }
    if (winograd_dw()) {
      wgm_.resize(kernels::winograd_weights_floats(g_) * size_t(threads_));
      wgs_.resize(kernels::winograd_grad_scratch(g_) * size_t(threads_));
    }
    dw_.resize((K() + 1) * size_t(g_.oc) * size_t(kChunks));  // weights, then bias, per chunk of images
    chunk_images_ = std::max(1, (batch + kChunks - 1) / kChunks);  // the most images a chunk of a batch holds
    capacity_ = batch;
    chain_dy_.resize(size_t(g_.oc) * P() * size_t(chunk_images_) * size_t(threads_));
    if (sparse_applies()) {
      const size_t grid = size_t(g_.h + 2 * g_.pad) * size_t(g_.w + 2 * g_.pad) * size_t(g_.c), T_ = size_t(threads_);
      // dW's lists run through up to kGroup images at a time (a chunk's, for a batch of 128), as the direct path
      sp_images_ = std::min(kGroup, (std::max(batch, 1) + kChunks - 1) / kChunks);
      // per thread: the chunk's padded inputs, then the padded input gradient (HWC); their borders stay zero from
      // allocation (Buffer zero-fills it), as only the insides are ever written
      sp_grid_.resize((size_t(sp_images_) + 1) * grid * T_);
      sp_dw_.resize(K() * size_t(g_.oc) * T_);
      sp_idx_.resize(sparse_lists() * T_);  // lists by output channel (the chunk's), then by position (an image's)
      sp_val_.resize(sparse_lists() * T_);
      sp_count_.resize((P() + size_t(g_.oc)) * T_);
      sp_wh_.resize(K() * size_t(g_.oc));
      // The input gradient's rows by position, column by column (rows r and r + 1 are then on different output
      // rows, so their windows never overlap, as kernels::spmm_rows_at needs): each at its window's top-left. For
      // output position p = oy * ow + ox: its window's top-left in the padded grid and its row r.
      sp_at_.resize(P());
      sp_pad_.resize(P());
      sp_row_.resize(P());
      const int wp = g_.w + 2 * g_.pad;
      for (int ox = 0; ox < g_.ow; ++ox)
        for (int oy = 0; oy < g_.oh; ++oy) {
          const size_t r = size_t(ox) * g_.oh + size_t(oy), p = size_t(oy) * g_.ow + size_t(ox);
          sp_at_[r] = (oy * wp + ox) * g_.c;
          sp_pad_[p] = oy * wp + ox;
          sp_row_[p] = int32_t(r);
        }
    }
  }
  void init(const InitSpec& s, Rng& rng) override {
    const int fan_in = g_.c * g_.k * g_.k, fan_out = g_.oc * g_.k * g_.k;
    init_weights(s, fan_in, fan_out, this->params_[0].value, this->params_[0].size(), rng);
    init_bias(s, fan_in, this->params_[1].value, size_t(g_.oc), rng);
  }
  // x: (n, C, H, W)  y: (n, OC, OH, OW)
  void forward(const T* x, T* y, int n, bool training) override {
    if (forward_then(x, ChainOut<T>{y, nullptr, size_t(g_.oc) * P(), 0}, n, training, {})) return;
    const int K = int(this->K()), P = int(this->P());
    const T* W = this->params_[0].value;
    const T* b = this->params_[1].value;
    const size_t in_sz = size_t(g_.c) * g_.h * g_.w, out_sz = size_t(g_.oc) * P;
#pragma omp parallel num_threads(team())
    {
      T* col = col_.data() + size_t(omp_get_thread_num()) * K * P;
      T* plane = plane_.data() + size_t(omp_get_thread_num()) * kernels::padded_plane(g_);
#pragma omp for schedule(dynamic, 2)
      for (int i = 0; i < n; ++i) {
        T* yi = y + size_t(i) * out_sz;
        for (int o = 0; o < g_.oc; ++o) std::fill(yi + size_t(o) * P, yi + size_t(o + 1) * P, b[o]);
        if (pointwise()) {
          gemm(false, false, g_.oc, P, K, T(1), W, K, x + size_t(i) * in_sz, P, T(1), yi, P);
          continue;
        }
        kernels::im2col(g_, x + size_t(i) * in_sz, col, plane);
        gemm(false, false, g_.oc, P, K, T(1), W, K, col, P, T(1), yi, P);  // (OC, P) = W (OC, K) col (K, P)
      }
    }
  }
  // The direct path, image by image, each followed by then(i, i + 1) (the chained layers) on the same thread.
  // With a transient out (model: no one reads this output after the chain), an image's output stays in cache for
  // the chained layers and is never written to memory.
  bool forward_then(const T* x, const ChainOut<T>& out, int n, bool, const std::function<void(int, int)>& then) override {
    if constexpr (std::is_same_v<T, float>) {
      if (direct()) {
        const size_t in_sz = size_t(g_.c) * g_.h * g_.w;
        const int threads = out.y ? team() : std::min(team(), out.threads);
        const bool wino = winograd();
        if (wino && !frozen_) kernels::winograd_weights(g_, this->params_[0].value, wu_.data());
        if (!wino) kernels::pack_direct_weights(g_, this->params_[0].value, false, wr_.data());
        const size_t wino_scratch = wino ? kernels::winograd_layout(g_).scratch : 0;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 2)
        for (int i = 0; i < n; ++i) {
          const int t = omp_get_thread_num();
          if (wino)
            kernels::conv_winograd(g_, x + size_t(i) * in_sz, wu_.data(), this->params_[1].value, out.at(i, t),
                                   wino_.data() + size_t(t) * wino_scratch);
          else
            kernels::conv_direct(g_, x + size_t(i) * in_sz, wr_.data(), this->params_[1].value, out.at(i, t),
                                 scratch_.data() + size_t(t) * direct_scratch_);
          if (then) then(i, i + 1);
        }
        return true;
      }
    }
    return false;
  }
  void backward(const T* x, const T*, const T* dy, T* dx, int n) override {
    const size_t out_sz = size_t(g_.oc) * P();
    backward_chunks(x, dx, n, [&](int i0, int, int) { return dy + size_t(i0) * out_sz; });
  }
  // Each chunk's dy made by the layers after this one (a ReLU's backward inside a max pooling's) on the thread
  // that then uses it, into that thread's scratch (chain_dy_: a chunk of images, in cache) instead of a buffer for
  // the batch that is written whole and read back from memory.
  bool backward_chained(const T* x, const std::function<void(int, int, T*)>& dy_for, T* dx, int n) override {
    const size_t room = size_t(g_.oc) * P() * size_t(chunk_images_);
    if (n > capacity_) return false;
    backward_chunks(x, dx, n, [&](int i0, int i1, int t) -> const T* {
      T* buf = chain_dy_.data() + size_t(t) * room;
      dy_for(i0, i1, buf);
      return buf;
    });
    return true;
  }
  // Backward over chunks of images, each chunk's dy from dy_chunk(i0, i1, thread) (pointing at image i0's).
  template <class DyChunk>
  void backward_chunks(const T* x, T* dx, int n, DyChunk&& dy_chunk) {
    const int K = int(this->K()), P = int(this->P());
    const T* W = this->params_[0].value;
    const size_t in_sz = size_t(g_.c) * g_.h * g_.w, out_sz = size_t(g_.oc) * P, acc = (size_t(K) + 1) * g_.oc;
    const int chunks = std::min(kChunks, std::max(n, 1));
    if constexpr (std::is_same_v<T, float>) {
      wut_ready_ = false;  // the Winograd input gradient's weights: made by the first chunk that needs them
      if (dx && direct() && !winograd_dx()) kernels::pack_direct_weights(kernels::input_grad_geometry(g_), W, true, wt_.data());
      if (dx && sparse_applies())  // [oc][k][k][c]: a window's row of taps is k * c consecutive floats
        for (int o = 0; o < g_.oc; ++o)
          for (int c = 0; c < g_.c; ++c)
            for (int t = 0; t < g_.k * g_.k; ++t)
              sp_wh_[(size_t(o) * g_.k * g_.k + size_t(t)) * g_.c + size_t(c)] = W[(size_t(o) * g_.c + size_t(c)) * g_.k * g_.k + size_t(t)];
    }
    int sparse_chunks = 0;
#pragma omp parallel num_threads(team())
    {
      const int t = omp_get_thread_num();
      T* col = col_.data() + size_t(t) * K * P;
      T* plane = plane_.data() + size_t(t) * kernels::padded_plane(g_);
      // Chunks go to whichever thread is free (a stalled core does not hold the other back); each has its own
      // accumulator, summed in chunk order below, so the result does not depend on the schedule or thread count.
#pragma omp for schedule(dynamic, 1)
      for (int ch = 0; ch < chunks; ++ch) {
        T* dw = dw_.data() + size_t(ch) * acc;
        T* db = dw + size_t(K) * g_.oc;
        std::fill(dw, dw + acc, T(0));
        const int i0 = int(long(n) * ch / chunks), i1 = int(long(n) * (ch + 1) / chunks);
        const T* dyc = dy_chunk(i0, i1, t);  // images [i0, i1) of dy
        if constexpr (std::is_same_v<T, float>) {
          // whether the chunk's dy is mostly zero (the paths give the same gradients but for rounding: the choice
          // is one of speed)
          auto mostly_zero = [&] {
            const size_t m = size_t(i1 - i0) * out_sz;
            return double(kernels::count_nonzero(dyc, m)) <= kSparseDensity * double(m);
          };
          if (sparse_applies() && mostly_zero()) {
            sparse_backward(x, dyc, dx, i0, i1, dw, t);
#pragma omp atomic
            ++sparse_chunks;
            continue;
          }
          // the first layer, short rows of taps: dW from dy's non-zero entries, image by image
          if (!dx && patch_applies() && mostly_zero()) {
            float* xp = thread_group(t);  // the direct path's buffer: its first image's planes
            for (int i = i0; i < i1; ++i) {
              kernels::direct_pad_input(g_, x + size_t(i) * in_sz, xp, false);
              kernels::patch_weight_grad(g_, xp, dyc + size_t(i - i0) * out_sz, dw, db);
            }
#pragma omp atomic
            ++sparse_chunks;
            continue;
          }
          if (direct()) {
            direct_backward(x, dyc, dx, i0, i1, dw, t);
            continue;
          }
        }
        for (int i = i0; i < i1; ++i) {
          const T* dyi = dyc + size_t(i - i0) * out_sz;
          for (int o = 0; o < g_.oc; ++o) db[o] += kernels::sum8(dyi + size_t(o) * P, size_t(P));
          const T* xcol = x + size_t(i) * in_sz;
          if (!pointwise()) {
            kernels::im2col(g_, xcol, col, plane);
            xcol = col;
          }
          gemm(false, true, g_.oc, K, P, T(1), dyi, P, xcol, P, T(1), dw, K);  // dW (OC, K) += dy (OC, P) col^T
          if (!dx) continue;
          T* dxi = dx + size_t(i) * in_sz;
          if (pointwise()) {
            gemm(true, false, K, P, g_.oc, T(1), W, K, dyi, P, T(0), dxi, P);
          } else {
            gemm(true, false, K, P, g_.oc, T(1), W, K, dyi, P, T(0), col, P);  // dcol (K, P) = W^T dy
            kernels::col2im(g_, col, dxi, plane);
          }
        }
      }
    }
    last_sparse_ = sparse_chunks == chunks;
    T* dW = this->params_[0].grad;
    T* dB = this->params_[1].grad;
    for (int ch = 0; ch < chunks; ++ch) {
      const T* dw = dw_.data() + size_t(ch) * acc;
      for (size_t j = 0; j < size_t(K) * g_.oc; ++j) dW[j] += dw[j];
      for (int o = 0; o < g_.oc; ++o) dB[o] += dw[size_t(K) * g_.oc + o];
    }
  }
  // The direct path's backward for images [i0, i1) (dy at image i0's) on thread t: weight gradient into dw (then the
  // bias after it)
  // by groups of up to kGroup images, input gradient per image from the same gridded dy.
  void direct_backward(const float* x, const float* dy, float* dx, int i0, int i1, float* dw, int t) {
    if (winograd_dw()) {
      winograd_backward(x, dy, dx, i0, i1, dw, t);
      return;
    }
    const size_t in_sz = size_t(g_.c) * g_.h * g_.w, out_sz = size_t(g_.oc) * P();
    const size_t per = kernels::direct_grad_image_floats(g_), planes = size_t(g_.c) * kernels::direct_layout(g_).cs;
    float* group = thread_group(t);
    float* db = dw + K() * size_t(g_.oc);
    for (int s = i0; s < i1; s += kGroup) {
      const int G = std::min(kGroup, i1 - s);
      // The bias gradient is summed while dy goes onto the grid. Only the rows are written: group_ is written by
      // nothing else, and its padding stays zero from allocation.
      for (int j = 0; j < G; ++j) {
        kernels::direct_pad_input(g_, x + size_t(s + j) * in_sz, group + size_t(j) * per, false);
        kernels::direct_grid_output(g_, dy + size_t(s + j - i0) * out_sz, group + size_t(j) * per + planes, db, false);
      }
      kernels::direct_weight_grad(g_, group, G, dw);
      if (!dx) continue;
      // dx = dy correlated with the flipped weights: by Winograd from dy itself where it applies, else read from
      // the same grid
      if (winograd_dx()) {
        for (int j = 0; j < G; ++j) winograd_input_grad(dy + size_t(s + j - i0) * out_sz, dx + size_t(s + j) * in_sz, t);
        continue;
      }
      for (int j = 0; j < G; ++j)
        kernels::direct_input_grad(g_, group + size_t(j) * per + planes, wt_.data(), dx + size_t(s + j) * in_sz,
                                   scratch_.data() + size_t(t) * direct_scratch_);
    }
  }
  // One image's input gradient by Winograd on thread t: dy (oc, oh, ow) -> dx (c, h, w).
  void winograd_input_grad(const float* dy, float* dx, int t) {
    const auto gt = kernels::input_grad_geometry(g_);
    // dx's weights, W (o, c) flipped, as (c, o), transformed (87 us for 32 x 16 5x5 kernels): made once per
    // backward, and only if a chunk takes a dense path (behind ReLU and max pooling all chunks may be sparse)
#pragma omp critical(rectifier_conv_winograd_dx)
    if (!wut_ready_) {
      kernels::winograd_weights(gt, this->params_[0].value, wut_.data(), true);
      wut_ready_ = true;
    }
    kernels::conv_winograd(gt, dy, wut_.data(), nullptr, dx, wino_dx_.data() + size_t(t) * kernels::winograd_layout(gt).scratch);
  }
  // The dense backward by Winograd for images [i0, i1) (dy at image i0's) on thread t, dw as in direct_backward: the
  // weight gradient's transformed products summed over the chunk's images, then taken back to dw once; the bias
  // gradient as dy's sums; the input gradient image by image.
  void winograd_backward(const float* x, const float* dy, float* dx, int i0, int i1, float* dw, int t) {
    const size_t in_sz = size_t(g_.c) * g_.h * g_.w, P = this->P(), out_sz = size_t(g_.oc) * P;
    const size_t mf = kernels::winograd_weights_floats(g_);
    float* M = wgm_.data() + size_t(t) * mf;
    float* scratch = wgs_.data() + size_t(t) * kernels::winograd_grad_scratch(g_);
    float* db = dw + K() * size_t(g_.oc);
    std::fill(M, M + mf, 0.0f);
    for (int i = i0; i < i1; ++i) {
      const float* dyi = dy + size_t(i - i0) * out_sz;
      for (int o = 0; o < g_.oc; ++o) db[o] += kernels::sum8(dyi + size_t(o) * P, P);
      kernels::winograd_weight_grad_image(g_, x + size_t(i) * in_sz, dyi, M, scratch);
      if (dx) winograd_input_grad(dyi, dx + size_t(i) * in_sz, t);
    }
    kernels::winograd_weight_grad_finish(g_, M, dw);
  }
  // Behind a ReLU and a max pooling most of dy is exactly zero (all but the maximum of each window, and the windows
  // whose maximum did not fire: 93-95% for the reference CNN's second convolution), so when a chunk's dy is mostly
  // zero (float, at most kSparseDensity non-zero) its gradients come from lists of the non-zero entries instead of
  // dense correlations. With the input padded into HWC order, a window's row of taps over all channels is k * c
  // consecutive floats, so both gradients are products of lists with rows of consecutive floats (kernels/sparse.h):
  //   dW (o, ky, :) += sum over the positions p where dy (o, p) != 0 of dy (o, p) x (window row ky at p),
  //   dx (window row ky at p) += sum over the channels o where dy (o, p) != 0 of dy (o, p) W (o, ky, :),
  // the latter with spmm_rows_at, as the windows overlap (or spmm_scatter, when there are only a few channels per
  // position). Images [i0, i1) on thread t (dy at image i0's); dw as in direct_backward.
  // Each gradient is summed in a fixed order per chunk: the result does not depend on the threads, and differs
  // from the dense paths' by rounding only (the zeros add nothing).
  void sparse_backward(const float* x, const float* dy, float* dx, int i0, int i1, float* dw, int t) {
    const int C = g_.c, k = g_.k, pad = g_.pad, H = g_.h, W = g_.w, OH = g_.oh, OW = g_.ow, OC = g_.oc;
    const int wp = W + 2 * pad, kc = k * C, P = OH * OW;
    const size_t grid = size_t(H + 2 * pad) * size_t(wp) * size_t(C), in_sz = size_t(C) * H * W;
    const size_t kkc = size_t(k) * size_t(kc), out_sz = size_t(OC) * size_t(P);
    const size_t cap = size_t(P) * size_t(sp_images_);  // a channel's list: every position of a group's images
    float* xg = sp_grid_.data() + (size_t(sp_images_) + 1) * grid * size_t(t);  // image j's grid at xg + j grid
    float* dxh = xg + size_t(sp_images_) * grid;
    float* dwh = sp_dw_.data() + kkc * size_t(OC) * size_t(t);
    int32_t* idx = sp_idx_.data() + sparse_lists() * size_t(t);  // by channel, then (pidx) by position
    float* val = sp_val_.data() + sparse_lists() * size_t(t);
    int32_t* pidx = idx + cap * size_t(OC);
    float* pval = val + cap * size_t(OC);
    int32_t* count = sp_count_.data() + (size_t(P) + size_t(OC)) * size_t(t);
    int32_t* pcount = count + OC;
    float* db = dw + K() * size_t(OC);
    const size_t inside = (size_t(pad) * size_t(wp) + size_t(pad)) * size_t(C);  // pixel (0, 0) in a padded HWC grid
    for (int g0 = i0; g0 < i1; g0 += sp_images_) {  // groups of up to sp_images_ images
      const int g1 = std::min(i1, g0 + sp_images_);
      std::fill(count, count + OC, 0);
      for (int i = g0; i < g1; ++i) {
        const float* xi = x + size_t(i) * in_sz;
        const float* dyi = dy + size_t(i - i0) * out_sz;
        float* xh = xg + size_t(i - g0) * grid;
        const int32_t first = int32_t(size_t(i - g0) * grid / size_t(C));  // the grid's first row for the kernel
        kernels::chw_to_hwc(xi, C, H, W, xh + inside, size_t(wp), size_t(C));
        // By output channel, after the group's earlier images: the positions p where dy is not zero, in order; the
        // bias gradient is their sum, in the same order. From them, by position (in the channels' order): the
        // channels. Then the channel lists' p become the windows' top-left in this image's grid, the rows of x
        // those of dW read.
        if (dx) std::fill(pcount, pcount + P, 0);
        long nnz = 0;
        for (int o = 0; o < OC; ++o) {
          int32_t* io = idx + size_t(o) * cap + size_t(count[o]);
          float* vo = val + size_t(o) * cap + size_t(count[o]);
          const int n = kernels::nonzero_list_sparse(dyi + size_t(o) * P, P, io, vo);
          float s = 0;
          for (int j = 0; j < n; ++j) {
            s += vo[j];
            if (dx) {
              const size_t r = size_t(sp_row_[size_t(io[j])]), at = r * OC + size_t(pcount[r]++);
              pidx[at] = o;
              pval[at] = vo[j];
            }
            io[j] = first + sp_pad_[size_t(io[j])];
          }
          count[o] += n;
          nnz += n;
          db[o] += s;
        }
        if (!dx) continue;
        std::fill(dxh, dxh + grid, 0.0f);
        if (nnz <= kScatterPerRow * long(P)) {  // a few channels per position: each added straight into dx
          kernels::spmm_scatter(0, P, pcount, OC, pidx, pval, sp_wh_.data(), kkc, size_t(kc), dxh, sp_at_.data(),
                                size_t(wp) * C, k, kc);
        } else {
          for (int ky = 0; ky < k; ++ky)
            kernels::spmm_rows_at(0, P, pcount, OC, pidx, pval, sp_wh_.data() + size_t(ky) * kc, kkc, kc,
                                  dxh + size_t(ky) * wp * C, sp_at_.data(), true);
        }
        float* dxi = dx + size_t(i) * in_sz;
        kernels::hwc_to_chw(dxh + inside, size_t(wp), size_t(C), C, H, W, dxi);
      }
      // dW over the group at once, each channel's list running through every image (long lists: fewer loads and
      // stores of dW's rows, fewer loop ends)
      for (int ky = 0; ky < k; ++ky)
        kernels::spmm_rows(0, OC, count, int(cap), idx, val, xg + size_t(ky) * wp * C, size_t(C), kc, dwh + size_t(ky) * kc,
                           kkc, g0 != i0);
    }
    // added in [oc][c][k][k] from dwh's [oc][k][k][c]
    for (int o = 0; o < OC; ++o)
      for (int c = 0; c < C; ++c)
        for (int tp = 0; tp < k * k; ++tp)
          dw[(size_t(o) * C + size_t(c)) * k * k + size_t(tp)] += dwh[(size_t(o) * k * k + size_t(tp)) * C + size_t(c)];
  }
  bool last_backward_sparse() const override { return last_sparse_; }
  bool backward_reads_output() const override { return false; }
  // Inference: the Winograd path's transformed weights are made once.
  void freeze(bool on) override {
    frozen_ = false;
    if constexpr (std::is_same_v<T, float>) {
      if (!on || !winograd()) return;
      wu_.resize(kernels::winograd_weights_floats(g_));
      kernels::winograd_weights(g_, this->params_[0].value, wu_.data());
      frozen_ = true;
    }
  }
  std::string torch_module() const override {
    std::string t = "nn.Conv2d(" + std::to_string(g_.c) + ", " + std::to_string(g_.oc) + ", " + std::to_string(g_.k);
    if (g_.stride != 1) t += ", stride=" + std::to_string(g_.stride);
    if (g_.pad != 0) t += ", padding=" + std::to_string(g_.pad);
    return t + ")";
  }

 private:
  size_t K() const { return size_t(g_.c) * g_.k * g_.k; }
  size_t P() const { return size_t(g_.oh) * g_.ow; }
  // A 1x1 convolution with stride 1 and no padding needs no im2col: the image is its own column matrix.
  bool pointwise() const { return g_.k == 1 && g_.stride == 1 && g_.pad == 0; }
  // float, stride 1: forward and input gradient by direct convolution (kernels/conv_hwy.cpp), weight gradient by
  // im2col + GEMM. double (the gradient checks) and other strides: im2col + GEMM throughout.
  bool direct() const { return std::is_same_v<T, float> && kernels::direct_conv_applies(g_); }
  // float, stride 1, 3x3 or 5x5, at least 8 input channels: the forward pass by Winograd's F(4x4, 3x3) or
  // F(4x4, 5x5) (kernels/winograd.h) instead of the direct convolution
  bool winograd() const { return std::is_same_v<T, float> && kernels::winograd_applies(g_); }
  // The same for the direct path's input gradient, a stride-1 convolution of dy (input_grad_geometry: dy's oc
  // channels in, padding k - 1 - pad): 3x3 or 5x5 and at least 8 output channels.
  bool winograd_dx() const { return direct() && kernels::winograd_applies(kernels::input_grad_geometry(g_)); }
  // Both: the dense backward's weight gradient by Winograd too (kernels::winograd_weight_grad_image), with the
  // input channels and the output channels in the vector lanes.
  bool winograd_dw() const { return winograd() && winograd_dx(); }
  // float, stride 1, a window row of at least 8 floats (k * c; the first layer of an image net, c = 1, is not: its
  // 5-float rows through these lists, 8 floats at a time, were measured no faster than the direct path, at 11-13%
  // non-zero) and at least two output rows (the input gradient's pairs of windows must not overlap): the sparse
  // backward can run, chunk by chunk, when at most kSparseDensity of the chunk's dy is non-zero.
  bool sparse_applies() const { return direct() && g_.k * g_.c >= 8 && g_.oh >= 2; }
  // The other layers of the direct path (rows of taps shorter than 8 floats) with no input gradient to compute (a
  // network's first layer): the weight gradient from dy's non-zero entries when a chunk's dy is mostly zero
  // (kernels::patch_weight_grad: each row of dW in a register, no lists). In the reference CNN's first convolution
  // (11-13% of dy non-zero) the training step ran 2-6% faster than with the direct weight gradient in eight of
  // nine in-process A/B runs (docs/benchmarks.md, runs 32-35).
  bool patch_applies() const { return direct() && g_.k * g_.c < 8; }
  // Thread t's share of group_: kGroup images of padded input planes and gridded dy (direct_grad_image_floats each)
  float* thread_group(int t) { return group_.data() + size_t(t) * kernels::direct_grad_image_floats(g_) * kGroup; }
  static constexpr double kSparseDensity = 0.25;
  // The sparse path's lists per thread: by channel over a chunk's images, then by position over one image
  size_t sparse_lists() const { return (size_t(sp_images_) + 1) * P() * size_t(g_.oc); }
  // Up to this many non-zero channels per position on average, dx takes spmm_scatter (each entry added into dx at
  // once) rather than spmm_rows_at, whose loops of a few iterations mostly mispredict: in isolation, for the CNN's
  // second convolution, 12.9 against 27.3 us per image at 6% of dy non-zero (1.9 per position), 38 against 52 at
  // 12%, 58 against 76 at 18%, and 90 against 71 at 30% (9.6 per position).
  static constexpr long kScatterPerRow = 6;
  static constexpr int kChunks = 16;  // the batch's images are split into this many chunks in backward
  static constexpr int kGroup = 8;    // direct path: images per weight-gradient call
  kernels::ConvGeometry g_{};
  int threads_ = 1;  // the threads reserve sized the scratch for
  // The threads a parallel loop here takes: as many as OpenMP is set to (the trainer may run a step on fewer than
  // reserve saw: thread_governor.h), within the scratch's room
  int team() const { return std::max(1, std::min(threads_, omp_get_max_threads())); }
  int chunk_images_ = 1, capacity_ = 0;  // reserve's batch, and the most images in one of its chunks
  Buffer<T> col_, dw_, plane_;
  Buffer<T> chain_dy_;  // backward_chained: per thread, a chunk's dy
  // direct path: per-thread scratch, packed forward and input-gradient weights, per-thread weight-gradient groups
  Buffer<float> scratch_, wr_, wt_, group_;
  size_t direct_scratch_ = 0;
  // Winograd path: the transformed weights (made once while frozen) and per-thread scratch, zero from allocation
  Buffer<float> wu_, wino_;
  // Winograd input gradient: the flipped weights, transformed; per-thread scratch as wino_'s
  Buffer<float> wut_, wino_dx_;
  bool wut_ready_ = false;  // wut_ holds this backward's weights (set under the critical section above)
  // Winograd weight gradient: per thread, the transformed products' sums and the scratch (zero when allocated)
  Buffer<float> wgm_, wgs_;
  bool frozen_ = false;
  // sparse path (sparse_backward): per-thread grids, weight-gradient accumulators and lists; shared weights in
  // [oc][k][k][c] and the input gradient's window offsets
  Buffer<float> sp_grid_, sp_dw_, sp_val_, sp_wh_;
  Buffer<int32_t> sp_idx_, sp_count_, sp_at_, sp_pad_, sp_row_;
  bool last_sparse_ = false;
  int sp_images_ = 1;
};

template <class T>
class Pool2D final : public Layer<T> {
 public:
  using Layer<T>::Layer;
  Shape build(const Shape& in) override {
    const auto& s = this->spec_;
    need_image(s, in);
    g_ = {in[0], in[1], in[2], in[0], s.kernel, s.stride, 0, 0, 0};
    g_.oh = pooled(g_.h, g_.k, g_.stride, 0);
    g_.ow = pooled(g_.w, g_.k, g_.stride, 0);
    if (g_.h < g_.k || g_.w < g_.k) shape_error(s, in, "is smaller than the pooling window " + std::to_string(g_.k));
    if (max() && g_.k > kernels::kMaxPoolWindow)  // (the parser refuses it first; a LayerSpec built in code may not)
      throw Error(detail::layer_name(s) + ": a max-pooling window of at most " +
                  std::to_string(kernels::kMaxPoolWindow) + " (its argmax is one byte), not " + std::to_string(g_.k));
    this->in_ = in;
    this->out_ = {g_.c, g_.oh, g_.ow};
    return this->out_;
  }
  void reserve(int batch) override {
    if (max()) argmax_.resize(size_t(batch) * numel(this->out_));
  }
  void forward(const T* x, T* y, int n, bool) override { forward_examples(x, y, 0, n); }
  bool per_example() const override { return true; }
  void forward_examples(const T* x, T* y, int i0, int i1) override {
    if (max()) kernels::maxpool_forward(g_, x, y, argmax_.data() + numel(this->out_) * size_t(i0), i1 - i0);
    else kernels::avgpool_forward(g_, x, y, i1 - i0);
  }
  // backward reads the argmax; the gate of backward_through_relu is y (a window's maximum is positive)
  bool relu_backward_from_output() const override { return max(); }
  // Over the threads by blocks of examples (the average pooling's backward took 2 ms for 128 images of 16 x 28 x 28
  // on one thread): each example's planes are its own, so the split changes no result.
  void backward(const T*, const T*, const T* dy, T* dx, int n) override {
    if (!dx) return;
    const size_t in = numel(this->in_), out = numel(this->out_);
    kernels::parallel_chunks(size_t(n), kernels::items_per_chunk(in), [&](size_t i0, size_t rows) {
      const T* d = dy + i0 * out;
      T* x = dx + i0 * in;
      if (max()) kernels::maxpool_backward(g_, d, argmax_.data() + i0 * out, x, int(rows));
      else kernels::avgpool_backward(g_, d, x, int(rows));
    });
  }
  bool backward_through_relu(const T*, const T* y, const T* dy, T* dx, int n) override {
    return backward_through_relu_examples(y, dy, dx, 0, n);
  }
  bool backward_through_relu_examples(const T* y, const T* dy, T* dx, int i0, int i1) override {
    if (!max()) return false;
    kernels::maxpool_backward(g_, dy, argmax_.data() + numel(this->out_) * size_t(i0), dx, i1 - i0, y);
    return true;
  }
  std::string torch_module() const override {
    std::string t = std::string(max() ? "nn.MaxPool2d(" : "nn.AvgPool2d(") + std::to_string(g_.k);
    if (g_.stride != g_.k) t += ", stride=" + std::to_string(g_.stride);
    return t + ")";
  }

 private:
  bool max() const { return this->spec_.kind == LayerKind::maxpool; }
  kernels::ConvGeometry g_{};
  Buffer<uint8_t> argmax_;  // each window's argmax, ki k + kj
};

// Mean over each channel: [C, H, W] -> [C, 1, 1], as nn.AdaptiveAvgPool2d(1).
template <class T>
class GlobalAvgPool final : public Layer<T> {
 public:
  using Layer<T>::Layer;
  Shape build(const Shape& in) override {
    need_image(this->spec_, in);
    this->in_ = in;
    this->out_ = {in[0], 1, 1};
    return this->out_;
  }
  // Both over the threads by blocks of planes (each plane's sum in order, by one thread: the split changes no
  // result); on one thread the forward took 535 us for 128 examples of 32 x 14 x 14.
  void forward(const T* x, T* y, int n, bool) override {
    const size_t C = size_t(n) * this->in_[0], P = size_t(this->in_[1]) * this->in_[2];
    kernels::parallel_chunks(C, kernels::items_per_chunk(P), [&](size_t c0, size_t count) {
      for (size_t c = c0; c < c0 + count; ++c) {
        double s = 0;
        for (size_t p = 0; p < P; ++p) s += x[c * P + p];
        y[c] = T(s / double(P));
      }
    });
  }
  void backward(const T*, const T*, const T* dy, T* dx, int n) override {
    if (!dx) return;
    const size_t C = size_t(n) * this->in_[0], P = size_t(this->in_[1]) * this->in_[2];
    kernels::parallel_chunks(C, kernels::items_per_chunk(P), [&](size_t c0, size_t count) {
      for (size_t c = c0; c < c0 + count; ++c)
        for (size_t p = 0; p < P; ++p) dx[c * P + p] = dy[c] / T(P);
    });
  }
  std::string torch_module() const override { return "nn.AdaptiveAvgPool2d(1)"; }
};

// Batch normalisation over the batch (and the spatial positions of an image): nn.BatchNorm1d for [C] inputs,
// nn.BatchNorm2d for [C, H, W]. eps 1e-5, momentum 0.1, running variance unbiased, as PyTorch.
template <class T>
class BatchNorm final : public Layer<T> {
 public:
  using Layer<T>::Layer;
  static constexpr double kEps = 1e-5, kMomentum = 0.1;
  Shape build(const Shape& in) override {
    if (in.size() != 1 && in.size() != 3) shape_error(this->spec_, in, "is neither a vector [C] nor an image [C, H, W]");
    this->in_ = this->out_ = in;
    C_ = in[0];
    P_ = in.size() == 3 ? in[1] * in[2] : 1;
    this->params_ = {{"weight", {C_}}, {"bias", {C_}}};
    running_mean_.resize(size_t(C_));
    running_var_.resize(size_t(C_));
    mean_.resize(size_t(C_));
    invstd_.resize(size_t(C_));
    sums_.resize(2 * size_t(C_));
    coef_.resize(2 * size_t(C_));
    for (int c = 0; c < C_; ++c) running_var_[c] = T(1);
    this->states_ = {{"running_mean", {C_}, running_mean_.data(), nullptr},
                     {"running_var", {C_}, running_var_.data(), nullptr},
                     {"num_batches_tracked", {}, nullptr, &tracked_}};
    return this->out_;
  }
  void init(const InitSpec&, Rng&) override {
    for (int c = 0; c < C_; ++c) {
      this->params_[0].value[c] = T(1);
      this->params_[1].value[c] = T(0);
      running_mean_[c] = T(0);
      running_var_[c] = T(1);
    }
    tracked_ = 0;
  }
  // x (n, C, P). Each channel's sums in double, over the examples in order; the channels split over the threads,
  // each thread sweeping the batch row by row over its own channels. A dense layer's batch (P = 1: the channels
  // side by side in a row) is read contiguously and its channels' sums run side by side in vectors, each added in
  // the order of a plain per-channel loop; an image's P positions are summed first in four interleaved lanes
  // (lanes4), then added to the channel's sum. The plain per-channel loops (rows read with a stride of C, every
  // channel one dependent chain of additions, one thread) took 156 us forward and 178 backward for a batch of
  // 128 x 256, and 2.9 and 6.3 ms for 128 images of 16 x 28 x 28.
  void forward(const T* x, T* y, int n, bool training) override {
    training_ = training;
    if (training) ++tracked_;
    over_channels(n, [&](int c0, int c1) {
      if (P_ == 1) forward_channels<true>(x, y, n, training, c0, c1);
      else forward_channels<false>(x, y, n, training, c0, c1);
    });
  }
  void backward(const T* x, const T*, const T* dy, T* dx, int n) override {
    over_channels(n, [&](int c0, int c1) {
      if (P_ == 1) backward_channels<true>(x, dy, dx, n, c0, c1);
      else backward_channels<false>(x, dy, dx, n, c0, c1);
    });
  }
  std::string torch_module() const override {
    return std::string(this->in_.size() == 3 ? "nn.BatchNorm2d(" : "nn.BatchNorm1d(") + std::to_string(C_) + ")";
  }

 private:
  // f(c0, c1) for blocks of channels, over the threads when the batch is large enough to pay for them (for P = 1
  // blocks of 16 channels: a thread's share of a row is whole cache lines). No result depends on the split.
  template <class F>
  void over_channels(int n, F&& f) {
    const int width = P_ == 1 ? 16 : 1, blocks = (C_ + width - 1) / width;
    const bool par = !omp_in_parallel() && blocks > 1 && size_t(n) * size_t(C_) * size_t(P_) >= 16384;
#pragma omp parallel for schedule(static) if (par)
    for (int b = 0; b < blocks; ++b) f(b * width, std::min(C_, b * width + width));
  }
  // The sum of f(p) over p in [0, P): four interleaved double lanes, added as (0 + 1) + (2 + 3).
  template <class F>
  static double lanes4(int P, F&& f) {
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    int p = 0;
    for (; p + 4 <= P; p += 4) {
      a0 += f(p);
      a1 += f(p + 1);
      a2 += f(p + 2);
      a3 += f(p + 3);
    }
    for (; p < P; ++p) a0 += f(p);
    return (a0 + a1) + (a2 + a3);
  }
  // For each example i and channel c in [c0, c1): f(c, at), at the offset of x (i, c, 0), its P_ positions next.
  template <class F>
  void each_run(int n, int c0, int c1, F&& f) const {
    for (int i = 0; i < n; ++i)
      for (int c = c0; c < c1; ++c) f(c, (size_t(i) * size_t(C_) + size_t(c)) * size_t(P_));
  }
  // Each of the loops below visits x (or dy) as [example][channel in c0..c1)[position], so that every channel's
  // values come in the order of the per-channel loop; kP1: P_ is 1 (the loop over positions folds away).
  template <bool kP1, class F>
  void each(int n, int c0, int c1, F&& f) const {
    const int P = kP1 ? 1 : P_;
    for (int i = 0; i < n; ++i)
      for (int c = c0; c < c1; ++c) {
        const size_t at = (size_t(i) * size_t(C_) + size_t(c)) * size_t(P);
        for (int p = 0; p < P; ++p) f(c, at + size_t(p));
      }
  }
  template <bool kP1>
  void forward_channels(const T* x, T* y, int n, bool training, int c0, int c1) {
    const T* gamma = this->params_[0].value;
    const T* beta = this->params_[1].value;
    const double M = double(n) * P_;
    double* s = sums_.data();
    double* ss = sums_.data() + C_;
    T* scale = coef_.data();
    T* shift = coef_.data() + C_;
    if (training) {
      for (int c = c0; c < c1; ++c) s[c] = ss[c] = 0;
      if constexpr (kP1) {
        each<true>(n, c0, c1, [&](int c, size_t k) { s[c] += x[k]; });
      } else {
        each_run(n, c0, c1, [&](int c, size_t at) { s[c] += lanes4(P_, [&](int p) { return double(x[at + size_t(p)]); }); });
      }
      for (int c = c0; c < c1; ++c) s[c] /= M;  // the mean
      if constexpr (kP1) {
        each<true>(n, c0, c1, [&](int c, size_t k) {
          const double d = x[k] - s[c];
          ss[c] += d * d;
        });
      } else {
        each_run(n, c0, c1, [&](int c, size_t at) {
          ss[c] += lanes4(P_, [&](int p) {
            const double d = x[at + size_t(p)] - s[c];
            return d * d;
          });
        });
      }
    }
    for (int c = c0; c < c1; ++c) {
      double mean, var;
      if (training) {
        mean = s[c];
        var = ss[c] / M;
        running_mean_[c] = T((1 - kMomentum) * running_mean_[c] + kMomentum * mean);
        running_var_[c] = T((1 - kMomentum) * running_var_[c] + kMomentum * (M > 1 ? var * M / (M - 1) : var));
      } else {
        mean = running_mean_[c];
        var = running_var_[c];
      }
      const double inv = 1.0 / std::sqrt(var + kEps);
      mean_[c] = T(mean);
      invstd_[c] = T(inv);
      scale[c] = T(gamma[c] * inv);
      shift[c] = T(beta[c] - mean * gamma[c] * inv);
    }
    each<kP1>(n, c0, c1, [&](int c, size_t k) { y[k] = x[k] * scale[c] + shift[c]; });
  }
  template <bool kP1>
  void backward_channels(const T* x, const T* dy, T* dx, int n, int c0, int c1) {
    const T* gamma = this->params_[0].value;
    T* dgamma = this->params_[0].grad;
    T* dbeta = this->params_[1].grad;
    const double M = double(n) * P_;
    double* sdy = sums_.data();        // sum dy
    double* sdyx = sums_.data() + C_;  // sum dy * xhat
    for (int c = c0; c < c1; ++c) sdy[c] = sdyx[c] = 0;
    if constexpr (kP1) {
      each<true>(n, c0, c1, [&](int c, size_t k) {
        const double mean = mean_[c], inv = invstd_[c];
        sdy[c] += dy[k];
        sdyx[c] += dy[k] * (x[k] - mean) * inv;
      });
    } else {
      each_run(n, c0, c1, [&](int c, size_t at) {
        const double mean = mean_[c], inv = invstd_[c];
        const T* d = dy + at;
        const T* xc = x + at;
        sdy[c] += lanes4(P_, [&](int p) { return double(d[p]); });
        sdyx[c] += lanes4(P_, [&](int p) { return d[p] * (xc[p] - mean) * inv; });
      });
    }
    for (int c = c0; c < c1; ++c) {
      dgamma[c] += T(sdyx[c]);
      dbeta[c] += T(sdy[c]);
    }
    if (!dx) return;
    each<kP1>(n, c0, c1, [&](int c, size_t k) {
      const double g = gamma[c], mean = mean_[c], inv = invstd_[c];
      if (training_) {
        const double xhat = (x[k] - mean) * inv;
        dx[k] = T(g * inv * (dy[k] - sdy[c] / M - xhat * sdyx[c] / M));
      } else {
        dx[k] = T(g * inv * dy[k]);
      }
    });
  }

  int C_ = 0, P_ = 1;
  Buffer<T> running_mean_, running_var_, mean_, invstd_;
  Buffer<double> sums_;  // per channel: the two sums of forward or backward
  Buffer<T> coef_;       // per channel: the scale and the shift of forward
  int64_t tracked_ = 0;
  bool training_ = true;
};

template <class T>
std::unique_ptr<Layer<T>> make_conv_layer(const LayerSpec& spec) {
  switch (spec.kind) {
    case LayerKind::conv: return std::make_unique<Conv2D<T>>(spec);
    case LayerKind::maxpool: case LayerKind::avgpool: return std::make_unique<Pool2D<T>>(spec);
    case LayerKind::gap: return std::make_unique<GlobalAvgPool<T>>(spec);
    case LayerKind::batchnorm: return std::make_unique<BatchNorm<T>>(spec);
    default: throw Error("layer kind not implemented: " + layer_text(spec));
  }
}

template std::unique_ptr<Layer<float>> make_conv_layer<float>(const LayerSpec&);
template std::unique_ptr<Layer<double>> make_conv_layer<double>(const LayerSpec&);

}  // namespace rectifier
