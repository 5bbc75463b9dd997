// Kernel benchmarks (Google Benchmark): activations forward and backward from 16K to 64M elements beside a parallel
// copy (the machine's copy bandwidth), dense layers at batch 1 to 1024, the CNN's convolutions, batch-1 inference
// and a training step with and without diagnostics. Run through bench/run.sh, or alone: build/bench/kernels_bench.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>
#include <map>
#include "rectifier/activation.h"
#include "rectifier/data.h"
#include "rectifier/io.h"
#include "rectifier/predictor.h"
#include "kernels/sparse.h"
#include "rectifier/trainer.h"
#include "train_step.h"

using namespace rectifier;

namespace {
// Buffers shared by the element-wise benchmarks, filled once (no page faults inside the timed loops).
struct Arrays {
  Buffer<float> x, y, dy, dx;
  Buffer<uint8_t> mask;
  size_t n = 0;
  void ensure(size_t m) {
    if (m <= n) return;
    x.resize(m); y.resize(m); dy.resize(m); dx.resize(m);
    mask.resize(relu_mask_bytes(m));
    Rng rng(1);
    for (size_t i = 0; i < m; ++i) { x[i] = float(rng.normal()); dy[i] = float(rng.normal()); }
    n = m;
  }
} arrays;

void sizes(benchmark::internal::Benchmark* b) {
  for (long n : {1L << 14, 1L << 18, 1L << 22, 1L << 26}) b->Arg(n);
}

// Two threads each copying half: the bandwidth a streaming element-wise kernel is measured against.
void BM_Copy(benchmark::State& s) {
  const size_t n = size_t(s.range(0));
  arrays.ensure(n);
  for (auto _ : s) {
#pragma omp parallel
    {
      const int t = omp_get_thread_num(), T = omp_get_num_threads();
      const size_t lo = n * t / T, hi = n * (t + 1) / T;
      std::memcpy(arrays.y.data() + lo, arrays.x.data() + lo, (hi - lo) * 4);
    }
    benchmark::ClobberMemory();
  }
  s.SetBytesProcessed(int64_t(s.iterations()) * int64_t(n) * 8);
}
BENCHMARK(BM_Copy)->Apply(sizes)->UseRealTime();

void BM_ReluForwardMask(benchmark::State& s) {
  const size_t n = size_t(s.range(0));
  arrays.ensure(n);
  for (auto _ : s) relu_forward(arrays.x.data(), arrays.y.data(), arrays.mask.data(), n);
  s.SetBytesProcessed(int64_t(s.iterations()) * int64_t(n) * 8);  // read x, write y (the mask adds 1/32)
}
BENCHMARK(BM_ReluForwardMask)->Apply(sizes)->UseRealTime();

void BM_ReluBackwardMask(benchmark::State& s) {
  const size_t n = size_t(s.range(0));
  arrays.ensure(n);
  relu_forward(arrays.x.data(), arrays.y.data(), arrays.mask.data(), n);
  for (auto _ : s) relu_backward_mask(arrays.mask.data(), arrays.dy.data(), arrays.dx.data(), n);
  s.SetBytesProcessed(int64_t(s.iterations()) * int64_t(n) * 8);  // read dy, write dx
}
BENCHMARK(BM_ReluBackwardMask)->Apply(sizes)->UseRealTime();

void BM_ActForward(benchmark::State& s, const char* name) {
  const Activation a = *parse_activation(name);
  const size_t n = size_t(s.range(0));
  arrays.ensure(n);
  for (auto _ : s) act_forward(a, arrays.x.data(), arrays.y.data(), n);
  s.SetBytesProcessed(int64_t(s.iterations()) * int64_t(n) * 8);
}
void BM_ActBackward(benchmark::State& s, const char* name) {
  const Activation a = *parse_activation(name);
  const size_t n = size_t(s.range(0));
  arrays.ensure(n);
  for (auto _ : s) act_backward(a, arrays.x.data(), arrays.dy.data(), arrays.dx.data(), n);
  s.SetBytesProcessed(int64_t(s.iterations()) * int64_t(n) * 12);  // read x and dy, write dx
}
#define ACT(name)                                                                   \
  BENCHMARK_CAPTURE(BM_ActForward, name, #name)->Apply(sizes)->UseRealTime();       \
  BENCHMARK_CAPTURE(BM_ActBackward, name, #name)->Apply(sizes)->UseRealTime();
ACT(relu) ACT(leaky_relu) ACT(elu) ACT(selu) ACT(gelu) ACT(silu) ACT(relu6) ACT(softplus) ACT(mish) ACT(sigmoid) ACT(tanh)

Model<float> make(const std::string& arch, const Shape& in) {
  ArchContext ctx{in, 10, *parse_activation("relu")};
  Model<float> m(parse_arch(arch, ctx), in);
  m.init(InitSpec{}, 0);
  return m;
}

// One dense layer 784 -> 256, forward and backward (with the input gradient) at several batch sizes.
void BM_Dense(benchmark::State& s, bool backward) {
  const int n = int(s.range(0));
  Model<float> m = make("dense(256)", {784});
  m.set_input_grad(true);
  m.reserve(n);
  Buffer<float> x(size_t(n) * 784), dy(size_t(n) * 256);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 7) * 0.1f;
  // A dense output gradient (every entry non-zero), so that backward runs the full products the GFLOP/s count; behind
  // a ReLU most of it would be zero and the sparse path would run instead (BM_SpmmRows, and the step benchmarks).
  Rng rng(5);
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = float(rng.normal()) + (i % 2 ? 0.5f : -0.5f);
  m.forward(x.data(), n, true);
  for (auto _ : s) {
    if (backward) m.backward(dy.data(), n);
    else m.forward(x.data(), n, true);
  }
  s.counters["GFLOP/s"] = benchmark::Counter(double(s.iterations()) * 2.0 * n * 784 * 256 * (backward ? 2 : 1) / 1e9,
                                             benchmark::Counter::kIsRate);
}
BENCHMARK_CAPTURE(BM_Dense, forward, false)->Arg(1)->Arg(32)->Arg(128)->Arg(1024)->UseRealTime();
BENCHMARK_CAPTURE(BM_Dense, backward, true)->Arg(1)->Arg(32)->Arg(128)->Arg(1024)->UseRealTime();

// The dense layers' sparse backward kernel on one core, at the reference MLP's first layer: dW (256 x 784) += the
// lists of each unit's non-zero dy (over a batch of 128, at the given percentage non-zero on average; as in
// training, some units fire more often than others: each unit's rate is drawn uniformly from 0 to twice that) times
// the input rows.
// GFLOP/s counts the useful multiply-adds only (those with a non-zero); a full product does 100 / percent times as
// many.
void BM_SpmmRows(benchmark::State& s) {
  const int units = 256, n = 128, in = 784;
  const double density = double(s.range(0)) / 100;
  Buffer<float> x(size_t(n) * in), dW(size_t(units) * in), val(size_t(units) * n);
  Buffer<int32_t> idx(size_t(units) * n), count{size_t(units)};
  Rng rng(3);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(rng.uniform());
  for (size_t i = 0; i < dW.size(); ++i) dW[i] = 0;
  long nnz = 0;
  for (int u = 0; u < units; ++u) {
    int k = 0;
    const double rate = 2 * density * rng.uniform();
    for (int e = 0; e < n; ++e)
      if (rng.uniform() < rate) {
        idx[size_t(u) * n + size_t(k)] = e;
        val[size_t(u) * n + size_t(k++)] = float(rng.normal()) * 1e-3f;
      }
    count[size_t(u)] = k;
    nnz += k;
  }
  for (auto _ : s) {
    kernels::spmm_rows(0, units, count.data(), n, idx.data(), val.data(), x.data(), size_t(in), in, dW.data(),
                       size_t(in), true);
    benchmark::ClobberMemory();
  }
  s.counters["GFLOP/s"] = benchmark::Counter(double(s.iterations()) * 2.0 * double(nnz) * in / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SpmmRows)->Arg(10)->Arg(25)->Arg(40)->UseRealTime()->Unit(benchmark::kMicrosecond);

// The CNN's two convolutions at batch 128. Backward from a dy of which one value in 9 is non-zero, as behind the
// ReLU and max pooling that follow each of them in training (the first's 11-13% non-zero, the second's 5-7%): both
// take their sparse paths. The _dense_dy runs: every value of dy non-zero, as behind tanh, sigmoid or an average
// pooling (the second convolution's weight and input gradients then by Winograd).
void BM_Conv(benchmark::State& s, const char* arch, int c, int hw, bool backward, int every = 9) {
  Model<float> m = make(arch, {c, hw, hw});
  m.set_input_grad(c > 1);
  const int n = 128;
  m.reserve(n);
  Buffer<float> x(size_t(n) * c * hw * hw), dy(size_t(n) * numel(m.output_shape()));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 13) * 0.05f;
  for (size_t i = 0; i < dy.size(); i += size_t(every)) dy[i] = float(i % 7) * 0.1f - 0.3f;
  m.forward(x.data(), n, true);
  for (auto _ : s) {
    if (backward) m.backward(dy.data(), n);
    else m.forward(x.data(), n, true);
  }
}
BENCHMARK_CAPTURE(BM_Conv, conv1_forward, "conv(16,5,pad=2)", 1, 28, false)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Conv, conv1_backward, "conv(16,5,pad=2)", 1, 28, true)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Conv, conv2_forward, "conv(32,5,pad=2)", 16, 14, false)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Conv, conv2_backward, "conv(32,5,pad=2)", 16, 14, true)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Conv, conv1_backward_dense_dy, "conv(16,5,pad=2)", 1, 28, true, 1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Conv, conv2_backward_dense_dy, "conv(32,5,pad=2)", 16, 14, true, 1)->UseRealTime()->Unit(benchmark::kMillisecond);

// 2x2 pooling of the first convolution's output (128 images of 16 x 28 x 28), forward and backward.
void BM_Pool(benchmark::State& s, const char* arch, bool backward) {
  Model<float> m = make(arch, {16, 28, 28});
  m.set_input_grad(true);
  const int n = 128;
  m.reserve(n);
  Buffer<float> x(size_t(n) * 16 * 28 * 28), dy(size_t(n) * numel(m.output_shape()));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 13) * 0.05f - 0.3f;
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = float(i % 7) * 0.1f - 0.35f;
  m.forward(x.data(), n, true);
  for (auto _ : s) {
    if (backward) m.backward(dy.data(), n);
    else m.forward(x.data(), n, true);
  }
}
BENCHMARK_CAPTURE(BM_Pool, avgpool_forward, "avgpool(2)", false)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Pool, avgpool_backward, "avgpool(2)", true)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Pool, maxpool_forward, "maxpool(2)", false)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Pool, maxpool_backward, "maxpool(2)", true)->UseRealTime()->Unit(benchmark::kMicrosecond);

// The reference MLP on one example, as a service runs it: the inference latency. The example is the one the peers
// time (bench/peers): the first image of Fashion-MNIST's test set, scaled by 1/255. The model is the one the file
// RECTIFIER_BENCH_MODEL names (bench/run.sh: the model rectifier trained in the same round, as the peers time theirs
// after training), else a freshly initialized one. BM_MlpBatch1 runs it through a Predictor (weights packed once,
// the zero inputs skipped: rectifier's inference API), BM_MlpBatch1Model through the model's own forward, which
// training runs.
struct Batch1 {
  std::string what;
  std::vector<float> x;
  Model<float> model() const {
    if (const char* path = std::getenv("RECTIFIER_BENCH_MODEL")) return load_model(path).model;
    return make("784-256-128-10", {1, 28, 28});
  }
};
const Batch1& batch1() {
  static const Batch1 b = [] {
    Batch1 r;
    r.x.resize(784);
    r.what = std::getenv("RECTIFIER_BENCH_MODEL") ? "trained model" : "initialized model";
    try {
      load_data("fashion-mnist").test.gather_range(0, 1, r.x.data());
      r.what += ", Fashion-MNIST test image 0";
    } catch (const std::exception&) {  // no data set: an image-like input, 40% of it non-zero
      for (size_t i = 0; i < r.x.size(); ++i) r.x[i] = (i % 28) > 6 && (i % 28) < 18 ? 0.5f : 0.0f;
      r.what += ", synthetic image";
    }
    return r;
  }();
  return b;
}
void BM_MlpBatch1(benchmark::State& s) {
  Predictor<float> p(batch1().model());
  for (auto _ : s) benchmark::DoNotOptimize(p.predict(batch1().x.data(), 1));
  s.SetLabel(batch1().what);
}
BENCHMARK(BM_MlpBatch1)->UseRealTime()->Unit(benchmark::kMicrosecond);
void BM_MlpBatch1Model(benchmark::State& s) {
  Model<float> m = batch1().model();
  m.reserve(1);
  for (auto _ : s) benchmark::DoNotOptimize(m.forward(batch1().x.data(), 1, false));
  s.SetLabel(batch1().what);
}
BENCHMARK(BM_MlpBatch1Model)->UseRealTime()->Unit(benchmark::kMicrosecond);

// One training step of the reference MLP or CNN at batch 128, as the trainer runs it (bench/train_step.h), with and
// without the monitor: the cost of diagnostics.
void BM_TrainStep(benchmark::State& s, const char* arch, bool diagnostics) {
  bench::TrainStep step(arch, diagnostics);
  for (auto _ : s) step.run();
}
BENCHMARK_CAPTURE(BM_TrainStep, mlp_plain, "784-256-128-10", false)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_TrainStep, mlp_diagnostics, "784-256-128-10", true)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_TrainStep, cnn_plain, "cnn", false)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_TrainStep, cnn_diagnostics, "cnn", true)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  set_threads(0);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
