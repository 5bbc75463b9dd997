// Inference with a trained model: one example at a time, as a service gets them, or in batches.
//
//   rectifier::Predictor<float> p(rectifier::load_model("model.safetensors").model);
//   const float* scores = p.predict(image);  // one example of p.model().input_shape(), scaled as in training
//
// The predictor owns its model, so nothing else can change the weights while it holds them; it can therefore keep
// them in the layouts inference wants, made once: a dense layer's weights packed into the panels its products read
// (Layer::freeze), which training repacks at every step. One example's product then visits only the rows of the
// panels that its non-zero inputs select: an image's background and the units a ReLU switched off (half of the
// reference MLP's first layer, 70% of its second) cost nothing, where a matrix-vector product reads all of W. The
// outputs are those of Model::forward(x, n, false), up to the order of the sums in a one-example product.
// One call at a time: the outputs live in the predictor's buffers, so a server with several threads gives each
// its own predictor (each call already uses the OpenMP threads when the product is large enough).
#pragma once
#include <utility>
#include "rectifier/model.h"

namespace rectifier {

template <class T>
class Predictor {
 public:
  // Takes the model (std::move it in) and readies it for batches of up to `batch` examples (more are made room for
  // on demand, outside any timed loop one hopes). Its observers are dropped: a predictor runs none.
  // Only the outputs a later layer reads are kept (Model::set_keep_outputs): a convolution's output and the ReLU's
  // after it stay in cache.
  explicit Predictor(Model<T> model, int batch = 1) : model_(std::move(model)), keep_outputs_(model_.keep_outputs()) {
    model_.freeze(true);
    model_.set_keep_outputs(false);
    model_.reserve(batch);
  }
  Predictor(Predictor&&) noexcept = default;
  Predictor& operator=(Predictor&&) noexcept = default;

  // x: (n, input) -> (n, output), valid until the next call.
  const T* predict(const T* x, int n = 1) { return model_.forward(x, n, false); }
  // The index of the largest output of one example (a classifier's prediction).
  int predict_class(const T* x) {
    const T* y = predict(x, 1);
    const int k = int(numel(model_.output_shape()));
    int best = 0;
    for (int j = 1; j < k; ++j)
      if (y[j] > y[best]) best = j;
    return best;
  }

  const Model<T>& model() const { return model_; }
  // The model back, to train it further: the inference layouts are dropped.
  Model<T> release() && {
    model_.freeze(false);
    model_.set_keep_outputs(keep_outputs_);
    return std::move(model_);
  }

 private:
  Model<T> model_;
  bool keep_outputs_;  // the model's setting, given back by release
};

}  // namespace rectifier
