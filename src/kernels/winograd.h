// Winograd convolution F(4x4, k x k) for one float image, stride 1, k = 5 on 8 x 8 input tiles with the points 0, 1,
// -1, 2, -2, 1/2, -1/2 and infinity, k = 3 on 6 x 6 tiles with 0, 1, -1, 2, -2 and infinity (Lavin and Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2016). Each 4 x 4 block of outputs is
//   Y = A^T [ sum over c of (G g_(o,c) G^T) .* (B^T d_c B) ] A,
// d_c the A x A input tile of channel c: A^2 multiplications per input channel and output channel for 16 outputs
// where the direct convolution takes 16 k^2 (6.25x fewer for 5x5, 4x for 3x3). The A^2 element-wise products,
// summed over the channels, are A^2 matrix products (tiles x channels) (channels x output channels), the bulk of
// the work. The transforms run with the channels in the vector lanes (the input padded into HWC order).
// In exact arithmetic the result is the convolution's; in float it differs by rounding (the transforms' constants
// reach 8 and 1/8, and the weights' 1/90), within 5e-6 of the output's scale in the tests, as F(2x2, 5x5) on 6 x 6
// tiles was (about 1.2e-6 against 0.6e-6 in a float model of both; 2.8x fewer multiplications than the direct
// convolution against 6.25x). A non-finite input value makes the whole tile's outputs non-finite (the direct
// convolution: only those whose windows hold it). conv2d_ref (conv_kernels.h) is the oracle
// (tests/winograd_test.cpp).
#pragma once
#include <cstddef>

#include "kernels/conv_kernels.h"

namespace rectifier::kernels {

constexpr int kWinoMaxAlpha = 8;                  // the largest input tile side
constexpr size_t kWinoChannelPad = 16;            // channels are padded to this (the widest vector's lanes)
constexpr int kWinoTiles = 6;                     // tiles per block: the rows of the products' register tile
constexpr int kWinoGradTiles = 16;                // the weight gradient's tiles per block

// Stride 1, k = 3 or 5, padding at most k - 1, at least 8 input channels (fewer fill too little of the vectors
// the channels are padded to).
bool winograd_applies(const ConvGeometry& g);

struct WinogradLayout {
  int alpha = 0;        // input tile side: 8 for k = 5, 6 for k = 3
  int m = 0;            // output tile side, alpha + 1 - k = 4
  int th = 0, tw = 0;   // tiles down and across
  int hg = 0, wg = 0;   // the padded input grid: th m + k - 1 by tw m + k - 1
  size_t cp = 0, ocp = 0;  // channels and output channels, padded to kWinoChannelPad
  size_t scratch = 0;   // floats of per-image scratch (the grid, a block's transformed tiles and products)
};
WinogradLayout winograd_layout(const ConvGeometry& g);

// The weights transformed, U (f, c, o) = (G W (o, c) G^T) (f), f in [0, alpha^2), zero for the padding channels: computed
// in double from W (oc, c, k, k), winograd_weights_floats(g) floats.
size_t winograd_weights_floats(const ConvGeometry& g);
// transposed: g is the input-gradient geometry (input_grad_geometry of a layer's g) and W the layer's weights
// [g.c][g.oc][k][k], read flipped, as pack_direct_weights does.
void winograd_weights(const ConvGeometry& g, const float* W, float* U, bool transposed = false);

// y (oc, oh, ow) = the convolution of x (c, h, w) with the weights U, plus bias (if not null). scratch:
// winograd_layout(g).scratch floats, zero when allocated and written by nothing else (only the insides of the
// padded grid are ever written, so its borders stay zero).
void conv_winograd(const ConvGeometry& g, const float* x, const float* U, const float* bias, float* y, float* scratch);

// The weight gradient by the same transform, image by image: M (f, c, o) += sum over the tiles of (B^T d_c B) (f)
// (A dy_o A^T) (f), dy_o the tile's 4 x 4 block of output gradient (zero past the edges), the gradient of
// U (f, c, o); then dw (o, c) += G^T M (c, o) G. M has U's shape (winograd_weights_floats(g) floats), zeroed by the
// caller before the first image; scratch: winograd_grad_scratch(g) floats, zero when allocated and written by
// nothing else (as conv_winograd's). x (c, h, w), dy (oc, oh, ow). The bias gradient is not included.
size_t winograd_grad_scratch(const ConvGeometry& g);
void winograd_weight_grad_image(const ConvGeometry& g, const float* x, const float* dy, float* M, float* scratch);
void winograd_weight_grad_finish(const ConvGeometry& g, const float* M, float* dw);

}  // namespace rectifier::kernels
