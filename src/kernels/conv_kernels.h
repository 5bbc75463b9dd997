// Convolution and pooling loops on raw NCHW arrays. Never allocate. im2col and col2im are serial: the convolution
// layer runs them per image inside its own parallel loop. The direct-convolution reference at the end is
// the test oracle for the im2col + GEMM path.
#pragma once
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <limits>

namespace rectifier::kernels {

struct ConvGeometry {
  int c, h, w;     // input channels, height, width
  int oc;          // output channels (pooling: = c)
  int k, stride, pad;
  int oh, ow;      // output height, width
};

// x: (G, C, H, W) -> col: (C*k*k, G*OH*OW), row (c, ki, kj), column (g, oy, ox); zero where the window is in padding.
// The output columns ox whose input column ox*stride - pad + kj lies inside [0, w): [lo, hi).
inline void valid_span(int ow, int w, int stride, int pad, int kj, int& lo, int& hi) {
  lo = 0;
  while (lo < ow && lo * stride - pad + kj < 0) ++lo;
  hi = ow;
  while (hi > lo && (hi - 1) * stride - pad + kj >= w) --hi;
}

// x: (G, C, H, W) -> col: (C*k*k, G*OH*OW), row (c, ki, kj), column (g, oy, ox); zero where the window is in padding.
template <class T>
void im2col(const ConvGeometry& g, const T* x, int G, T* col) {
  const int K = g.c * g.k * g.k, P = g.oh * g.ow;
  const size_t GP = size_t(G) * P;
  for (int r = 0; r < K; ++r) {
    const int c = r / (g.k * g.k), ki = (r / g.k) % g.k, kj = r % g.k;
    int lo, hi;
    valid_span(g.ow, g.w, g.stride, g.pad, kj, lo, hi);
    T* dst = col + size_t(r) * GP;
    for (int gi = 0; gi < G; ++gi) {
      const T* xc = x + (size_t(gi) * g.c + c) * g.h * g.w;
      for (int oy = 0; oy < g.oh; ++oy) {
        const int iy = oy * g.stride - g.pad + ki;
        T* d = dst + size_t(gi) * P + size_t(oy) * g.ow;
        if (iy < 0 || iy >= g.h) {
          std::fill(d, d + g.ow, T(0));
          continue;
        }
        const T* row = xc + size_t(iy) * g.w - g.pad + kj;  // row[ox * stride] is the input under output ox
        std::fill(d, d + lo, T(0));
        if (g.stride == 1) std::copy(row + lo, row + hi, d + lo);  // contiguous: a plain copy
        else for (int ox = lo; ox < hi; ++ox) d[ox] = row[ox * g.stride];
        std::fill(d + hi, d + g.ow, T(0));
      }
    }
  }
}

// The adjoint of im2col: dx (G, C, H, W) = sum of col entries over the windows each input falls in. Overwrites dx.
template <class T>
void col2im(const ConvGeometry& g, const T* col, int G, T* dx) {
  const int P = g.oh * g.ow;
  const size_t GP = size_t(G) * P;
  for (int c = 0; c < g.c; ++c) {
    for (int gi = 0; gi < G; ++gi) {
      T* xc = dx + (size_t(gi) * g.c + c) * g.h * g.w;
      std::fill(xc, xc + size_t(g.h) * g.w, T(0));
      for (int ki = 0; ki < g.k; ++ki)
        for (int kj = 0; kj < g.k; ++kj) {
          int lo, hi;
          valid_span(g.ow, g.w, g.stride, g.pad, kj, lo, hi);
          const T* src = col + size_t((c * g.k + ki) * g.k + kj) * GP + size_t(gi) * P;
          for (int oy = 0; oy < g.oh; ++oy) {
            const int iy = oy * g.stride - g.pad + ki;
            if (iy < 0 || iy >= g.h) continue;
            T* row = xc + size_t(iy) * g.w - g.pad + kj;
            const T* s = src + size_t(oy) * g.ow;
            if (g.stride == 1)
              for (int ox = lo; ox < hi; ++ox) row[ox] += s[ox];
            else
              for (int ox = lo; ox < hi; ++ox) row[ox * g.stride] += s[ox];
          }
        }
    }
  }
}

// x: (n, C, H, W) -> y: (n, C, OH, OW); argmax: (n, C, OH, OW) flat index into the channel plane of the first max.
template <class T>
void maxpool_forward(const ConvGeometry& g, const T* x, T* y, int32_t* argmax, int n) {
  const long planes = long(n) * g.c;
  if (g.k == 2 && g.stride == 2) {  // the common case, without the general loop's bookkeeping
#pragma omp parallel for schedule(static) if (planes * g.oh * g.ow > 65536)
    for (long pl = 0; pl < planes; ++pl) {
      const T* xc = x + size_t(pl) * g.h * g.w;
      T* yc = y + size_t(pl) * g.oh * g.ow;
      int32_t* ac = argmax + size_t(pl) * g.oh * g.ow;
      for (int oy = 0; oy < g.oh; ++oy) {
        const T* r0 = xc + size_t(2 * oy) * g.w;
        const T* r1 = r0 + g.w;
        for (int ox = 0; ox < g.ow; ++ox) {
          // first max in window order (0,0) (0,1) (1,0) (1,1), NaN wins, as the general loop
          const int j = 2 * ox;
          T best = r0[j];
          int32_t at = 2 * oy * g.w + j;
          if (!(best != best)) {
            if (r0[j + 1] > best || r0[j + 1] != r0[j + 1]) { best = r0[j + 1]; at = 2 * oy * g.w + j + 1; }
            if (!(best != best) && (r1[j] > best || r1[j] != r1[j])) { best = r1[j]; at = (2 * oy + 1) * g.w + j; }
            if (!(best != best) && (r1[j + 1] > best || r1[j + 1] != r1[j + 1])) { best = r1[j + 1]; at = (2 * oy + 1) * g.w + j + 1; }
          }
          yc[oy * g.ow + ox] = best;
          ac[oy * g.ow + ox] = at;
        }
      }
    }
    return;
  }
#pragma omp parallel for schedule(static) if (planes * g.oh * g.ow > 65536)
  for (long pl = 0; pl < planes; ++pl) {
    const T* xc = x + size_t(pl) * g.h * g.w;
    T* yc = y + size_t(pl) * g.oh * g.ow;
    int32_t* ac = argmax + size_t(pl) * g.oh * g.ow;
    for (int oy = 0; oy < g.oh; ++oy)
      for (int ox = 0; ox < g.ow; ++ox) {
        T best = -std::numeric_limits<T>::infinity();
        int32_t at = (oy * g.stride) * g.w + ox * g.stride;
        for (int ki = 0; ki < g.k; ++ki)
          for (int kj = 0; kj < g.k; ++kj) {
            const int idx = (oy * g.stride + ki) * g.w + ox * g.stride + kj;
            const T v = xc[idx];
            if (v > best || v != v) { best = v; at = idx; if (v != v) goto done; }
          }
      done:
        yc[oy * g.ow + ox] = best;
        ac[oy * g.ow + ox] = at;
      }
  }
}

template <class T>
void maxpool_backward(const ConvGeometry& g, const T* dy, const int32_t* argmax, T* dx, int n) {
  const long planes = long(n) * g.c;
#pragma omp parallel for schedule(static) if (planes * g.h * g.w > 65536)
  for (long pl = 0; pl < planes; ++pl) {
    T* dxc = dx + size_t(pl) * g.h * g.w;
    for (int i = 0; i < g.h * g.w; ++i) dxc[i] = T(0);
    const T* dyc = dy + size_t(pl) * g.oh * g.ow;
    const int32_t* ac = argmax + size_t(pl) * g.oh * g.ow;
    for (int o = 0; o < g.oh * g.ow; ++o) dxc[ac[o]] += dyc[o];
  }
}

template <class T>
void avgpool_forward(const ConvGeometry& g, const T* x, T* y, int n) {
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
void avgpool_backward(const ConvGeometry& g, const T* dy, T* dx, int n) {
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
