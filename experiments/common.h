// Helpers the experiments share.
#pragma once
#include <cmath>
#include <string>
#include <vector>
#include "rectifier/error.h"
#include "rectifier/experiment.h"
#include "rectifier/io.h"
#include "rectifier/loss.h"
#include "rectifier/monitor.h"
#include "rectifier/plot.h"
#include "rectifier/trainer.h"

namespace rectifier::exp {

// A training configuration with an even work split, so that every figure an experiment reports is reproduced bit
// for bit by the same command on the same machine.
inline TrainConfig train_config() {
  TrainConfig c;
  c.deterministic = true;
  return c;
}
// The first n examples (all if n >= size).
Dataset head(const Dataset& d, size_t n);
// Fashion-MNIST, cut to `train` and `test` examples (0 = all).
DataSplit fashion(size_t train = 0, size_t test = 0);
// An MLP from layer text, initialised.
Model<float> net(const std::string& arch, const Shape& in, InitSpec init, uint64_t seed);
// Fraction of exact zeros in the outputs of every activation layer over the first n examples (eval mode).
double zero_fraction(Model<float>& m, const Dataset& d, size_t n);
// Per activation layer: variance of its output over the first n examples.
std::vector<double> activation_variances(Model<float>& m, const Dataset& d, size_t n);
// One gradient pass over a batch: the L2 norm of each dense layer's weight gradient, in layer order.
std::vector<double> weight_grad_norms(Model<float>& m, const Dataset& d, size_t n);
std::string hidden(int layers, int width, const std::string& act);  // "dense(w) act dense(w) act ..."
Claim claim(std::string claim, std::string paper, std::string published, std::string measured, bool ok, bool clear,
            std::string reason, std::string chart);
std::string fmt(double v, const char* f = "%.3g");
Chart chart(const std::string& title, const std::string& xlabel, const std::string& ylabel);
void say(const ExperimentOptions& o, const std::string& line);

Experiment speed();
Experiment vanishing();
Experiment sparsity();
Experiment relu_prime();
Experiment depth_init();
Experiment born_dead();
Experiment dying();
Experiment exploding();

}  // namespace rectifier::exp
