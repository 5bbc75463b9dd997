// Train a ReLU MLP on Fashion-MNIST with the rectifier library, save it, and load it back.
// Build: part of the project (target example_mlp). Run: build/example_mlp [DATA]   (default fashion-mnist)
#include <cstdio>
#include <vector>
#include "rectifier/error.h"
#include "rectifier/io.h"
#include "rectifier/monitor.h"
#include "rectifier/trainer.h"

int main(int argc, char** argv) {
  using namespace rectifier;
  try {
    DataSplit data = load_data(argc > 1 ? argv[1] : "fashion-mnist");
    ArchContext ctx{data.train.shape, data.train.classes, *parse_activation("relu")};
    Model<float> model(parse_arch("784-256-128-10", ctx), data.train.shape);
    model.init(InitSpec{}, /*seed=*/0);  // He normal, zero bias

    TrainConfig cfg;
    cfg.epochs = 5;
    cfg.optimizer = {OptKind::sgd, /*lr=*/0.05, /*momentum=*/0.9};
    Monitor monitor(model);  // optional: dead units, sparsity, gradient norms, warnings
    train(model, data, cfg, [](const EpochMetrics& m) {
      std::printf("epoch %d  test accuracy %.4f  (%.2fs)\n", m.epoch, m.test_accuracy, m.seconds);
    }, &monitor);

    save_model("mlp.safetensors", model, model_info(model, data.train));
    LoadedModel back = load_model("mlp.safetensors");
    std::printf("reloaded: test accuracy %.4f\n", evaluate(back.model, data.test, LossKind::cross_entropy).accuracy);

    // Inference one example at a time: the predictor owns the model and packs its weights once
    Predictor<float> predictor(std::move(back.model));
    std::vector<float> image(784);
    data.test.gather_range(0, 1, image.data());  // test image 0, scaled as in training
    std::printf("test image 0: class %d (label %d)\n", predictor.predict_class(image.data()), data.test.labels[0]);
  } catch (const Error& e) {
    std::fprintf(stderr, "example: %s\n", e.what());
    return e.exit_code;
  }
}
