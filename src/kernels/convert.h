// Bytes to floats, scaled: how a batch of images is gathered (Dataset::gather). convert_hwy.cpp, dispatched at run
// time; scale_bytes_ref is the plain loop and the oracle (the same bits: the conversion is exact, then one multiply).
#pragma once
#include <cstddef>
#include <cstdint>

namespace rectifier::kernels {

inline void scale_bytes_ref(const uint8_t* src, size_t n, float scale, float* dst) {
  for (size_t j = 0; j < n; ++j) dst[j] = float(src[j]) * scale;
}

// dst[j] = float(src[j]) * scale for j < n. Serial.
void scale_bytes(const uint8_t* src, size_t n, float scale, float* dst);

}  // namespace rectifier::kernels
