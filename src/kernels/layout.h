// An image between channel planes (CHW, as layers hand images to each other) and pixels of channels (HWC, where a
// window's row of taps over all channels is consecutive floats: the Winograd forward and the sparse convolution
// backward work on it), inside a padded grid. layout_hwy.cpp, dispatched at run time: 4 channels by 4 pixels at a
// time through 4 x 4 transposes. The _ref loops are the oracles (the same bits: values are only moved).
#pragma once
#include <cstddef>

namespace rectifier::kernels {

// x (C, H, W) into the grid at g: pixel (y, j) of the image at g + (y wg + j) cp, its channels consecutive (wg
// pixels per grid row, cp >= C floats per pixel). Nothing else of the grid is written (its padding keeps its zeros).
inline void chw_to_hwc_ref(const float* x, int C, int H, int W, float* g, size_t wg, size_t cp) {
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < H; ++y)
      for (int j = 0; j < W; ++j)
        g[(size_t(y) * wg + size_t(j)) * cp + size_t(c)] = x[(size_t(c) * size_t(H) + size_t(y)) * size_t(W) + size_t(j)];
}
// The inverse: the grid's (H, W) pixels from g back into planes x (C, H, W).
inline void hwc_to_chw_ref(const float* g, size_t wg, size_t cp, int C, int H, int W, float* x) {
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < H; ++y)
      for (int j = 0; j < W; ++j)
        x[(size_t(c) * size_t(H) + size_t(y)) * size_t(W) + size_t(j)] = g[(size_t(y) * wg + size_t(j)) * cp + size_t(c)];
}

void chw_to_hwc(const float* x, int C, int H, int W, float* g, size_t wg, size_t cp);
void hwc_to_chw(const float* g, size_t wg, size_t cp, int C, int H, int W, float* x);

}  // namespace rectifier::kernels
