// Direct stride-1 convolution of one float image (kernels/conv_hwy.cpp): the convolution layer's forward pass and its
// gradient with respect to the input (the same correlation on dy with flipped, channel-swapped weights). Serial:
// the layer runs it per image inside its own parallel loop. conv2d_ref (conv_kernels.h) is its test oracle.
#pragma once
#include <cstddef>

#include "kernels/conv_kernels.h"

namespace rectifier::kernels {

constexpr int kDirectOB = 4;          // output channels per register tile
constexpr size_t kDirectTile = 48;    // output positions are padded to a multiple of this (every target's tile divides it)

struct DirectConvLayout {
  int wp = 0;          // padded row width, w + pad
  size_t qn = 0;       // output positions per channel in the padded layout, oh * wp (the kernels compute these)
  size_t qpad = 0;     // the output planes' stride: qn rounded up to kDirectTile
  size_t cs = 0;       // floats per padded input plane
  int ocpad = 0;       // output channels rounded up to kDirectOB
  size_t scratch = 0;  // floats of scratch conv_direct needs: the padded planes, then the padded output
  // backward: dy on the output grid, gpre floats into planes of gs floats, is at once the weight gradient's operand
  // and, from glead = gpre - (k - 1 - pad) (wp + 1), the input gradient's padded input (no second copy)
  size_t gpre = 0, glead = 0, gs = 0;
};

// Stride 1, padding at most k - 1 and not a plain 1x1 (that one is a GEMM on the image itself).
bool direct_conv_applies(const ConvGeometry& g);
DirectConvLayout direct_layout(const ConvGeometry& g);
// The geometry of the input gradient as a forward convolution: dy (oc, oh, ow) -> dx (c, h, w), padding k - 1 - pad.
ConvGeometry input_grad_geometry(const ConvGeometry& g);

// Weights in the kernel's order, [ocpad / kDirectOB][c][k][k][kDirectOB], zero for the padding channels. W is the
// layer's [oc][c][k][k] for the forward geometry, or (transposed) for input_grad_geometry(g) of the layer's g.
size_t direct_weights_floats(const ConvGeometry& g);
void pack_direct_weights(const ConvGeometry& g, const float* W, bool transposed, float* wr);

// The padded input planes (c planes of cs floats), and dy on the output grid (ocpad planes of gs floats, from gpre,
// zero where unused). direct_grid_output adds the sum of each channel of dy to db (the bias gradient), if not null.
// fill: write the zeros before the first row and after the last (and dy's padding channels) too; without it they
// must already be zero (a buffer only ever written by these two functions, zero when allocated).
void direct_pad_input(const ConvGeometry& g, const float* x, float* xp, bool fill);
void direct_grid_output(const ConvGeometry& g, const float* dy, float* dyq, float* db, bool fill);

// Weight gradient over G images. buf holds, per image, its padded input planes then its gridded dy
// (direct_grad_image_floats(g) floats per image, filled by the two functions above). dw (oc, c*k*k) is accumulated.
size_t direct_grad_image_floats(const ConvGeometry& g);
void direct_weight_grad(const ConvGeometry& g, const float* buf, int G, float* dw);

// The weight and bias gradients of one image from dy's non-zero entries alone, for layers whose rows of taps are
// short (k * c < 8: an image net's first layer): dw (oc, c*k*k) and db (oc) are accumulated, each over the non-zero
// dy (o, p) in order of p. xp: the image's padded planes (direct_pad_input), with at least 8 readable floats after
// them (the direct path's per-image buffer, direct_grad_image_floats, has dy's grid there).
void patch_weight_grad(const ConvGeometry& g, const float* xp, const float* dy, float* dw, float* db);

// y (oc, oh, ow) = the convolution of x (c, h, w) with the packed weights, plus bias (if not null). Overwrites y.
void conv_direct(const ConvGeometry& g, const float* x, const float* wr, const float* bias, float* y, float* scratch);
// dx (c, h, w) of the layer of geometry g from dy already on its grid (an image's planes from direct_grid_output) and
// the weights packed for input_grad_geometry(g). scratch: direct_layout(input_grad_geometry(g)).scratch floats.
void direct_input_grad(const ConvGeometry& g, const float* dyq, const float* wt, float* dx, float* scratch);

}  // namespace rectifier::kernels
