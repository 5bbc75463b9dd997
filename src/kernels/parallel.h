// Splits [0, n) into fixed chunks over the OpenMP threads (a single call below one chunk): f(offset, length).
// Fixed chunk boundaries keep element-wise results independent of the thread count.
#pragma once
#include <algorithm>
#include <cstddef>

namespace rectifier::kernels {

template <class F>
void parallel_chunks(size_t n, size_t chunk, F&& f) {
  if (n <= chunk) { f(size_t(0), n); return; }
  const long count = long((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(static)
  for (long c = 0; c < count; ++c) {
    const size_t lo = size_t(c) * chunk;
    f(lo, std::min(n, lo + chunk) - lo);
  }
}

// Items (examples, planes) of values_per_item values each per chunk of parallel_chunks: about 64K values a chunk
// (one chunk, and no threads, below that), at least one item.
inline size_t items_per_chunk(size_t values_per_item) {
  return std::max<size_t>(1, (size_t(1) << 16) / std::max<size_t>(1, values_per_item));
}

}  // namespace rectifier::kernels
