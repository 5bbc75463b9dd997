// ReLU kernels in Highway: compiled for every x86-64 target (SSE2 ... AVX2, AVX-512) and dispatched at run time.
// Forward can keep a 1-bit mask (x > 0) so backward reads 1 bit per element instead of the 4-byte input; outputs
// larger than the cache go out with streaming stores, which skip the read-for-ownership of the destination.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/relu_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/cache_control.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

HWY_BEFORE_NAMESPACE();
namespace rectifier::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Bytes of mask the kernels below write for n elements (n a multiple of the vector length, or any n for the tail).
size_t MaskBytes(size_t n) {
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d);
  return n / L * ((L + 7) / 8) + n % L;
}

// y = x < 0 ? 0 : x (NaN passes through); bits (if not null): x > 0.
void ReluForward(const float* HWY_RESTRICT x, float* HWY_RESTRICT y, uint8_t* HWY_RESTRICT bits, size_t n, bool stream) {
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d), bpv = (L + 7) / 8;
  const auto zero = hn::Zero(d);
  stream = stream && reinterpret_cast<uintptr_t>(y) % 64 == 0;
  size_t i = 0, b = 0;
  for (; i + L <= n; i += L, b += bpv) {
    const auto v = hn::LoadU(d, x + i);
    const auto r = hn::IfThenZeroElse(v < zero, v);
    if (stream) hn::Stream(r, d, y + i);
    else hn::StoreU(r, d, y + i);
    if (bits) hn::StoreMaskBits(d, v > zero, bits + b);
  }
  for (; i < n; ++i, ++b) {
    y[i] = x[i] < 0.0f ? 0.0f : x[i];
    if (bits) bits[b] = x[i] > 0.0f;
  }
  if (stream) hwy::FlushStream();
}

// dx = x > 0 ? dy : 0, from the input x.
void ReluBackward(const float* HWY_RESTRICT x, const float* HWY_RESTRICT dy, float* HWY_RESTRICT dx, size_t n, bool stream) {
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d);
  const auto zero = hn::Zero(d);
  stream = stream && reinterpret_cast<uintptr_t>(dx) % 64 == 0;
  size_t i = 0;
  for (; i + L <= n; i += L) {
    const auto r = hn::IfThenElseZero(hn::LoadU(d, x + i) > zero, hn::LoadU(d, dy + i));
    if (stream) hn::Stream(r, d, dx + i);
    else hn::StoreU(r, d, dx + i);
  }
  for (; i < n; ++i) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
  if (stream) hwy::FlushStream();
}

// dx = bit ? dy : 0, from the mask ReluForward kept.
void ReluBackwardMask(const uint8_t* HWY_RESTRICT bits, const float* HWY_RESTRICT dy, float* HWY_RESTRICT dx, size_t n,
                      bool stream) {
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d), bpv = (L + 7) / 8;
  stream = stream && reinterpret_cast<uintptr_t>(dx) % 64 == 0;
  size_t i = 0, b = 0;
  for (; i + L <= n; i += L, b += bpv) {
    const auto r = hn::IfThenElseZero(hn::LoadMaskBits(d, bits + b), hn::LoadU(d, dy + i));
    if (stream) hn::Stream(r, d, dx + i);
    else hn::StoreU(r, d, dx + i);
  }
  for (; i < n; ++i, ++b) dx[i] = bits[b] ? dy[i] : 0.0f;
  if (stream) hwy::FlushStream();
}

}  // namespace rectifier::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/parallel.h"
#include "rectifier/activation.h"

namespace rectifier {
namespace kernels {
HWY_EXPORT(MaskBytes);
HWY_EXPORT(ReluForward);
HWY_EXPORT(ReluBackward);
HWY_EXPORT(ReluBackwardMask);
}  // namespace kernels

namespace {
constexpr size_t kChunk = size_t(1) << 16;            // elements per parallel task (a multiple of every vector length)
// Outputs larger than half the last-level cache bypass it: input and output together then no longer fit. The size
// comes from Linux's sysfs (sysconf's figure is the whole package's on some AMD parts: 320 MB for this VM's 32 MB);
// without it, 8 MB. On this project's VM (32 MB L3, so 16 MB) at 4M floats (16 MB out) cached stores ran at 77-127
// GB/s and streaming ones at 50-52, while at 64M streaming ran at 43-47 and cached at 30-46 (docs/benchmarks.md,
// run 28). The reference nets' largest ReLU output (6.4 MB) stays cached for the next layer either way.
size_t last_level_cache_bytes() {  // the largest of cpu0's caches
  size_t best = 0;
  for (int i = 0; i < 8; ++i) {
    const std::string path = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/size";
    std::FILE* f = std::fopen(path.c_str(), "r");
    if (!f) continue;
    unsigned long long v = 0;
    char unit = 0;
    const int got = std::fscanf(f, "%llu%c", &v, &unit);
    std::fclose(f);
    if (got == 2 && (unit == 'K' || unit == 'k')) v <<= 10;
    if (got == 2 && (unit == 'M' || unit == 'm')) v <<= 20;
    if (got >= 1 && v > best) best = size_t(v);
  }
  return best;
}
size_t stream_bytes() {
  static const size_t bytes = [] {
    const size_t llc = last_level_cache_bytes();
    return llc ? llc / 2 : size_t(8) << 20;
  }();
  return bytes;
}
// Whether a pass over `arrays` float arrays of n (inputs and output) streams its output: when together they exceed
// the cache, i.e. 2 stream_bytes(). The backward from x reads two arrays and writes a third: at 3M and 4M floats (36
// and 48 MB on this VM's 32 MB L3) its output went through the cache under the forward's rule (output over half the
// cache), and streaming it took 0.62 and 0.71 of the time (2 threads, alternating calls in one process).
bool streams(size_t n, size_t arrays) { return arrays * n * sizeof(float) > 2 * stream_bytes(); }

template <class F>
void chunks(size_t n, F&& f) { kernels::parallel_chunks(n, kChunk, f); }
}  // namespace

size_t relu_stream_bytes() { return stream_bytes(); }

size_t relu_mask_bytes(size_t n) { return HWY_DYNAMIC_DISPATCH(kernels::MaskBytes)(n) + 64; }

void relu_forward(const float* x, float* y, uint8_t* mask, size_t n) {
  const bool stream = streams(n, 2);  // x and y (the mask is 1/32 of them)
  const size_t per_chunk = HWY_DYNAMIC_DISPATCH(kernels::MaskBytes)(kChunk);
  chunks(n, [&](size_t lo, size_t len) {
    HWY_DYNAMIC_DISPATCH(kernels::ReluForward)(x + lo, y + lo, mask ? mask + lo / kChunk * per_chunk : nullptr, len, stream);
  });
}

void relu_backward(const float* x, const float* dy, float* dx, size_t n) {
  const bool stream = streams(n, 3);  // x, dy and dx
  chunks(n, [&](size_t lo, size_t len) { HWY_DYNAMIC_DISPATCH(kernels::ReluBackward)(x + lo, dy + lo, dx + lo, len, stream); });
}

void relu_backward_mask(const uint8_t* mask, const float* dy, float* dx, size_t n) {
  const bool stream = streams(n, 2);  // dy and dx
  const size_t per_chunk = HWY_DYNAMIC_DISPATCH(kernels::MaskBytes)(kChunk);
  chunks(n, [&](size_t lo, size_t len) {
    HWY_DYNAMIC_DISPATCH(kernels::ReluBackwardMask)(mask + lo / kChunk * per_chunk, dy + lo, dx + lo, len, stream);
  });
}

}  // namespace rectifier
#endif  // HWY_ONCE
