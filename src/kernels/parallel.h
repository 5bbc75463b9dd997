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

}  // namespace rectifier::kernels
