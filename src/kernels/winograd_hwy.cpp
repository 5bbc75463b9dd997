// Winograd convolution F(2x2, 5x5) and F(4x4, 3x3) (kernels/winograd.h), in Highway, compiled for every x86-64
// target and dispatched at run time. Per image: the input is copied into a zero-padded grid in HWC order (channels
// padded to kWinoChannelPad, so a pixel's channels are whole vectors); then, by blocks of kTB tiles, each tile's
// 6 x 6 input is transformed (B^T d B, channels in the lanes) into V (f, tile, c), the 36 products
// M (f) = V (f) U (f) run with kTB tiles by 2 vectors of output channels in registers, and each tile's 36 products
// are transformed back (A^T M A) into its m x m outputs, written with the bias into y's planes.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/winograd_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cstddef>

#include "kernels/winograd.h"

HWY_BEFORE_NAMESPACE();
namespace rectifier::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int kTB = kWinoTiles;

// out = B^T in, for 6 values (a column or a row of a tile), the points 0, 1, -1, 2, -2 and infinity:
//   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
template <class D, class V>
HWY_INLINE void InputRows(D d, const V* in, V* out) {
  const V c2 = hn::Set(d, 2.0f), c4 = hn::Set(d, 4.0f), c5 = hn::Set(d, 5.0f);
  out[0] = hn::NegMulAdd(c5, in[2], hn::MulAdd(c4, in[0], in[4]));
  const V s12 = hn::Add(in[1], in[2]), s34 = hn::Add(in[3], in[4]);
  out[1] = hn::NegMulAdd(c4, s12, s34);
  const V d12 = hn::Sub(in[1], in[2]), d43 = hn::Sub(in[4], in[3]);
  out[2] = hn::MulAdd(c4, d12, d43);
  const V d42 = hn::Sub(in[4], in[2]), d31 = hn::Sub(in[3], in[1]);
  out[3] = hn::MulAdd(c2, d31, d42);
  out[4] = hn::NegMulAdd(c2, d31, d42);
  out[5] = hn::NegMulAdd(c5, in[3], hn::MulAdd(c4, in[1], in[5]));
}

// out = A^T in, for 6 values to M: A^T (i, j) = p_j^i, and 1 in the last row's last column (infinity)
template <int M, class D, class V>
HWY_INLINE void OutputRows(D d, const V* in, V* out) {
  const V s12 = hn::Add(in[1], in[2]), d12 = hn::Sub(in[1], in[2]);
  const V s34 = hn::Add(in[3], in[4]), d34 = hn::Sub(in[3], in[4]);
  out[0] = hn::Add(hn::Add(in[0], s12), s34);
  if constexpr (M == 2) {
    out[1] = hn::Add(hn::MulAdd(hn::Set(d, 2.0f), d34, d12), in[5]);
  } else {
    out[1] = hn::MulAdd(hn::Set(d, 2.0f), d34, d12);
    out[2] = hn::MulAdd(hn::Set(d, 4.0f), s34, s12);
    out[3] = hn::Add(hn::MulAdd(hn::Set(d, 8.0f), d34, d12), in[5]);
  }
}

// Mf (r, o + [0, NO L)) = sum over c of Vf (r, c) Uf (c, o + ...), for the R tiles of a block.
template <int R, int NO, class D>
HWY_INLINE void ProductTile(D d, const float* HWY_RESTRICT Vf, size_t cp, const float* HWY_RESTRICT Uf, size_t ocp,
                            float* HWY_RESTRICT Mf) {
  const size_t L = hn::Lanes(d);
  using V = hn::Vec<D>;
  V acc[R][NO];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NO; ++v) acc[r][v] = hn::Zero(d);
  for (size_t c = 0; c < cp; ++c) {
    V u[NO];
    for (int v = 0; v < NO; ++v) u[v] = hn::LoadU(d, Uf + c * ocp + size_t(v) * L);
    for (int r = 0; r < R; ++r) {
      const V b = hn::Set(d, Vf[size_t(r) * cp + c]);
      for (int v = 0; v < NO; ++v) acc[r][v] = hn::MulAdd(b, u[v], acc[r][v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NO; ++v) hn::StoreU(acc[r][v], d, Mf + size_t(r) * ocp + size_t(v) * L);
}

template <int R, class D>
HWY_INLINE void Products(D d, const float* Vb, size_t cp, const float* U, size_t ocp, float* Mb) {
  const size_t L = hn::Lanes(d);
  for (int f = 0; f < kWinoF; ++f) {
    const float* Vf = Vb + size_t(f) * kTB * cp;
    const float* Uf = U + size_t(f) * cp * ocp;
    float* Mf = Mb + size_t(f) * kTB * ocp;
    size_t o = 0;
    for (; o + 2 * L <= ocp; o += 2 * L) ProductTile<R, 2>(d, Vf, cp, Uf + o, ocp, Mf + o);
    if (o < ocp) ProductTile<R, 1>(d, Vf, cp, Uf + o, ocp, Mf + o);
  }
}

template <int M>
void Convolve(const float* HWY_RESTRICT x, int C, int H, int W, int pad, int OC, int OH, int OW, int TH, int TW,
              int HG, int WG, size_t cp, size_t ocp, const float* HWY_RESTRICT U, const float* HWY_RESTRICT bias,
              float* HWY_RESTRICT y, float* HWY_RESTRICT scratch) {
  const hn::ScalableTag<float> d;
  using V = hn::Vec<decltype(d)>;
  const size_t L = hn::Lanes(d), P = size_t(OH) * size_t(OW);
  float* grid = scratch;
  float* Vb = grid + size_t(HG) * size_t(WG) * cp;  // a block's transformed tiles (f, tile, c)
  float* Mb = Vb + size_t(kWinoF) * kTB * cp;        // and their products (f, tile, o)
  float* bp = Mb + size_t(kWinoF) * kTB * ocp;       // the bias, padded
  for (size_t o = 0; o < ocp; ++o) bp[o] = bias && o < size_t(OC) ? bias[o] : 0.0f;
  // the input into the grid's insides, HWC (its borders and padding channels stay zero)
  for (int c = 0; c < C; ++c)
    for (int r = 0; r < H; ++r) {
      const float* src = x + (size_t(c) * size_t(H) + size_t(r)) * size_t(W);
      float* dst = grid + (size_t(r + pad) * size_t(WG) + size_t(pad)) * cp + size_t(c);
      for (int j = 0; j < W; ++j) dst[size_t(j) * cp] = src[j];
    }
  HWY_ALIGN float lane[HWY_MAX_BYTES / sizeof(float)];
  const int T = TH * TW;
  for (int t0 = 0; t0 < T; t0 += kTB) {
    const int R = std::min(kTB, T - t0);
    for (int r = 0; r < R; ++r) {  // V = B^T d B, tile by tile
      const int ty = (t0 + r) / TW, tx = (t0 + r) % TW;
      const float* src = grid + (size_t(ty * M) * size_t(WG) + size_t(tx * M)) * cp;
      for (size_t cv = 0; cv < cp; cv += L) {
        V tmp[kWinoAlpha][kWinoAlpha];
        for (int j = 0; j < kWinoAlpha; ++j) {
          V col[kWinoAlpha], out[kWinoAlpha];
          for (int i = 0; i < kWinoAlpha; ++i) col[i] = hn::LoadU(d, src + (size_t(i) * size_t(WG) + size_t(j)) * cp + cv);
          InputRows(d, col, out);
          for (int i = 0; i < kWinoAlpha; ++i) tmp[i][j] = out[i];
        }
        for (int i = 0; i < kWinoAlpha; ++i) {
          V out[kWinoAlpha];
          InputRows(d, tmp[i], out);
          for (int j = 0; j < kWinoAlpha; ++j)
            hn::StoreU(out[j], d, Vb + (size_t(i * kWinoAlpha + j) * kTB + size_t(r)) * cp + cv);
        }
      }
    }
    switch (R) {
      case 6: Products<6>(d, Vb, cp, U, ocp, Mb); break;
      case 5: Products<5>(d, Vb, cp, U, ocp, Mb); break;
      case 4: Products<4>(d, Vb, cp, U, ocp, Mb); break;
      case 3: Products<3>(d, Vb, cp, U, ocp, Mb); break;
      case 2: Products<2>(d, Vb, cp, U, ocp, Mb); break;
      default: Products<1>(d, Vb, cp, U, ocp, Mb); break;
    }
    for (int r = 0; r < R; ++r) {  // Y = A^T M A, tile by tile, into y's planes with the bias
      const int ty = (t0 + r) / TW, tx = (t0 + r) % TW;
      for (size_t ov = 0; ov < size_t(OC); ov += L) {
        V tmp[M][kWinoAlpha];
        for (int j = 0; j < kWinoAlpha; ++j) {
          V col[kWinoAlpha], out[M];
          for (int i = 0; i < kWinoAlpha; ++i)
            col[i] = hn::LoadU(d, Mb + (size_t(i * kWinoAlpha + j) * kTB + size_t(r)) * ocp + ov);
          OutputRows<M>(d, col, out);
          for (int i = 0; i < M; ++i) tmp[i][j] = out[i];
        }
        const V b = hn::LoadU(d, bp + ov);
        const size_t lanes = std::min(L, size_t(OC) - ov);
        for (int i = 0; i < M && ty * M + i < OH; ++i) {
          V out[M];
          OutputRows<M>(d, tmp[i], out);
          for (int j = 0; j < M && tx * M + j < OW; ++j) {
            hn::Store(hn::Add(out[j], b), d, lane);
            float* dst = y + ov * P + size_t(ty * M + i) * size_t(OW) + size_t(tx * M + j);
            for (size_t l = 0; l < lanes; ++l) dst[l * P] = lane[l];
          }
        }
      }
    }
  }
}

void WinogradConv(const float* HWY_RESTRICT x, int C, int H, int W, int pad, int OC, int OH, int OW, int m, int TH,
                  int TW, int HG, int WG, size_t cp, size_t ocp, const float* HWY_RESTRICT U,
                  const float* HWY_RESTRICT bias, float* HWY_RESTRICT y, float* HWY_RESTRICT scratch) {
  if (m == 2) Convolve<2>(x, C, H, W, pad, OC, OH, OW, TH, TW, HG, WG, cp, ocp, U, bias, y, scratch);
  else Convolve<4>(x, C, H, W, pad, OC, OH, OW, TH, TW, HG, WG, cp, ocp, U, bias, y, scratch);
}

}  // namespace rectifier::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <vector>

namespace rectifier::kernels {
HWY_EXPORT(WinogradConv);

namespace {
size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }
}  // namespace

bool winograd_applies(const ConvGeometry& g) {
  return g.stride == 1 && (g.k == 3 || g.k == 5) && g.pad <= g.k - 1 && g.c >= 8 && g.oh >= 1 && g.ow >= 1;
}

WinogradLayout winograd_layout(const ConvGeometry& g) {
  WinogradLayout l;
  l.m = kWinoAlpha + 1 - g.k;
  l.th = (g.oh + l.m - 1) / l.m;
  l.tw = (g.ow + l.m - 1) / l.m;
  l.hg = l.th * l.m + g.k - 1;
  l.wg = l.tw * l.m + g.k - 1;
  l.cp = round_up(size_t(g.c), kWinoChannelPad);
  l.ocp = round_up(size_t(g.oc), kWinoChannelPad);
  l.scratch = size_t(l.hg) * size_t(l.wg) * l.cp + size_t(kWinoF) * kWinoTiles * (l.cp + l.ocp) + l.ocp;
  return l;
}

size_t winograd_weights_floats(const ConvGeometry& g) {
  const WinogradLayout l = winograd_layout(g);
  return size_t(kWinoF) * l.cp * l.ocp;
}

// G (6 x k): row j < 5 is s_j (1, p_j, p_j^2, ...) at the points p = 0, 1, -1, 2, -2 with the scales s that go
// with B^T above; row 5 (infinity) picks the last tap.
void winograd_weights(const ConvGeometry& g, const float* W, float* U) {
  const WinogradLayout l = winograd_layout(g);
  const int k = g.k;
  const double p[5] = {0, 1, -1, 2, -2}, s[5] = {1.0 / 4, -1.0 / 6, -1.0 / 6, 1.0 / 24, 1.0 / 24};
  double G[kWinoAlpha][5] = {};
  for (int j = 0; j < 5; ++j) {
    double v = s[j];
    for (int a = 0; a < k; ++a, v *= p[j]) G[j][a] = v;
  }
  G[5][k - 1] = 1;
  std::fill(U, U + winograd_weights_floats(g), 0.0f);
  for (int o = 0; o < g.oc; ++o)
    for (int c = 0; c < g.c; ++c) {
      const float* w = W + (size_t(o) * size_t(g.c) + size_t(c)) * size_t(k) * size_t(k);
      double t[kWinoAlpha][5];  // G w
      for (int i = 0; i < kWinoAlpha; ++i)
        for (int b = 0; b < k; ++b) {
          double v = 0;
          for (int a = 0; a < k; ++a) v += G[i][a] * double(w[a * k + b]);
          t[i][b] = v;
        }
      for (int i = 0; i < kWinoAlpha; ++i)  // (G w) G^T
        for (int j = 0; j < kWinoAlpha; ++j) {
          double v = 0;
          for (int b = 0; b < k; ++b) v += t[i][b] * G[j][b];
          U[(size_t(i * kWinoAlpha + j) * l.cp + size_t(c)) * l.ocp + size_t(o)] = float(v);
        }
    }
}

void conv_winograd(const ConvGeometry& g, const float* x, const float* U, const float* bias, float* y, float* scratch) {
  const WinogradLayout l = winograd_layout(g);
  HWY_DYNAMIC_DISPATCH(WinogradConv)(x, g.c, g.h, g.w, g.pad, g.oc, g.oh, g.ow, l.m, l.th, l.tw, l.hg, l.wg, l.cp,
                                     l.ocp, U, bias, y, scratch);
}

}  // namespace rectifier::kernels
#endif  // HWY_ONCE
