// Helpers shared by the tests: finite-difference gradient checks in double precision and fixture loading.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>
#include "rectifier/arch.h"
#include "rectifier/layers.h"
#include "rectifier/model.h"
#include "rectifier/rng.h"

namespace rectifier::test {

// One layer with its own parameter storage, for checking it alone.
struct LayerRig {
  std::unique_ptr<Layer<double>> layer;
  std::vector<double> params, grads;
  int n;
  LayerRig(const std::string& text, const Shape& in, int batch, uint64_t seed = 1) : n(batch) {
    auto specs = parse_arch(text, ArchContext{});
    layer = make_layer<double>(specs.at(0));
    layer->build(in);
    size_t total = 0;
    for (auto& p : layer->params()) total += p.size();
    params.resize(total);
    grads.resize(total);
    size_t off = 0;
    for (auto& p : layer->params()) { p.value = params.data() + off; p.grad = grads.data() + off; off += p.size(); }
    layer->reserve(batch);
    Rng rng(seed);
    InitSpec init;
    init.bias = 0.1;
    layer->init(init, rng);
    for (auto& v : params) v += 0.05 * rng.normal();  // break symmetries (batch norm starts at 1 and 0)
  }
  size_t in_size() const { return size_t(n) * numel(layer->in_shape()); }
  size_t out_size() const { return size_t(n) * numel(layer->out_shape()); }
};

// Checks d(sum(w * f(x)))/dx and /dparams against central differences. `training` is passed to forward.
inline void gradcheck_layer(LayerRig& rig, std::vector<double> x, bool training = true, double tol = 1e-6,
                            uint64_t seed = 7) {
  Rng rng(seed);
  std::vector<double> w(rig.out_size()), y(rig.out_size()), dx(rig.in_size());
  for (auto& v : w) v = rng.normal();
  auto loss = [&]() {
    rig.layer->forward(x.data(), y.data(), rig.n, training);
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += w[i] * y[i];
    return s;
  };
  loss();
  std::fill(rig.grads.begin(), rig.grads.end(), 0.0);
  rig.layer->backward(x.data(), y.data(), w.data(), dx.data(), rig.n);
  const std::vector<double> g = rig.grads;
  const double h = 1e-6;
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + h; const double lp = loss();
    x[i] = keep - h; const double lm = loss();
    x[i] = keep;
    const double fd = (lp - lm) / (2 * h);
    ASSERT_NEAR(dx[i], fd, tol * std::max(1.0, std::abs(fd))) << "d/dx[" << i << "] of " << layer_text(rig.layer->spec());
  }
  for (size_t i = 0; i < rig.params.size(); ++i) {
    const double keep = rig.params[i];
    rig.params[i] = keep + h; const double lp = loss();
    rig.params[i] = keep - h; const double lm = loss();
    rig.params[i] = keep;
    const double fd = (lp - lm) / (2 * h);
    ASSERT_NEAR(g[i], fd, tol * std::max(1.0, std::abs(fd))) << "d/dparam[" << i << "] of " << layer_text(rig.layer->spec());
  }
}

inline std::vector<double> random_vec(size_t n, uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  std::vector<double> v(n);
  for (auto& x : v) x = scale * rng.normal();
  return v;
}

inline nlohmann::json load_fixture(const std::string& name) {
  std::ifstream in(std::string(FIXTURE_DIR) + "/" + name);
  EXPECT_TRUE(in.good()) << "missing fixture " << name << " (run make fixtures)";
  return nlohmann::json::parse(in);
}

}  // namespace rectifier::test
