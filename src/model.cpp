#include "rectifier/model.h"

#include <omp.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include "kernels/parallel.h"
#include "rectifier/error.h"

namespace rectifier {

// tensor.h's allocation for large blocks (kept here with shape_str, tensor.h's other out-of-line function).
// Rounded up to whole huge pages: a block of 2.1 MB takes two, the second mostly unused (Buffer zero-fills its
// bytes only, but the kernel backs a touched huge page whole).
void* alloc_huge(size_t bytes) {
  const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = std::aligned_alloc(kHugePage, rounded);
  if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  (void)madvise(p, rounded, MADV_HUGEPAGE);  // a hint: without it (or THP off) the pages are 4 KB, as before
#endif
  return p;
}

void free_huge(void* p) noexcept { std::free(p); }

std::string shape_str(const Shape& s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

template <class T>
Model<T>::Model(const std::vector<LayerSpec>& specs, const Shape& input) : specs_(specs), input_shape_(input) {
  if (specs.empty()) throw Error("architecture: no layers");
  Shape shape = input;
  size_t total = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    layers_.push_back(make_layer<T>(specs[i]));
    try {
      shape = layers_.back()->build(shape);
    } catch (const Error& e) {
      throw Error("layer " + std::to_string(i) + " " + e.what());
    }
    for (const auto& p : layers_.back()->params()) total += p.size();
  }
  params_.resize(total);
  grads_.resize(total);
  size_t off = 0;
  for (auto& l : layers_)
    for (auto& p : l->params()) {
      p.value = params_.data() + off;
      p.grad = grads_.data() + off;
      off += p.size();
    }
  acts_.resize(layers_.size());
  dacts_.resize(layers_.size());
  transient_.resize(layers_.size());
  out_.assign(layers_.size(), nullptr);
  dout_.assign(layers_.size(), nullptr);
}

template <class T>
void Model<T>::init(const InitSpec& spec, uint64_t seed) {
  Rng rng(seed);
  for (auto& l : layers_) l->init(spec, rng);
  seed_layers(seed ^ 0x5eed5eedULL);
}

template <class T>
void Model<T>::seed_layers(uint64_t seed) {
  for (size_t i = 0; i < layers_.size(); ++i) layers_[i]->seed(seed + 7919 * i);
}

template <class T>
void Model<T>::reserve(int batch) {
  if (batch <= capacity_) return;
  chain_threads_ = omp_get_max_threads();  // as the layers' own per-thread scratch, sized in their reserve
  for (size_t i = 0; i < layers_.size(); ++i) {
    const size_t n = size_t(batch) * numel(layers_[i]->out_shape());
    if (!layers_[i]->is_view()) acts_[i].resize(n);
    if (!layers_[i]->is_view() && i + 1 < layers_.size() && layers_[i + 1]->per_example())
      transient_[i].resize(size_t(chain_threads_) * numel(layers_[i]->out_shape()));
    dacts_[i].resize(n);
    out_[i] = layers_[i]->is_view() ? nullptr : acts_[i].data();
    dout_[i] = dacts_[i].data();
    layers_[i]->reserve(batch);
  }
  if (want_input_grad_) dinput_.resize(size_t(batch) * numel(input_shape_));
  capacity_ = batch;
}

template <class T>
const T* Model<T>::forward(const T* x, int n, bool training) {
  reserve(n);
  bool keep = keep_outputs_;
  for (ForwardObserver<T>* o : observers_) {
    o->begin_forward(n);
    keep = keep || o->wants_outputs();
  }
  // A training batch not 64-byte aligned is copied to one that is: backward reads the first layer's input row by row
  // (the dense layers' sparse dW), and a reference MLP step took 13-16% longer from a std::vector's rows.
  if (training && n > 0 && reinterpret_cast<uintptr_t>(x) % 64 != 0) {
    const size_t m = size_t(n) * numel(input_shape_);
    if (aligned_input_.size() < m) aligned_input_.resize(size_t(capacity_) * numel(input_shape_));
    std::memcpy(aligned_input_.data(), x, m * sizeof(T));
    x = aligned_input_.data();
  }
  input_ = x;
  dropped_ = false;
  const T* in = x;
  const size_t L = layers_.size();
  for (size_t i = 0; i < L; ++i) {
    // The per-example layers after this one (ReLU, max pooling after a convolution) run inside its parallel loop,
    // image by image, while its output is still in cache.
    size_t j = i + 1;
    while (j < L && layers_[j]->per_example()) ++j;
    if (j > i + 1) {
      for (size_t k = i + 1; k < j; ++k) layers_[k]->begin_examples(n);
      // Outputs [i, j - 1) in each thread's scratch when backward will not read them (set_keep_outputs).
      bool transient = !keep && chain_outputs_unread(i, j);
      auto rows = [&](size_t k, int i0, int t) -> T* {
        return transient && k + 1 < j ? transient_[k].data() + size_t(t) * numel(layers_[k]->out_shape())
                                      : acts_[k].data() + size_t(i0) * numel(layers_[k]->out_shape());
      };
      const size_t in_per = numel(layers_[i]->in_shape());
      const auto then = [&](int i0, int i1) {
        const int t = omp_get_thread_num();
        observe(i, i0, i1, in + size_t(i0) * in_per, rows(i, i0, t));
        for (size_t k = i + 1; k < j; ++k) {
          const T* xk = rows(k - 1, i0, t);
          T* yk = rows(k, i0, t);
          layers_[k]->forward_examples(xk, yk, i0, i1);
          observe(k, i0, i1, xk, yk);
        }
      };
      const ChainOut<T> kept{acts_[i].data(), nullptr, numel(layers_[i]->out_shape()), 0};
      const ChainOut<T> scratch{nullptr, transient_[i].data(), kept.per, chain_threads_};
      bool chained = transient && layers_[i]->forward_then(in, scratch, n, training, then);
      if (!chained) {
        transient = false;
        chained = layers_[i]->forward_then(in, kept, n, training, then);
      }
      if (chained) {
        for (size_t k = i; k < j; ++k) out_[k] = transient && k + 1 < j ? nullptr : acts_[k].data();
        dropped_ = dropped_ || transient;
        in = out_[j - 1];
        i = j - 1;
        continue;
      }
    }
    if (!layers_[i]->is_view()) layers_[i]->forward(in, acts_[i].data(), n, training);
    out_[i] = layers_[i]->is_view() ? in : acts_[i].data();
    observe(i, 0, n, in, out_[i]);
    in = out_[i];
  }
  return in;
}

// A convolution's output and the ReLU's after it are read by backward only through the ReLU's backward, which the
// max pooling after them takes over (reading its own output and argmax): the chain conv, ReLU, max pooling.
template <class T>
bool Model<T>::chain_outputs_unread(size_t i, size_t j) const {
  return j == i + 3 && !layers_[i]->backward_reads_output() && plain_relu(i + 1) &&
         layers_[i + 2]->relu_backward_from_output();
}

template <class T>
void Model<T>::backward(const T* doutput, int n, const std::function<void(size_t, T*, int)>& extra) {
  if (extra && dropped_)
    throw std::logic_error("Model::backward: an `extra` hook after a forward pass that kept not every output "
                           "(set_keep_outputs(true) first)");
  const size_t L = layers_.size();
  // After discard_grads: the layers that can write their gradients do, the others' are zeroed first.
  struct Overwrite {
    Model& m;
    const bool on;
    explicit Overwrite(Model& model) : m(model), on(model.grads_stale_) {
      m.grads_stale_ = false;
      if (!on) return;
      for (auto& l : m.layers_) {
        if (l->overwrites_grads()) l->set_overwrite_grads(true);
        else for (auto& p : l->params()) std::fill(p.grad, p.grad + p.size(), T(0));
      }
    }
    ~Overwrite() {
      if (on) for (auto& l : m.layers_) l->set_overwrite_grads(false);
    }
  } overwrite(*this);
  T* dy = dacts_[L - 1].data();
  std::memcpy(dy, doutput, sizeof(T) * size_t(n) * numel(output_shape()));
  for (size_t i = L; i-- > 0;) {
    dout_[i] = dy;
    if (extra) extra(i, dy, n);
    if (layers_[i]->is_view() && i > 0) continue;  // the input's gradient is dy itself
    // A convolution, a ReLU, a max pooling: the convolution's backward runs chunk by chunk, each chunk's dy made by
    // the pooling (with the ReLU's backward) into the convolution's scratch: neither output gradient is formed
    // for the batch.
    if (!extra && i > 1 && plain_relu(i - 1) && layers_[i]->relu_backward_from_output()) {
      T* dx = input_grad_buffer(i - 2);
      const size_t per = numel(layers_[i]->out_shape());
      const T* y = out_[i];
      const auto dy_for = [&](int i0, int i1, T* buf) {
        layers_[i]->backward_through_relu_examples(y + size_t(i0) * per, dy + size_t(i0) * per, buf, i0, i1);
      };
      if (layers_[i - 2]->backward_chained(layer_input(i - 2), dy_for, dx, n)) {
        dout_[i - 1] = dout_[i - 2] = nullptr;
        i -= 2;
        dy = dx;
        continue;
      }
    }
    if (!extra && i > 0 && plain_relu(i - 1)) {    // the ReLU's own output gradient is never formed
      T* dx = input_grad_buffer(i - 1);
      if (dx && layers_[i]->backward_through_relu(layer_input(i), out_[i], dy, dx, n)) {
        dout_[--i] = nullptr;
        dy = dx;
        continue;
      }
    }
    T* dx = input_grad_buffer(i);
    if (layers_[i]->is_view()) {
      if (dx) std::memcpy(dx, dy, sizeof(T) * size_t(n) * numel(input_shape_));
    } else {
      layers_[i]->backward(layer_input(i), out_[i], dy, dx, n);
    }
    dy = dx;
  }
}

template <class T>
bool Model<T>::plain_relu(size_t i) const {
  const Activation* a = layers_[i]->activation();
  return a && a->kind == Act::relu && a->param == 0;
}

template <class T>
void Model<T>::zero_grad() {
  // Every step: split over the threads (a megabyte for the reference MLP).
  kernels::parallel_chunks(grads_.size(), size_t(1) << 16, [&](size_t lo, size_t len) {
    if (len) std::memset(static_cast<void*>(grads_.data() + lo), 0, len * sizeof(T));  // none: no buffer at all
  });
  grads_stale_ = false;
}

template <class T>
std::vector<NamedTensor<T>> Model<T>::state() {
  std::vector<NamedTensor<T>> out;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const std::string prefix = std::to_string(i) + ".";
    for (auto& p : layers_[i]->params()) out.push_back({prefix + p.name, p.shape, p.value, nullptr});
    for (auto& s : layers_[i]->states()) out.push_back({prefix + s.name, s.shape, s.value, s.counter});
  }
  return out;
}

template <class T>
std::string Model<T>::torch_source() const {
  std::string t = "nn.Sequential(";
  for (size_t i = 0; i < layers_.size(); ++i) t += (i ? ", " : "") + layers_[i]->torch_module();
  return t + ")";
}

template class Model<float>;
template class Model<double>;

}  // namespace rectifier
