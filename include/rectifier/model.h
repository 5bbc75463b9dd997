// A Sequential model: layers in order, all parameters in one flat block (so optimizers and clipping are one
// loop), and one activation and one gradient buffer per layer, sized once per batch size.
#pragma once
#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include "rectifier/arch.h"
#include "rectifier/init.h"
#include "rectifier/layers.h"

namespace rectifier {

// One named tensor of the model's state, in PyTorch's state_dict naming ("0.weight", "3.running_mean").
template <class T>
struct NamedTensor {
  std::string name;
  Shape shape;
  T* value = nullptr;
  int64_t* counter = nullptr;  // integer tensors (num_batches_tracked)
};

// Sees each layer's output as the forward pass makes it (the monitor's activation statistics, taken while the rows
// are in cache and on the threads that made them). begin_forward(n) first, then rows_done(layer, i0, i1, x, y) once
// rows (examples) [i0, i1) of the layer's output are final, x and y pointing at example i0's input and output: from
// the thread that made them, inside the parallel loop of a chained layer (concurrently for disjoint ranges), or from
// the caller's thread after the layer's forward. x and y may be a thread's scratch, valid only during the call.
template <class T>
struct ForwardObserver {
  virtual ~ForwardObserver() = default;
  virtual void begin_forward(int n) = 0;
  virtual void rows_done(size_t layer, int i0, int i1, const T* x, const T* y) = 0;
  // Whether this forward pass must keep every layer's output for the observer to read after it (layer_output).
  virtual bool wants_outputs() const { return false; }
};

template <class T>
class Predictor;

template <class T>
class Model {
 public:
  // Builds the layers for examples of shape `input`. Throws Error naming the layer and both shapes on a mismatch.
  Model(const std::vector<LayerSpec>& specs, const Shape& input);
  Model(Model&&) noexcept = default;
  Model& operator=(Model&&) noexcept = default;

  void init(const InitSpec& spec, uint64_t seed);
  // Sizes the per-layer buffers for batches of up to `batch` examples (a no-op when already so sized).
  void reserve(int batch);
  int capacity() const { return capacity_; }

  // x: (n, input). Returns the output (n, output_shape), valid until the next forward.
  const T* forward(const T* x, int n, bool training);
  // Backward from dloss/doutput (n, output). Adds into grads(): call zero_grad() (or discard_grads()) first.
  // `extra` (optional) may add to the gradient of each layer's output before that layer's backward runs
  // (activation penalties).
  void backward(const T* doutput, int n, const std::function<void(size_t, T*, int)>& extra = {});
  void zero_grad();
  // zero_grad without its pass over the gradients: the next backward writes them where it would add (dense layers;
  // the model zeroes the other layers' first), as PyTorch's zero_grad(set_to_none=True). Until then grads() zeroes
  // them when asked (the gradients are the same as after zero_grad to anyone who reads them through the model);
  // only a layer's own backward, called directly, would find the stale values in Param::grad. The trainer calls it
  // after each update: the optimizer's pass then writes no zeros (Optimizer::step).
  void discard_grads() { grads_stale_ = true; }
  // When on, backward also computes the gradient with respect to the input x (input_grad(), shape (n, input)).
  void set_input_grad(bool on) {
    want_input_grad_ = on;
    if (on) dinput_.resize(size_t(capacity_) * numel(input_shape_));
  }
  const T* input_grad() const { return dinput_.data(); }

  size_t num_layers() const { return layers_.size(); }
  Layer<T>& layer(size_t i) { return *layers_[i]; }
  const Layer<T>& layer(size_t i) const { return *layers_[i]; }
  // Layer i's input and output for the last forward (input of layer 0 is the caller's x, or in training its
  // 64-byte aligned copy when x is not aligned).
  // A view layer's (flatten) output is its input. Null for an output the last forward did not keep (below).
  const T* layer_input(size_t i) const { return i == 0 ? input_ : out_[i - 1]; }
  const T* layer_output(size_t i) const { return out_[i]; }
  // On (the default), forward keeps every layer's output. Off, it keeps what backward reads: a convolution's output
  // and the ReLU's after it, chained into a max pooling, are then made image by image in each thread's scratch and
  // read there by the ReLU and the pooling, never written to memory (20 of the reference CNN's 22 MB of activations
  // per batch of 128), and layer_output is null for them. Backward then takes no `extra` hook. The trainer turns it
  // off (but with an activation penalty), and so does Predictor; an observer that wants the outputs of a pass
  // (ForwardObserver::wants_outputs) gets them all.
  void set_keep_outputs(bool on) { keep_outputs_ = on; }
  bool keep_outputs() const { return keep_outputs_; }
  // Gradient of the loss with respect to layer i's output, for the last backward: null for a ReLU whose backward
  // ran inside the max pooling or dense layer after it (Layer::backward_through_relu), and for a convolution before
  // such a ReLU and max pooling, whose gradient was made chunk by chunk in its own scratch (Layer::backward_chained);
  // not when backward has an `extra` hook.
  const T* layer_output_grad(size_t i) const { return dout_[i]; }

  const Shape& input_shape() const { return input_shape_; }
  const Shape& output_shape() const { return layers_.back()->out_shape(); }
  const std::vector<LayerSpec>& specs() const { return specs_; }
  std::string arch() const { return arch_text(specs_); }

  T* params() { return params_.data(); }
  T* grads() {
    if (grads_stale_) zero_grad();
    return grads_.data();
  }
  size_t num_params() const { return params_.size(); }
  // Every tensor of the state, in state_dict order; parameters first within each layer.
  std::vector<NamedTensor<T>> state();
  // PyTorch source that builds the same network: "nn.Sequential(nn.Linear(784, 256), nn.ReLU(), ...)".
  std::string torch_source() const;

  void seed_layers(uint64_t seed);

  // Every forward pass reports to the observers (not owned; remove one before it goes).
  void add_observer(ForwardObserver<T>* o) { observers_.push_back(o); }
  void remove_observer(ForwardObserver<T>* o) { std::erase(observers_, o); }

 private:
  friend class Predictor<T>;
  // Inference only (Predictor, which owns the model): each layer may keep its parameters in a layout of its own
  // (Layer::freeze); no observers.
  void freeze(bool on) {
    for (auto& l : layers_) l->freeze(on);
    if (on) observers_.clear();
  }
  void observe(size_t layer, int i0, int i1, const T* x, const T* y) {
    for (ForwardObserver<T>* o : observers_) o->rows_done(layer, i0, i1, x, y);
  }
  bool plain_relu(size_t i) const;  // layer i is a ReLU with derivative 0 at 0
  // Where backward writes the gradient of layer i's input: the previous layer's output gradient, or for layer 0 the
  // model's input gradient (null unless set_input_grad)
  T* input_grad_buffer(size_t i) { return i > 0 ? dacts_[i - 1].data() : (want_input_grad_ ? dinput_.data() : nullptr); }
  // Whether backward reads none of the outputs of layers [i, j - 1) of a chain [i, j) (Model::forward).
  bool chain_outputs_unread(size_t i, size_t j) const;
  std::vector<LayerSpec> specs_;
  Shape input_shape_;
  std::vector<std::unique_ptr<Layer<T>>> layers_;
  Buffer<T> params_, grads_;
  std::vector<Buffer<T>> acts_, dacts_;  // a view layer has no output buffer
  std::vector<const T*> out_;            // each layer's output for the last forward (a view's: its input)
  std::vector<Buffer<T>> transient_;     // per layer: one example's output per thread (set_keep_outputs(false))
  int chain_threads_ = 1;                // the threads transient_ has room for
  bool keep_outputs_ = true, dropped_ = false;  // dropped_: the last forward kept not every output
  std::vector<T*> dout_;                 // each layer's output gradient for the last backward
  Buffer<T> dinput_;
  Buffer<T> aligned_input_;  // a training batch's copy, when the caller's is not 64-byte aligned (forward)
  const T* input_ = nullptr;
  int capacity_ = 0;
  bool want_input_grad_ = false;
  bool grads_stale_ = false;  // discard_grads: the next backward overwrites the gradients
  std::vector<ForwardObserver<T>*> observers_;
};

// A model with what it needs beyond its layers: how inputs are scaled and what the outputs mean.
struct ModelInfo {
  std::string arch;
  Shape input;
  std::string loss = "cross_entropy";
  double input_scale = 1.0;          // images: 1/255, applied per batch to the uint8 pixels
  int classes = 10;
  std::map<std::string, std::string> extra;  // training settings recorded in the file
};

}  // namespace rectifier
