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
// Outputs above this bypass the cache. 8 MB: at 4M floats (16 MB out, 32 MB moved, the size of L3) streaming was
// 25-30% faster in four interleaved pairs; the reference nets' largest ReLU output (6.4 MB) stays cached for the
// next layer.
constexpr size_t kStreamBytes = size_t(8) << 20;

template <class F>
void chunks(size_t n, F&& f) { kernels::parallel_chunks(n, kChunk, f); }
}  // namespace

size_t relu_mask_bytes(size_t n) { return HWY_DYNAMIC_DISPATCH(kernels::MaskBytes)(n) + 64; }

void relu_forward(const float* x, float* y, uint8_t* mask, size_t n) {
  const bool stream = n * sizeof(float) > kStreamBytes;
  const size_t per_chunk = HWY_DYNAMIC_DISPATCH(kernels::MaskBytes)(kChunk);
  chunks(n, [&](size_t lo, size_t len) {
    HWY_DYNAMIC_DISPATCH(kernels::ReluForward)(x + lo, y + lo, mask ? mask + lo / kChunk * per_chunk : nullptr, len, stream);
  });
}

void relu_backward(const float* x, const float* dy, float* dx, size_t n) {
  const bool stream = n * sizeof(float) > kStreamBytes;
  chunks(n, [&](size_t lo, size_t len) { HWY_DYNAMIC_DISPATCH(kernels::ReluBackward)(x + lo, dy + lo, dx + lo, len, stream); });
}

void relu_backward_mask(const uint8_t* mask, const float* dy, float* dx, size_t n) {
  const bool stream = n * sizeof(float) > kStreamBytes;
  const size_t per_chunk = HWY_DYNAMIC_DISPATCH(kernels::MaskBytes)(kChunk);
  chunks(n, [&](size_t lo, size_t len) {
    HWY_DYNAMIC_DISPATCH(kernels::ReluBackwardMask)(mask + lo / kChunk * per_chunk, dy + lo, dx + lo, len, stream);
  });
}

}  // namespace rectifier
#endif  // HWY_ONCE
