// Layers: each knows its own math (forward and backward over a batch), its parameters and its PyTorch twin;
// none knows the training loop. Concrete layers live in src/layers_*.cpp and are made by make_layer().
#pragma once
#include <cstdint>
#include <memory>
#include <functional>
#include <string>
#include <vector>
#include "rectifier/activation.h"
#include "rectifier/arch.h"
#include "rectifier/init.h"
#include "rectifier/rng.h"
#include "rectifier/tensor.h"

namespace rectifier {

// A trainable tensor: a slice of the model's flat parameter and gradient blocks.
template <class T>
struct Param {
  std::string name;  // PyTorch's attribute name: "weight", "bias"
  Shape shape;
  T* value = nullptr;
  T* grad = nullptr;
  size_t size() const { return numel(shape); }
};

// A saved, non-trainable tensor (batch norm's running statistics).
template <class T>
struct State {
  std::string name;
  Shape shape;
  T* value = nullptr;         // float data, or null for an integer counter
  int64_t* counter = nullptr; // num_batches_tracked
};

// Where a chain's first layer (Layer::forward_then) writes example i's output: y + i * per when y is set (the
// model's buffer for the whole batch), else scratch + t * per on thread t < threads (a transient output: one
// example per thread, overwritten by the thread's next example once the chained layers have read it).
template <class T>
struct ChainOut {
  T* y = nullptr;
  T* scratch = nullptr;
  size_t per = 0;
  int threads = 0;
  T* at(int i, int t) const { return y ? y + size_t(i) * per : scratch + size_t(t) * per; }
};

template <class T>
class Layer {
 public:
  virtual ~Layer() = default;
  const LayerSpec& spec() const { return spec_; }
  LayerKind kind() const { return spec_.kind; }
  // Checks the input shape and returns the output shape; declares params_ (pointers bound later by the model).
  // Throws Error naming the layer and both shapes when the input does not fit.
  virtual Shape build(const Shape& in) = 0;
  // Sizes the workspace for batches of up to `batch` examples. Called once per batch size, never in the loop.
  virtual void reserve(int /*batch*/) {}
  virtual void init(const InitSpec& /*spec*/, Rng& /*rng*/) {}
  // x: (n, in_shape), y: (n, out_shape)
  virtual void forward(const T* x, T* y, int n, bool training) = 0;
  // Adds the parameter gradients into Param::grad; writes dx (n, in_shape) unless dx is null (first layer).
  // x and y are the values forward saw and produced.
  virtual void backward(const T* x, const T* y, const T* dy, T* dx, int n) = 0;
  // The PyTorch module this layer matches, as Python source: "nn.Linear(784, 256)".
  virtual std::string torch_module() const = 0;
  // Reseeds layers that draw random numbers in training (dropout).
  virtual void seed(uint64_t) {}
  // True when the output is the input's bytes under another shape (flatten): the model then passes the input
  // through as the output, and the output's gradient as the input's, with no copy and no buffer.
  virtual bool is_view() const { return false; }
  // Chaining: a layer whose forward is independent per example (activations, pooling) can run inside the parallel
  // loop of the layer before it, range of examples by range, while that layer's output is still in cache
  // (Model::forward chains them after a convolution). begin_examples(n) comes first, on one thread, then
  // forward_examples for disjoint ranges [i0, i1) from any thread; x and y point at example i0's input and output.
  virtual bool per_example() const { return false; }
  virtual void begin_examples(int /*n*/) {}
  virtual void forward_examples(const T* /*x*/, T* /*y*/, int /*i0*/, int /*i1*/) {}
  // forward, writing example i's output at out.at(i, thread) and calling then(i0, i1) on the same thread as soon as
  // examples [i0, i1) are done. Returns false (and does nothing) when the layer cannot, or cannot write to a
  // transient out (out.y null: one example's room per thread); the model then runs the layers one after the other.
  virtual bool forward_then(const T* /*x*/, const ChainOut<T>& /*out*/, int /*n*/, bool /*training*/,
                            const std::function<void(int, int)>& /*then*/) {
    return false;
  }
  // What backward reads, so that the model may drop outputs no one will read (Model::set_keep_outputs): whether
  // backward reads y (its own output), and whether backward_through_relu always runs and reads only y and dy, not
  // x (the ReLU's output: max pooling, which keeps its argmax).
  virtual bool backward_reads_output() const { return true; }
  virtual bool relu_backward_from_output() const { return false; }
  // Backward through this layer and the ReLU (derivative 0 at 0) that feeds it, in one pass: dx is the gradient with
  // respect to the ReLU's input; x, y and dy are this layer's input (the ReLU's output), output and output gradient;
  // the parameter gradients are added as by backward. Max pooling can (a window's gradient passes only where its
  // maximum is positive), and dense layers (where x > 0); other layers return false and the model runs both.
  virtual bool backward_through_relu(const T* /*x*/, const T* /*y*/, const T* /*dy*/, T* /*dx*/, int /*n*/) { return false; }
  // Backward chaining, forward chaining's mirror: backward_through_relu for examples [i0, i1) alone, from any thread,
  // pointers at example i0 (y and dy: this layer's output and its gradient; dx: the ReLU input's gradient). Max
  // pooling can; others return false.
  virtual bool backward_through_relu_examples(const T* /*y*/, const T* /*dy*/, T* /*dx*/, int /*i0*/, int /*i1*/) {
    return false;
  }
  // backward, with dy made chunk by chunk by the layers after this one: dy_for(i0, i1, buf) writes examples
  // [i0, i1) of dy at buf, on the thread that then uses them (a convolution: into a chunk's room in cache, instead
  // of a buffer for the batch written whole and read back). Returns false (and does nothing) when the layer cannot.
  virtual bool backward_chained(const T* /*x*/, const std::function<void(int, int, T*)>& /*dy_for*/, T* /*dx*/,
                                int /*n*/) {
    return false;
  }
  // True when the last backward took its gradients from the non-zero entries of dy alone (dense layers in float,
  // when most of dy is zero, as behind a ReLU).
  virtual bool last_backward_sparse() const { return false; }
  // Whether backward can write its parameter gradients instead of adding to them (Model::discard_grads: the next
  // backward overwrites the stale gradients, as PyTorch's zero_grad(set_to_none=True) has its next backward write
  // them, instead of a pass that zeroes them first). The model sets overwrite_grads_ for that one backward; it
  // zeroes the gradients of the layers that cannot first.
  virtual bool overwrites_grads() const { return false; }
  void set_overwrite_grads(bool on) { overwrite_grads_ = on; }
  // Inference only (on) or training again (off). While on, the parameters do not change, so a layer may keep them in
  // a layout of its own for the forward pass (a dense layer in float: its weights packed once into the panels of
  // its products, instead of at every forward). Predictor, which owns its model, is the one caller.
  virtual void freeze(bool /*on*/) {}

  std::vector<Param<T>>& params() { return params_; }
  const std::vector<Param<T>>& params() const { return params_; }
  std::vector<State<T>>& states() { return states_; }
  const Shape& in_shape() const { return in_; }
  const Shape& out_shape() const { return out_; }
  // Non-null for activation layers: what the monitor watches for dead units and saturation.
  const Activation* activation() const { return spec_.kind == LayerKind::activation ? &spec_.act : nullptr; }

  explicit Layer(const LayerSpec& s) : spec_(s) {}

 protected:
  LayerSpec spec_;
  Shape in_, out_;
  std::vector<Param<T>> params_;
  std::vector<State<T>> states_;
  bool overwrite_grads_ = false;  // this backward writes the parameter gradients (overwrites_grads)
};

template <class T> std::unique_ptr<Layer<T>> make_layer(const LayerSpec& spec);

}  // namespace rectifier
