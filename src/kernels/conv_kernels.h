// Convolution and pooling loops on raw NCHW arrays. Never allocate. im2col and col2im are serial and take one image:
// the convolution layer runs them per image inside its own parallel loop. The direct-convolution reference at the end is
// the test oracle for the im2col + GEMM path.
#pragma once
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <limits>
#include <type_traits>

namespace rectifier::kernels {

struct ConvGeometry {
  int c, h, w;     // input channels, height, width
  int oc;          // output channels (pooling: = c)
  int k, stride, pad;
  int oh, ow;      // output height, width
};

// One input channel with its zero padding around it: the scratch im2col and col2im work in, so that every window row
// is a plain strided run without bounds checks (no padding: the channel is used as it is).
inline size_t padded_plane(const ConvGeometry& g) { return size_t(g.h + 2 * g.pad) * size_t(g.w + 2 * g.pad); }

// x: (C, H, W) -> col: (C*k*k, OH*OW), row (c, ki, kj), column (oy, ox); zero where the window is in padding.
// plane: padded_plane(g) values of scratch (any content).
template <class T>
void im2col(const ConvGeometry& g, const T* x, T* col, T* plane) {
  const int Wp = g.w + 2 * g.pad, P = g.oh * g.ow, s = g.stride;
  for (int c = 0; c < g.c; ++c) {
    const T* src = x + size_t(c) * g.h * g.w;
    int ld = g.w;
    if (g.pad > 0) {
      std::fill(plane, plane + size_t(g.pad) * Wp, T(0));
      for (int y = 0; y < g.h; ++y) {
        T* d = plane + size_t(y + g.pad) * Wp;
        const T* r = src + size_t(y) * g.w;
        for (int i = 0; i < g.pad; ++i) d[i] = T(0);
        for (int i = 0; i < g.w; ++i) d[g.pad + i] = r[i];
        for (int i = g.pad + g.w; i < Wp; ++i) d[i] = T(0);
      }
      std::fill(plane + size_t(g.pad + g.h) * Wp, plane + size_t(g.h + 2 * g.pad) * Wp, T(0));
      src = plane;
      ld = Wp;
    }
    for (int ki = 0; ki < g.k; ++ki)
      for (int kj = 0; kj < g.k; ++kj) {
        T* dst = col + size_t((c * g.k + ki) * g.k + kj) * P;
        for (int oy = 0; oy < g.oh; ++oy) {
          const T* r = src + size_t(oy * s + ki) * ld + kj;
          T* d = dst + size_t(oy) * g.ow;
          if (s == 1)
            for (int ox = 0; ox < g.ow; ++ox) d[ox] = r[ox];
          else
            for (int ox = 0; ox < g.ow; ++ox) d[ox] = r[ox * s];
        }
      }
  }
}

// The adjoint of im2col: dx (C, H, W) = sum of col entries over the windows each input falls in. Overwrites dx.
// plane: padded_plane(g) values of scratch (any content).
template <class T>
void col2im(const ConvGeometry& g, const T* col, T* dx, T* plane) {
  const int Wp = g.w + 2 * g.pad, Hp = g.h + 2 * g.pad, P = g.oh * g.ow, s = g.stride;
  for (int c = 0; c < g.c; ++c) {
    T* xc = dx + size_t(c) * g.h * g.w;
    T* acc = g.pad > 0 ? plane : xc;
    std::fill(acc, acc + size_t(Hp) * Wp, T(0));
    for (int ki = 0; ki < g.k; ++ki)
      for (int kj = 0; kj < g.k; ++kj) {
        const T* src = col + size_t((c * g.k + ki) * g.k + kj) * P;
        for (int oy = 0; oy < g.oh; ++oy) {
          T* r = acc + size_t(oy * s + ki) * Wp + kj;
          const T* sr = src + size_t(oy) * g.ow;
          if (s == 1)
            for (int ox = 0; ox < g.ow; ++ox) r[ox] += sr[ox];
          else
            for (int ox = 0; ox < g.ow; ++ox) r[ox * s] += sr[ox];
        }
      }
    if (g.pad > 0)
      for (int y = 0; y < g.h; ++y) {
        const T* r = plane + size_t(y + g.pad) * Wp + g.pad;
        T* d = xc + size_t(y) * g.w;
        for (int i = 0; i < g.w; ++i) d[i] = r[i];
      }
  }
}

// Sum of v[0, n) with eight partial sums (vectorisable, and in a fixed order).
template <class T>
T sum8(const T* v, size_t n) {
  T p[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) p[j] += v[i + size_t(j)];
  T s = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
  for (; i < n; ++i) s += v[i];
  return s;
}

// 2x2 max pooling with stride 2 in float, planes of even (h, w), in SIMD (kernels/conv_hwy.cpp). x_end: the end of the
// readable input. Same results as maxpool_ref.
void maxpool2x2_forward(const float* x, const float* x_end, float* y, uint8_t* argmax, size_t planes, int h, int w);
// Its backward (conv_hwy.cpp): every dx value written once; gate as in maxpool_backward. Same results as
// maxpool_backward_ref.
void maxpool2x2_backward(const float* dy, const uint8_t* argmax, const float* gate, float* dx, size_t planes, int h, int w);

// Whether a pooling runs through the 2x2 SIMD kernels (float only, by the callers): 2x2 windows with stride 2 on
// planes of even height and width, which the windows tile.
inline bool pool2x2_simd(const ConvGeometry& g) { return g.k == 2 && g.stride == 2 && g.h % 2 == 0 && g.w % 2 == 0; }

// Max pooling windows are at most this wide (k * k - 1 fits the argmax's byte).
constexpr int kMaxPoolWindow = 15;

// x: (n, C, H, W) -> y: (n, C, OH, OW); argmax: (n, C, OH, OW) the first maximum's place in its window, ki k + kj
// (one byte: a quarter of the memory traffic of a flat int32 index, written in forward and read in backward).
template <class T>
void maxpool_forward(const ConvGeometry& g, const T* x, T* y, uint8_t* argmax, int n) {
  const long planes = long(n) * g.c;
  if constexpr (std::is_same_v<T, float>) {
    // The common case in SIMD; other windows, odd sizes and double take the general loop below.
    if (pool2x2_simd(g)) {
      const size_t plane = size_t(g.h) * g.w, oplane = size_t(g.oh) * g.ow, per = 64;
      const T* end = x + size_t(planes) * plane;
#pragma omp parallel for schedule(static) if (planes * g.oh * g.ow > 65536)
      for (long p0 = 0; p0 < planes; p0 += long(per)) {
        const size_t cnt = std::min(size_t(planes - p0), per);
        maxpool2x2_forward(x + size_t(p0) * plane, end, y + size_t(p0) * oplane, argmax + size_t(p0) * oplane, cnt, g.h, g.w);
      }
      return;
    }
  }
#pragma omp parallel for schedule(static) if (planes * g.oh * g.ow > 65536)
  for (long pl = 0; pl < planes; ++pl) {
    const T* xc = x + size_t(pl) * g.h * g.w;
    T* yc = y + size_t(pl) * g.oh * g.ow;
    uint8_t* ac = argmax + size_t(pl) * g.oh * g.ow;
    for (int oy = 0; oy < g.oh; ++oy)
      for (int ox = 0; ox < g.ow; ++ox) {
        T best = -std::numeric_limits<T>::infinity();
        uint8_t at = 0;
        for (int ki = 0; ki < g.k; ++ki)
          for (int kj = 0; kj < g.k; ++kj) {
            const T v = xc[(oy * g.stride + ki) * g.w + ox * g.stride + kj];
            if (v > best || v != v) { best = v; at = uint8_t(ki * g.k + kj); if (v != v) goto done; }
          }
      done:
        yc[oy * g.ow + ox] = best;
        ac[oy * g.ow + ox] = at;
      }
  }
}

// dx from dy through the argmax of each window. With gate (the pooled output y), a window passes its gradient only
// where its maximum is positive: the backward of a ReLU (derivative 0 at 0) before the pooling, taken in the same
// pass, since relu(x) > 0 exactly where x > 0 and the window's maximum is the value at its argmax. The plain loop,
// the test oracle: zero dx, then add each window's gradient at its argmax.
template <class T>
void maxpool_backward_ref(const ConvGeometry& g, const T* dy, const uint8_t* argmax, T* dx, int n, const T* gate = nullptr) {
  const long planes = long(n) * g.c;
#pragma omp parallel for schedule(static) if (planes * g.h * g.w > 65536)
  for (long pl = 0; pl < planes; ++pl) {
    T* dxc = dx + size_t(pl) * g.h * g.w;
    for (int i = 0; i < g.h * g.w; ++i) dxc[i] = T(0);
    const T* dyc = dy + size_t(pl) * g.oh * g.ow;
    const T* gc = gate ? gate + size_t(pl) * g.oh * g.ow : nullptr;
    const uint8_t* ac = argmax + size_t(pl) * g.oh * g.ow;
    for (int o = 0; o < g.oh * g.ow; ++o)
      if (!gc || gc[o] > T(0)) {
        const int oy = o / g.ow, ox = o % g.ow, ki = ac[o] / g.k, kj = ac[o] % g.k;
        dxc[(oy * g.stride + ki) * g.w + ox * g.stride + kj] += dyc[o];
      }
  }
}

// The same; 2x2 windows on even planes in float go to the SIMD kernel (windows tile the plane, each dx written once).
template <class T>
void maxpool_backward(const ConvGeometry& g, const T* dy, const uint8_t* argmax, T* dx, int n, const T* gate = nullptr) {
  if constexpr (std::is_same_v<T, float>) {
    if (pool2x2_simd(g)) {
      const long planes = long(n) * g.c, per = 64;
      const size_t plane = size_t(g.h) * g.w, oplane = size_t(g.oh) * g.ow;
#pragma omp parallel for schedule(static) if (planes * g.h * g.w > 65536)
      for (long p0 = 0; p0 < planes; p0 += per) {
        const size_t cnt = size_t(std::min(planes - p0, per)), o = size_t(p0) * oplane;
        maxpool2x2_backward(dy + o, argmax + o, gate ? gate + o : nullptr, dx + size_t(p0) * plane, cnt, g.h, g.w);
      }
      return;
    }
  }
  maxpool_backward_ref(g, dy, argmax, dx, n, gate);
}

// Average pooling, the plain loops (the oracle): each window's sum from 0 in window order, times 1 / k^2; backward:
// zero dx, then add each window's dy / k^2 to its values.
template <class T>
void avgpool_forward_ref(const ConvGeometry& g, const T* x, T* y, int n) {
  const long planes = long(n) * g.c;
  const T inv = T(1) / T(g.k * g.k);
  for (long pl = 0; pl < planes; ++pl) {
    const T* xc = x + size_t(pl) * g.h * g.w;
    T* yc = y + size_t(pl) * g.oh * g.ow;
    for (int oy = 0; oy < g.oh; ++oy)
      for (int ox = 0; ox < g.ow; ++ox) {
        T s = 0;
        for (int ki = 0; ki < g.k; ++ki)
          for (int kj = 0; kj < g.k; ++kj) s += xc[(oy * g.stride + ki) * g.w + ox * g.stride + kj];
        yc[oy * g.ow + ox] = s * inv;
      }
  }
}

template <class T>
void avgpool_backward_ref(const ConvGeometry& g, const T* dy, T* dx, int n) {
  const long planes = long(n) * g.c;
  const T inv = T(1) / T(g.k * g.k);
  for (long pl = 0; pl < planes; ++pl) {
    T* dxc = dx + size_t(pl) * g.h * g.w;
    for (int i = 0; i < g.h * g.w; ++i) dxc[i] = T(0);
    const T* dyc = dy + size_t(pl) * g.oh * g.ow;
    for (int oy = 0; oy < g.oh; ++oy)
      for (int ox = 0; ox < g.ow; ++ox)
        for (int ki = 0; ki < g.k; ++ki)
          for (int kj = 0; kj < g.k; ++kj) dxc[(oy * g.stride + ki) * g.w + ox * g.stride + kj] += dyc[oy * g.ow + ox] * inv;
  }
}

// 2x2 average pooling with stride 2 in float, planes of even (h, w), in SIMD (kernels/conv_hwy.cpp); x_end: the end
// of the readable input. The same bits as the references (the same additions in the same order).
void avgpool2x2_forward(const float* x, const float* x_end, float* y, size_t planes, int h, int w);
void avgpool2x2_backward(const float* dy, float* dx, size_t planes, int h, int w);

template <class T>
void avgpool_forward(const ConvGeometry& g, const T* x, T* y, int n) {
  if constexpr (std::is_same_v<T, float>) {
    if (pool2x2_simd(g)) {
      const size_t planes = size_t(n) * size_t(g.c);
      avgpool2x2_forward(x, x + planes * size_t(g.h) * size_t(g.w), y, planes, g.h, g.w);
      return;
    }
  }
  avgpool_forward_ref(g, x, y, n);
}

template <class T>
void avgpool_backward(const ConvGeometry& g, const T* dy, T* dx, int n) {
  if constexpr (std::is_same_v<T, float>) {
    if (pool2x2_simd(g)) {
      avgpool2x2_backward(dy, dx, size_t(n) * size_t(g.c), g.h, g.w);
      return;
    }
  }
  avgpool_backward_ref(g, dy, dx, n);
}

// Reference for max pooling: the first maximum in window order, a NaN taking the window.
template <class T>
void maxpool_ref(const ConvGeometry& g, const T* x, T* y, uint8_t* argmax, int n) {
  for (long pl = 0; pl < long(n) * g.c; ++pl)
    for (int oy = 0; oy < g.oh; ++oy)
      for (int ox = 0; ox < g.ow; ++ox) {
        T best = T(0);
        int at = -1;
        for (int ki = 0; ki < g.k && !(at >= 0 && best != best); ++ki)
          for (int kj = 0; kj < g.k; ++kj) {
            const T v = x[size_t(pl) * g.h * g.w + size_t((oy * g.stride + ki) * g.w + ox * g.stride + kj)];
            if (at < 0 || v > best || v != v) { best = v; at = ki * g.k + kj; }
            if (v != v) break;
          }
        y[(size_t(pl) * g.oh + oy) * g.ow + ox] = best;
        argmax[(size_t(pl) * g.oh + oy) * g.ow + ox] = uint8_t(at);
      }
}

// Reference: direct convolution, y (n, OC, OH, OW) = W * x + b, accumulated in double.
template <class T>
void conv2d_ref(const ConvGeometry& g, const T* x, const T* W, const T* b, T* y, int n) {
  for (int i = 0; i < n; ++i)
    for (int o = 0; o < g.oc; ++o)
      for (int oy = 0; oy < g.oh; ++oy)
        for (int ox = 0; ox < g.ow; ++ox) {
          double s = b[o];
          for (int c = 0; c < g.c; ++c)
            for (int ki = 0; ki < g.k; ++ki)
              for (int kj = 0; kj < g.k; ++kj) {
                const int iy = oy * g.stride - g.pad + ki, ix = ox * g.stride - g.pad + kj;
                if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
                s += double(W[((o * g.c + c) * g.k + ki) * g.k + kj]) * x[((size_t(i) * g.c + c) * g.h + iy) * g.w + ix];
              }
          y[((size_t(i) * g.oc + o) * g.oh + oy) * g.ow + ox] = T(s);
        }
}

}  // namespace rectifier::kernels
