// Winograd convolution F(4x4, 5x5) and F(4x4, 3x3) (kernels/winograd.h), in Highway, compiled for every x86-64
// target and dispatched at run time. Per image: the input is copied into a zero-padded grid in HWC order (channels
// padded to kWinoChannelPad, so a pixel's channels are whole vectors); then, by blocks of kTB tiles, each tile's
// A x A input (A = 8 or 6) is transformed (B^T d B, channels in the lanes) into V (f, tile, c), the A^2 products
// M (f) = V (f) U (f) run with kTB tiles by 2 vectors of output channels in registers, and each tile's A^2 products
// are transformed back (A^T M A) into its 4 x 4 outputs, written with the bias into y's planes.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/winograd_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "kernels/layout.h"
#include "kernels/transpose-inl.h"
#include "kernels/winograd.h"

HWY_BEFORE_NAMESPACE();
namespace rectifier::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int kTB = kWinoTiles;

// out = B^T in, for 6 values (a column or a row of a tile), the points 0, 1, -1, 2, -2 and infinity:
//   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
template <class D, class V>
HWY_INLINE void InputRows6(D d, const V* in, V* out) {
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

// out = B^T in, for 8 values, the points 0, 1, -1, 2, -2, 1/2, -1/2 and infinity (row j: the coefficients of
// the product of (x - p) over the other finite points; the last row, over all of them):
//   B^T = [-1 0 21/4 0 -21/4 0 1 0; 0 1 1 -17/4 -17/4 1 1 0; 0 -1 1 17/4 -17/4 -1 1 0;
//          0 1/2 1/4 -5/2 -5/4 2 1 0; 0 -1/2 1/4 5/2 -5/4 -2 1 0; 0 2 4 -5/2 -5 1/2 1 0;
//          0 -2 4 5/2 -5 -1/2 1 0; 0 -1 0 21/4 0 -21/4 0 1]
// Rows 1 and 2, 3 and 4, 5 and 6 are a + b and a - b (a from the even inputs, b from the odd ones).
template <class D, class V>
HWY_INLINE void InputRows8(D d, const V* in, V* out) {
  const V c21 = hn::Set(d, 5.25f), c17 = hn::Set(d, 4.25f), c5 = hn::Set(d, 5.0f), c4 = hn::Set(d, 4.0f);
  const V c25 = hn::Set(d, 2.5f), c2 = hn::Set(d, 2.0f), c125 = hn::Set(d, 1.25f), c05 = hn::Set(d, 0.5f),
          c025 = hn::Set(d, 0.25f);
  out[0] = hn::MulAdd(c21, hn::Sub(in[2], in[4]), hn::Sub(in[6], in[0]));
  out[7] = hn::MulAdd(c21, hn::Sub(in[3], in[5]), hn::Sub(in[7], in[1]));
  V a = hn::NegMulAdd(c17, in[4], hn::Add(in[2], in[6]));
  V b = hn::NegMulAdd(c17, in[3], hn::Add(in[1], in[5]));
  out[1] = hn::Add(a, b);
  out[2] = hn::Sub(a, b);
  a = hn::NegMulAdd(c125, in[4], hn::MulAdd(c025, in[2], in[6]));
  b = hn::MulAdd(c2, in[5], hn::NegMulAdd(c25, in[3], hn::Mul(c05, in[1])));
  out[3] = hn::Add(a, b);
  out[4] = hn::Sub(a, b);
  a = hn::NegMulAdd(c5, in[4], hn::MulAdd(c4, in[2], in[6]));
  b = hn::MulAdd(c05, in[5], hn::NegMulAdd(c25, in[3], hn::Mul(c2, in[1])));
  out[5] = hn::Add(a, b);
  out[6] = hn::Sub(a, b);
}

template <int A, class D, class V>
HWY_INLINE void InputRows(D d, const V* in, V* out) {
  if constexpr (A == 6) InputRows6(d, in, out);
  else InputRows8(d, in, out);
}

// out = A^T in, 4 rows of A values: A^T (i, j) = p_j^i, and 1 in the last row's last column (infinity). The points
// come in pairs p, -p after 0: sums and differences of each pair.
template <int A, class D, class V>
HWY_INLINE void OutputRows(D d, const V* in, V* out) {
  const V s12 = hn::Add(in[1], in[2]), d12 = hn::Sub(in[1], in[2]);
  const V s34 = hn::Add(in[3], in[4]), d34 = hn::Sub(in[3], in[4]);
  if constexpr (A == 6) {
    out[0] = hn::Add(hn::Add(in[0], s12), s34);
    out[1] = hn::MulAdd(hn::Set(d, 2.0f), d34, d12);
    out[2] = hn::MulAdd(hn::Set(d, 4.0f), s34, s12);
    out[3] = hn::Add(hn::MulAdd(hn::Set(d, 8.0f), d34, d12), in[5]);
  } else {  // and the points 1/2, -1/2
    const V s56 = hn::Add(in[5], in[6]), d56 = hn::Sub(in[5], in[6]);
    out[0] = hn::Add(hn::Add(in[0], s12), hn::Add(s34, s56));
    out[1] = hn::MulAdd(hn::Set(d, 0.5f), d56, hn::MulAdd(hn::Set(d, 2.0f), d34, d12));
    out[2] = hn::MulAdd(hn::Set(d, 0.25f), s56, hn::MulAdd(hn::Set(d, 4.0f), s34, s12));
    out[3] = hn::Add(hn::MulAdd(hn::Set(d, 0.125f), d56, hn::MulAdd(hn::Set(d, 8.0f), d34, d12)), in[7]);
  }
}

// V = B^T d B for one A x A input tile at src (HWC, rows WG pixels apart, cp channels a pixel) into vb + f tiles cp
// (f = i A + j, the channels in the lanes).
template <int A, class D>
HWY_INLINE void InputTile(D d, const float* HWY_RESTRICT src, int WG, size_t cp, float* HWY_RESTRICT vb, int tiles) {
  using V = hn::Vec<D>;
  const size_t L = hn::Lanes(d);
  for (size_t cv = 0; cv < cp; cv += L) {
    V tmp[A][A];
    for (int j = 0; j < A; ++j) {
      V col[A], out[A];
      for (int i = 0; i < A; ++i) col[i] = hn::LoadU(d, src + (size_t(i) * size_t(WG) + size_t(j)) * cp + cv);
      InputRows<A>(d, col, out);
      for (int i = 0; i < A; ++i) tmp[i][j] = out[i];
    }
    for (int i = 0; i < A; ++i) {
      V out[A];
      InputRows<A>(d, tmp[i], out);
      for (int j = 0; j < A; ++j) hn::StoreU(out[j], d, vb + size_t(i * A + j) * size_t(tiles) * cp + cv);
    }
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

// A row of 4 outputs of a tile, v[j] holding pixel j's channels (one per lane), into the first `lanes` channel
// planes of y (P floats apart) at dst, its first `cols` pixels: transposed, so that each channel's 4 pixels are
// side by side (a 16-byte copy, not 4 single floats). `lane` holds 4 vectors.
template <class D>
HWY_INLINE void StoreRow(D d, const hn::Vec<D>* v, size_t lanes, int cols, size_t P, float* HWY_RESTRICT dst,
                         float* HWY_RESTRICT lane) {
  const size_t L = hn::Lanes(d);
#if HWY_TARGET != HWY_SCALAR
  hn::Vec<D> q[4];
  Transpose4(d, v, q);  // block blk of q[k]: the 4 pixels of channel 4 blk + k
  for (int k = 0; k < 4; ++k) hn::Store(q[k], d, lane + size_t(k) * L);
  for (size_t l = 0; l < lanes; ++l) {
    const float* src = lane + (l % 4) * L + (l / 4) * 4;
    float* o = dst + l * P;
    if (cols == 4) {
      std::memcpy(o, src, 4 * sizeof(float));
    } else {
      for (int j = 0; j < cols; ++j) o[j] = src[j];
    }
  }
#else
  for (int j = 0; j < cols; ++j) {
    hn::Store(v[j], d, lane);
    for (size_t l = 0; l < lanes; ++l) dst[l * P + size_t(j)] = lane[l];
  }
  (void)L;
#endif
}

template <int R, int F, class D>
HWY_INLINE void Products(D d, const float* Vb, size_t cp, const float* U, size_t ocp, float* Mb) {
  const size_t L = hn::Lanes(d);
  for (int f = 0; f < F; ++f) {
    const float* Vf = Vb + size_t(f) * kTB * cp;
    const float* Uf = U + size_t(f) * cp * ocp;
    float* Mf = Mb + size_t(f) * kTB * ocp;
    size_t o = 0;
    for (; o + 2 * L <= ocp; o += 2 * L) ProductTile<R, 2>(d, Vf, cp, Uf + o, ocp, Mf + o);
    if (o < ocp) ProductTile<R, 1>(d, Vf, cp, Uf + o, ocp, Mf + o);
  }
}

// F(M x M, k x k) on A x A tiles, k = A + 1 - M.
template <int A, int M>
void Convolve(const float* HWY_RESTRICT x, int C, int H, int W, int pad, int OC, int OH, int OW, int TH, int TW,
              int HG, int WG, size_t cp, size_t ocp, const float* HWY_RESTRICT U, const float* HWY_RESTRICT bias,
              float* HWY_RESTRICT y, float* HWY_RESTRICT scratch) {
  static_assert(M == 4, "StoreRow writes a tile's rows of 4 outputs");
  constexpr int F = A * A;
  const hn::ScalableTag<float> d;
  using V = hn::Vec<decltype(d)>;
  const size_t L = hn::Lanes(d), P = size_t(OH) * size_t(OW);
  float* grid = scratch;
  float* Vb = grid + size_t(HG) * size_t(WG) * cp;  // a block's transformed tiles (f, tile, c)
  float* Mb = Vb + size_t(F) * kTB * cp;             // and their products (f, tile, o)
  float* bp = Mb + size_t(F) * kTB * ocp;            // the bias, padded
  for (size_t o = 0; o < ocp; ++o) bp[o] = bias && o < size_t(OC) ? bias[o] : 0.0f;
  // the input into the grid's insides, HWC (its borders and padding channels stay zero)
  chw_to_hwc(x, C, H, W, grid + (size_t(pad) * size_t(WG) + size_t(pad)) * cp, size_t(WG), cp);
  HWY_ALIGN float lane[4 * HWY_MAX_BYTES / sizeof(float)];
  const int T = TH * TW;
  for (int t0 = 0; t0 < T; t0 += kTB) {
    const int R = std::min(kTB, T - t0);
    for (int r = 0; r < R; ++r) {  // V = B^T d B, tile by tile
      const int ty = (t0 + r) / TW, tx = (t0 + r) % TW;
      const float* src = grid + (size_t(ty * M) * size_t(WG) + size_t(tx * M)) * cp;
      InputTile<A>(d, src, WG, cp, Vb + size_t(r) * cp, kTB);
    }
    switch (R) {
      case 6: Products<6, F>(d, Vb, cp, U, ocp, Mb); break;
      case 5: Products<5, F>(d, Vb, cp, U, ocp, Mb); break;
      case 4: Products<4, F>(d, Vb, cp, U, ocp, Mb); break;
      case 3: Products<3, F>(d, Vb, cp, U, ocp, Mb); break;
      case 2: Products<2, F>(d, Vb, cp, U, ocp, Mb); break;
      default: Products<1, F>(d, Vb, cp, U, ocp, Mb); break;
    }
    for (int r = 0; r < R; ++r) {  // Y = A^T M A, tile by tile, into y's planes with the bias
      const int ty = (t0 + r) / TW, tx = (t0 + r) % TW;
      for (size_t ov = 0; ov < size_t(OC); ov += L) {
        V tmp[M][A];
        for (int j = 0; j < A; ++j) {
          V col[A], out[M];
          for (int i = 0; i < A; ++i) col[i] = hn::LoadU(d, Mb + (size_t(i * A + j) * kTB + size_t(r)) * ocp + ov);
          OutputRows<A>(d, col, out);
          for (int i = 0; i < M; ++i) tmp[i][j] = out[i];
        }
        const V b = hn::LoadU(d, bp + ov);
        const size_t lanes = std::min(L, size_t(OC) - ov);
        const int cols = std::min(M, OW - tx * M);
        for (int i = 0; i < M && ty * M + i < OH; ++i) {
          V out[M];
          OutputRows<A>(d, tmp[i], out);
          for (int j = 0; j < M; ++j) out[j] = hn::Add(out[j], b);
          float* dst = y + ov * P + size_t(ty * M + i) * size_t(OW) + size_t(tx * M);
          StoreRow(d, out, lanes, cols, P, dst, lane);
        }
      }
    }
  }
}

// out = A in, 4 values (a row or a column of a 4 x 4 block of dy) onto the A points: out[j] = in0 + p in1 + p^2 in2
// + p^3 in3 at the finite point p = p_j (A (j, i) = p_j^i, the transpose of OutputRows' A^T), out[A - 1] = in3
// (infinity). Pairs p, -p from the even and odd parts.
template <int A, class D, class V>
HWY_INLINE void GradRows(D d, const V* in, V* out) {
  out[0] = in[0];
  auto pair = [&](float p, int j) {
    const V e = hn::MulAdd(hn::Set(d, p * p), in[2], in[0]);
    const V o = hn::Mul(hn::Set(d, p), hn::MulAdd(hn::Set(d, p * p), in[3], in[1]));
    out[j] = hn::Add(e, o);
    out[j + 1] = hn::Sub(e, o);
  };
  pair(1.0f, 1);
  pair(2.0f, 3);
  if constexpr (A == 8) pair(0.5f, 5);
  out[A - 1] = in[3];
}

constexpr int kGradTiles = kWinoGradTiles;

// Mf (c, o) += sum over the block's R tiles r of Vf (r, c) Zf (r, o), for every f: kRC rows of c by NO vectors of o
// in registers, across the R tiles.
template <int NO, class D>
HWY_INLINE void GradProductTile(D d, const float* HWY_RESTRICT Vf, size_t cp, const float* HWY_RESTRICT Zf, size_t ocp,
                                int R, size_t c0, size_t o0, float* HWY_RESTRICT Mf) {
  constexpr int kRC = 4;
  const size_t L = hn::Lanes(d);
  using V = hn::Vec<D>;
  V acc[kRC][NO];
  for (int r = 0; r < kRC; ++r)
    for (int v = 0; v < NO; ++v) acc[r][v] = hn::LoadU(d, Mf + (c0 + size_t(r)) * ocp + o0 + size_t(v) * L);
  for (int t = 0; t < R; ++t) {
    V z[NO];
    for (int v = 0; v < NO; ++v) z[v] = hn::LoadU(d, Zf + size_t(t) * ocp + o0 + size_t(v) * L);
    for (int r = 0; r < kRC; ++r) {
      const V b = hn::Set(d, Vf[size_t(t) * cp + c0 + size_t(r)]);
      for (int v = 0; v < NO; ++v) acc[r][v] = hn::MulAdd(b, z[v], acc[r][v]);
    }
  }
  for (int r = 0; r < kRC; ++r)
    for (int v = 0; v < NO; ++v) hn::StoreU(acc[r][v], d, Mf + (c0 + size_t(r)) * ocp + o0 + size_t(v) * L);
}

// The weight gradient's products for one image, accumulated into M (f, c, o) (A^2 cp ocp floats): for each tile, V =
// B^T d B of the input tile as in Convolve, Z = A dY A^T of the tile's 4 x 4 block of dy (zero past the output's
// edges), and M (f) += V (f)^T Z (f) over the tiles (the gradient of U (f) = G w G^T; winograd_weight_grad_finish
// takes it back to the weights). dy: (OC, OH, OW) planes.
template <int A, int M>
void WeightGradImage(const float* HWY_RESTRICT x, const float* HWY_RESTRICT dy, int C, int H, int W, int pad, int OC,
                     int OH, int OW, int TH, int TW, int WG, size_t cp, size_t ocp, float* HWY_RESTRICT Macc,
                     float* HWY_RESTRICT scratch, size_t grid_floats) {
  constexpr int F = A * A;
  const hn::ScalableTag<float> d;
  using V = hn::Vec<decltype(d)>;
  const size_t L = hn::Lanes(d), WD = size_t(TW) * M;
  float* grid = scratch;
  float* dgrid = grid + grid_floats;                          // dy in HWC on the tiles' (TH M, TW M) positions
  float* Vb = dgrid + size_t(TH) * M * WD * ocp;              // a block's transformed input tiles (f, tile, c)
  float* Zb = Vb + size_t(F) * kGradTiles * cp;               // and dy tiles (f, tile, o)
  chw_to_hwc(x, C, H, W, grid + (size_t(pad) * size_t(WG) + size_t(pad)) * cp, size_t(WG), cp);
  chw_to_hwc(dy, OC, OH, OW, dgrid, WD, ocp);
  const int T = TH * TW;
  for (int t0 = 0; t0 < T; t0 += kGradTiles) {
    const int R = std::min(kGradTiles, T - t0);
    for (int r = 0; r < R; ++r) {
      const int ty = (t0 + r) / TW, tx = (t0 + r) % TW;
      const float* src = grid + (size_t(ty * M) * size_t(WG) + size_t(tx * M)) * cp;
      InputTile<A>(d, src, WG, cp, Vb + size_t(r) * cp, kGradTiles);  // V = B^T d B
      const float* dsrc = dgrid + (size_t(ty * M) * WD + size_t(tx * M)) * ocp;
      for (size_t ov = 0; ov < ocp; ov += L) {  // Z = A dY A^T
        V tmp[A][M];
        for (int j = 0; j < M; ++j) {
          V col[M], out[A];
          for (int i = 0; i < M; ++i) col[i] = hn::LoadU(d, dsrc + (size_t(i) * WD + size_t(j)) * ocp + ov);
          GradRows<A>(d, col, out);
          for (int i = 0; i < A; ++i) tmp[i][j] = out[i];
        }
        for (int i = 0; i < A; ++i) {
          V out[A];
          GradRows<A>(d, tmp[i], out);
          for (int j = 0; j < A; ++j) hn::StoreU(out[j], d, Zb + (size_t(i * A + j) * kGradTiles + size_t(r)) * ocp + ov);
        }
      }
    }
    for (int f = 0; f < F; ++f) {
      const float* Vf = Vb + size_t(f) * kGradTiles * cp;
      const float* Zf = Zb + size_t(f) * kGradTiles * ocp;
      float* Mf = Macc + size_t(f) * cp * ocp;
      for (size_t c0 = 0; c0 < cp; c0 += 4) {
        size_t o = 0;
        for (; o + 2 * L <= ocp; o += 2 * L) GradProductTile<2>(d, Vf, cp, Zf, ocp, R, c0, o, Mf);
        if (o < ocp) GradProductTile<1>(d, Vf, cp, Zf, ocp, R, c0, o, Mf);
      }
    }
  }
}

void WinogradWeightGrad(const float* HWY_RESTRICT x, const float* HWY_RESTRICT dy, int C, int H, int W, int pad,
                        int OC, int OH, int OW, int alpha, int TH, int TW, int HG, int WG, size_t cp, size_t ocp,
                        float* HWY_RESTRICT Macc, float* HWY_RESTRICT scratch) {
  const size_t grid = size_t(HG) * size_t(WG) * cp;
  if (alpha == 8) WeightGradImage<8, 4>(x, dy, C, H, W, pad, OC, OH, OW, TH, TW, WG, cp, ocp, Macc, scratch, grid);
  else WeightGradImage<6, 4>(x, dy, C, H, W, pad, OC, OH, OW, TH, TW, WG, cp, ocp, Macc, scratch, grid);
}

// dw (o, c, a, b) += sum over (i, j) of G (i, a) M (i A + j, c, o) G (j, b) (G: A rows of 5), the output channels
// in the lanes: first t (i, b) = sum over j of M (i A + j) G (j, b) (each M vector loaded once), then the sums over
// i. In float, as the forward's output transform: once per chunk of images, 16 lanes to double's 8 (17-21 against
// 45-47 us for 32 x 16 5x5 kernels).
void WeightGradFinish(const float* HWY_RESTRICT M, int A, int k, size_t cp, size_t ocp, int C, int OC,
                      const float* HWY_RESTRICT G, float* HWY_RESTRICT dw) {
  const hn::ScalableTag<float> d;
  using V = hn::Vec<decltype(d)>;
  const size_t L = hn::Lanes(d), kk = size_t(k) * size_t(k);
  // a block of results, (a k + b, lane): then each output channel's k^2 weights, consecutive in dw, in one go
  HWY_ALIGN float res[25 * HWY_MAX_BYTES / sizeof(float)];
  for (int c = 0; c < C; ++c)
    for (size_t o0 = 0; o0 < size_t(OC); o0 += L) {
      const float* m = M + size_t(c) * ocp + o0;  // M (f, c, o0 + lanes) at m + f cp ocp
      V t[kWinoMaxAlpha][5];
      for (int i = 0; i < A; ++i) {
        for (int b = 0; b < k; ++b) t[i][b] = hn::Zero(d);
        for (int j = 0; j < A; ++j) {
          const V v = hn::LoadU(d, m + size_t(i * A + j) * cp * ocp);
          for (int b = 0; b < k; ++b) t[i][b] = hn::MulAdd(v, hn::Set(d, G[j * 5 + b]), t[i][b]);
        }
      }
      for (int a = 0; a < k; ++a)
        for (int b = 0; b < k; ++b) {
          V v = hn::Zero(d);
          for (int i = 0; i < A; ++i) v = hn::MulAdd(hn::Set(d, G[i * 5 + a]), t[i][b], v);
          hn::Store(v, d, res + size_t(a * k + b) * L);
        }
      for (size_t l = 0; l < L && o0 + l < size_t(OC); ++l) {
        float* w = dw + ((o0 + l) * size_t(C) + size_t(c)) * kk;
        for (size_t ab = 0; ab < kk; ++ab) w[ab] += res[ab * L + l];
      }
    }
}

void WinogradConv(const float* HWY_RESTRICT x, int C, int H, int W, int pad, int OC, int OH, int OW, int alpha,
                  int TH, int TW, int HG, int WG, size_t cp, size_t ocp, const float* HWY_RESTRICT U,
                  const float* HWY_RESTRICT bias, float* HWY_RESTRICT y, float* HWY_RESTRICT scratch) {
  if (alpha == 8) Convolve<8, 4>(x, C, H, W, pad, OC, OH, OW, TH, TW, HG, WG, cp, ocp, U, bias, y, scratch);
  else Convolve<6, 4>(x, C, H, W, pad, OC, OH, OW, TH, TW, HG, WG, cp, ocp, U, bias, y, scratch);
}

}  // namespace rectifier::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <vector>

namespace rectifier::kernels {
HWY_EXPORT(WinogradConv);
HWY_EXPORT(WinogradWeightGrad);
HWY_EXPORT(WeightGradFinish);

namespace {
size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }
}  // namespace

bool winograd_applies(const ConvGeometry& g) {
  return g.stride == 1 && (g.k == 3 || g.k == 5) && g.pad <= g.k - 1 && g.c >= 8 && g.oh >= 1 && g.ow >= 1;
}

WinogradLayout winograd_layout(const ConvGeometry& g) {
  WinogradLayout l;
  l.alpha = g.k == 5 ? 8 : 6;
  l.m = l.alpha + 1 - g.k;
  l.th = (g.oh + l.m - 1) / l.m;
  l.tw = (g.ow + l.m - 1) / l.m;
  l.hg = l.th * l.m + g.k - 1;
  l.wg = l.tw * l.m + g.k - 1;
  l.cp = round_up(size_t(g.c), kWinoChannelPad);
  l.ocp = round_up(size_t(g.oc), kWinoChannelPad);
  const size_t f = size_t(l.alpha) * size_t(l.alpha);
  l.scratch = size_t(l.hg) * size_t(l.wg) * l.cp + f * kWinoTiles * (l.cp + l.ocp) + l.ocp;
  return l;
}

size_t winograd_weights_floats(const ConvGeometry& g) {
  const WinogradLayout l = winograd_layout(g);
  return size_t(l.alpha) * size_t(l.alpha) * l.cp * l.ocp;
}

// G (alpha x k): row j < alpha - 1 is p_j^a / N_j at the finite point p_j, N_j the product of (p_j - p_l) over the
// other finite points (the scale that goes with B^T's rows above); the last row (infinity) picks the last tap.
using GMatrix = double[kWinoMaxAlpha][5];
void winograd_g(int k, int A, GMatrix& G) {
  const double p[kWinoMaxAlpha - 1] = {0, 1, -1, 2, -2, 0.5, -0.5};
  for (auto& row : G) std::fill(row, row + 5, 0.0);
  for (int j = 0; j < A - 1; ++j) {
    double n = 1;
    for (int q = 0; q < A - 1; ++q)
      if (q != j) n *= p[j] - p[q];
    double v = 1 / n;
    for (int a = 0; a < k; ++a, v *= p[j]) G[j][a] = v;
  }
  G[A - 1][k - 1] = 1;
}

void winograd_weights(const ConvGeometry& g, const float* W, float* U, bool transposed) {
  const WinogradLayout l = winograd_layout(g);
  const int k = g.k, A = l.alpha;
  GMatrix G;
  winograd_g(k, A, G);
  std::fill(U, U + winograd_weights_floats(g), 0.0f);
  for (int o = 0; o < g.oc; ++o)
    for (int c = 0; c < g.c; ++c) {
      // tap (a, b) of w (o, c): forward W[o][c][a][b]; transposed (g is the input-gradient geometry, as in
      // pack_direct_weights) W[c][o][k-1-a][k-1-b], W being [g.c][g.oc][k][k]
      const size_t kk = size_t(k) * size_t(k);
      const float* w = W + (transposed ? size_t(c) * size_t(g.oc) + size_t(o) : size_t(o) * size_t(g.c) + size_t(c)) * kk;
      auto tap = [&](int a, int b) { return double(transposed ? w[kk - 1 - size_t(a * k + b)] : w[a * k + b]); };
      double t[kWinoMaxAlpha][5];  // G w
      for (int i = 0; i < A; ++i)
        for (int b = 0; b < k; ++b) {
          double v = 0;
          for (int a = 0; a < k; ++a) v += G[i][a] * tap(a, b);
          t[i][b] = v;
        }
      for (int i = 0; i < A; ++i)  // (G w) G^T
        for (int j = 0; j < A; ++j) {
          double v = 0;
          for (int b = 0; b < k; ++b) v += t[i][b] * G[j][b];
          U[(size_t(i * A + j) * l.cp + size_t(c)) * l.ocp + size_t(o)] = float(v);
        }
    }
}

void conv_winograd(const ConvGeometry& g, const float* x, const float* U, const float* bias, float* y, float* scratch) {
  const WinogradLayout l = winograd_layout(g);
  HWY_DYNAMIC_DISPATCH(WinogradConv)(x, g.c, g.h, g.w, g.pad, g.oc, g.oh, g.ow, l.alpha, l.th, l.tw, l.hg, l.wg, l.cp,
                                     l.ocp, U, bias, y, scratch);
}

size_t winograd_grad_scratch(const ConvGeometry& g) {
  const WinogradLayout l = winograd_layout(g);
  const size_t F = size_t(l.alpha) * size_t(l.alpha);
  return size_t(l.hg) * size_t(l.wg) * l.cp + size_t(l.th * l.m) * size_t(l.tw * l.m) * l.ocp +
         F * size_t(kWinoGradTiles) * (l.cp + l.ocp);
}

void winograd_weight_grad_image(const ConvGeometry& g, const float* x, const float* dy, float* M, float* scratch) {
  const WinogradLayout l = winograd_layout(g);
  HWY_DYNAMIC_DISPATCH(WinogradWeightGrad)(x, dy, g.c, g.h, g.w, g.pad, g.oc, g.oh, g.ow, l.alpha, l.th, l.tw, l.hg,
                                           l.wg, l.cp, l.ocp, M, scratch);
}

void winograd_weight_grad_finish(const ConvGeometry& g, const float* M, float* dw) {
  const WinogradLayout l = winograd_layout(g);
  GMatrix G;
  winograd_g(g.k, l.alpha, G);
  float Gf[kWinoMaxAlpha * 5];
  for (int i = 0; i < kWinoMaxAlpha * 5; ++i) Gf[i] = float(G[i / 5][i % 5]);
  HWY_DYNAMIC_DISPATCH(WeightGradFinish)(M, l.alpha, g.k, l.cp, l.ocp, g.c, g.oc, Gf, dw);
}

}  // namespace rectifier::kernels
#endif  // HWY_ONCE
