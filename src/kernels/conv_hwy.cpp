// Direct convolution, stride 1, for one image in float: the forward pass, with the weights flipped and their channels
// swapped the gradient with respect to the input, and the weight gradient; and 2x2 max pooling. Written in Highway,
// compiled for every x86-64 target and dispatched at run time.
//
// Layout: each input channel is copied into a zero-padded plane whose rows are Wp = w + pad wide, the right padding
// of one row doubling as the left padding of the next. Output (oy, ox) is then position q = oy * Wp + ox, and its
// input under kernel tap (ki, kj) sits at q + ki * Wp + kj for every q: the whole image is one flat 1-D correlation
// per tap, with no bounds checks, computed on every q in [0, oh * Wp) (the Wp - ow extra columns per row are thrown
// away). A tile holds kDirectOB output channels by kNV vectors of q in registers and runs over all C * k * k taps: per
// tap kNV loads, kDirectOB broadcasts of a weight and kDirectOB * kNV fused multiply-adds. This beats im2col + GEMM
// here: it never writes the column matrix, and OpenBLAS ran the reference CNN's per-image products (K = C * k * k =
// 25 or 400, M = 16 or 32) at 55-75% of its peak. In backward, dy on its grid, shifted by (k - 1 - pad) (Wp + 1),
// is the input gradient's padded plane, so one copy serves both gradients (direct_layout's gpre, glead, gs).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/conv_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include "kernels/nonzero-inl.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/conv_direct.h"
#include "kernels/sparse.h"

HWY_BEFORE_NAMESPACE();
namespace rectifier::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int kNV = 3;  // vectors of output positions per tile (kOB, output channels per tile, is in conv_direct.h)

// Vectors of q a tile covers, in floats: must divide kDirectTile.
size_t TileFloats() { return kNV * hn::Lanes(hn::ScalableTag<float>()); }

// Whether any of x[0, n) is non-zero (-0 counts as zero: it adds nothing; a NaN counts as non-zero).
HWY_INLINE uint8_t AnyNonZero(const float* HWY_RESTRICT x, size_t n) {
  const hn::ScalableTag<float> d;
  const hn::RebindToUnsigned<decltype(d)> du;
  const size_t L = hn::Lanes(d);
  auto any = hn::Zero(du);
  size_t i = 0;
  for (; i + L <= n; i += L) any = hn::Or(any, hn::BitCast(du, hn::LoadU(d, x + i)));
  bool nonzero = !hn::AllTrue(du, hn::Eq(hn::And(any, hn::Set(du, 0x7fffffffu)), hn::Zero(du)));
  for (; i < n; ++i) nonzero |= x[i] != 0.0f;
  return nonzero;
}

// One register tile: kDirectOB output channels (from ob) by NV vectors of q (from q0), over all C * k * k taps.
template <int NV, class D>
HWY_INLINE void ConvTile(D d, const float* HWY_RESTRICT xp, size_t cs, int C, int k, int Wp,
                         const float* HWY_RESTRICT wb, size_t q0, float* HWY_RESTRICT out, size_t ldo,
                         const uint8_t* HWY_RESTRICT nz) {
  const size_t L = hn::Lanes(d);
  using V = hn::Vec<D>;
  V acc[kDirectOB][NV];
  for (int o = 0; o < kDirectOB; ++o)
    for (int v = 0; v < NV; ++v) acc[o][v] = hn::Zero(d);
  const float* w = wb;
  for (int c = 0; c < C; ++c) {
    const float* xc = xp + size_t(c) * cs + q0;
    for (int ki = 0; ki < k; ++ki) {
      if (nz && !nz[c * k + ki]) {  // all the inputs this row of taps reads are zero
        w += size_t(k) * kDirectOB;
        continue;
      }
      const float* row = xc + size_t(ki) * size_t(Wp);
      for (int kj = 0; kj < k; ++kj, w += kDirectOB) {
        V xv[NV];
        for (int v = 0; v < NV; ++v) xv[v] = hn::LoadU(d, row + kj + size_t(v) * L);
        for (int o = 0; o < kDirectOB; ++o) {
          const V wv = hn::Set(d, w[o]);
          for (int v = 0; v < NV; ++v) acc[o][v] = hn::MulAdd(wv, xv[v], acc[o][v]);
        }
      }
    }
  }
  for (int o = 0; o < kDirectOB; ++o)
    for (int v = 0; v < NV; ++v) hn::StoreU(acc[o][v], d, out + size_t(o) * ldo + q0 + size_t(v) * L);
}

// out (OCpad, ldo) = the correlation of the planes xp (C planes of cs floats) with the packed weights wr
// ([OCpad / kOB][C][k][k][kOB]), at every q in [0, qn) rounded up to whole vectors: full tiles of kNV vectors, then
// one of the 1 or 2 vectors left (the reference CNN's second convolution has qn = 224: 9 tiles of 24 and one of 8,
// where rounding qn up to whole tiles would compute 240).
void DirectConv(const float* HWY_RESTRICT xp, size_t cs, int C, int k, int Wp, size_t qn, const float* HWY_RESTRICT wr,
                int ocpad, float* HWY_RESTRICT out, size_t ldo) {
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d), taps = size_t(C) * size_t(k) * size_t(k), qv = (qn + L - 1) / L * L;
  // For each tile of q and each row of taps (c, ki): whether any input it reads is non-zero (a ReLU's zeros, an
  // image's background, the padding), computed once for all the output channels; without room for them (more than
  // kMaxFlags), every row of taps is computed. In the reference CNN's second convolution (input: a ReLU then a max
  // pooling, 46% zero) 28% of the rows of taps read only zeros; skipping them made the forward pass 14% shorter and
  // the training step 9% (in-process A/B, docs/benchmarks.md, run 28).
  constexpr size_t kMaxFlags = 4096;
  uint8_t flags[kMaxFlags];
  const size_t tile = kNV * L, tiles = (qv + tile - 1) / tile, per = size_t(C) * size_t(k);
  const bool skip = tiles * per <= kMaxFlags;
  if (skip)
    for (size_t t = 0; t < tiles; ++t) {
      const size_t q0 = t * tile, span = std::min(tile, qv - q0) + size_t(k) - 1;
      for (int c = 0; c < C; ++c)
        for (int ki = 0; ki < k; ++ki)
          flags[t * per + size_t(c) * size_t(k) + size_t(ki)] =
              AnyNonZero(xp + size_t(c) * cs + q0 + size_t(ki) * size_t(Wp), span);
    }
  for (int ob = 0; ob < ocpad; ob += kDirectOB) {
    const float* wb = wr + size_t(ob) * taps;
    float* ob_out = out + size_t(ob) * ldo;
    size_t q0 = 0;
    auto nz = [&](size_t q) { return skip ? flags + q / tile * per : nullptr; };
    for (; q0 + kNV * L <= qv; q0 += kNV * L) ConvTile<kNV>(d, xp, cs, C, k, Wp, wb, q0, ob_out, ldo, nz(q0));
    if (qv - q0 == 2 * L) ConvTile<2>(d, xp, cs, C, k, Wp, wb, q0, ob_out, ldo, nz(q0));
    else if (qv - q0 == L) ConvTile<1>(d, xp, cs, C, k, Wp, wb, q0, ob_out, ldo, nz(q0));
  }
}

// dw (oc, C * k * k) += sum over G images and every q of dyq[o][q] * xp[c][q + ki * Wp + kj]: the weight gradient.
// dyq holds dy on the same q grid (channel planes dcs floats apart), zero in the thrown-away columns, so they add
// nothing. Images lie at xstride and dstride floats. A tile keeps kOB output channels by kDwTaps taps (any three
// (c, ki, kj), each a shifted view of the planes) in registers over all images and positions, then reduces each
// vector once.
constexpr int kDwTaps = 3;
template <int OB, class D>
HWY_INLINE void DirectWeightGradTile(D d, const float* HWY_RESTRICT xp, size_t xstride, size_t cs,
                                     const float* HWY_RESTRICT dyq, size_t dstride, int G, int k, int Wp, size_t dcs,
                                     size_t qv, int oc, int taps, int ob, int t0, float* HWY_RESTRICT dw) {
  const size_t L = hn::Lanes(d);
  const int kk = k * k;
  using V = hn::Vec<D>;
  size_t off[kDwTaps];
  for (int j = 0; j < kDwTaps; ++j) {
    const int t = std::min(t0 + j, taps - 1);  // past the end: repeat the last tap, its sums are not stored
    off[j] = size_t(t / kk) * cs + size_t((t % kk) / k) * size_t(Wp) + size_t(t % k);
  }
  V acc[OB][kDwTaps];
  for (int o = 0; o < OB; ++o)
    for (int j = 0; j < kDwTaps; ++j) acc[o][j] = hn::Zero(d);
  for (int g = 0; g < G; ++g) {
    const float* xg = xp + size_t(g) * xstride;
    const float* dg = dyq + size_t(g) * dstride + size_t(ob) * dcs;
    for (size_t q = 0; q < qv; q += L) {
      V xv[kDwTaps];
      for (int j = 0; j < kDwTaps; ++j) xv[j] = hn::LoadU(d, xg + off[j] + q);
      for (int o = 0; o < OB; ++o) {
        const V dv = hn::LoadU(d, dg + size_t(o) * dcs + q);
        for (int j = 0; j < kDwTaps; ++j) acc[o][j] = hn::MulAdd(dv, xv[j], acc[o][j]);
      }
    }
  }
  for (int o = 0; o < OB && ob + o < oc; ++o)
    for (int j = 0; j < kDwTaps && t0 + j < taps; ++j)
      dw[size_t(ob + o) * size_t(taps) + size_t(t0 + j)] += hn::GetLane(hn::SumOfLanes(d, acc[o][j]));
}

void DirectWeightGrad(const float* HWY_RESTRICT xp, size_t xstride, size_t cs, const float* HWY_RESTRICT dyq,
                      size_t dstride, int G, int C, int k, int Wp, size_t dcs, size_t qn, int oc, int ocpad,
                      float* HWY_RESTRICT dw) {
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d), qv = (qn + L - 1) / L * L;
  const int taps = C * k * k;
  // With 32 vector registers (AVX-512), two blocks of kDirectOB channels at once: 24 sums, and each x load serves
  // twice the channels
  constexpr int kWide = HWY_MAX_BYTES >= 64 ? 2 * kDirectOB : kDirectOB;
  int ob = 0;
  for (; ob + kWide <= ocpad; ob += kWide)
    for (int t0 = 0; t0 < taps; t0 += kDwTaps)
      DirectWeightGradTile<kWide>(d, xp, xstride, cs, dyq, dstride, G, k, Wp, dcs, qv, oc, taps, ob, t0, dw);
  for (; ob < ocpad; ob += kDirectOB)
    for (int t0 = 0; t0 < taps; t0 += kDwTaps)
      DirectWeightGradTile<kDirectOB>(d, xp, xstride, cs, dyq, dstride, G, k, Wp, dcs, qv, oc, taps, ob, t0, dw);
}

// A plane (rows, cols), contiguous, onto a grid of row stride wp >= cols: dst[prefix + r * wp + j] = src[r * cols + j]
// for j < cols, and every other value of dst [0, total) zero. This lays out the direct convolution's padded input
// planes (prefix = pad * wp + pad: the top padding rows and the first row's left padding) and dy on the output grid.
// Whole vectors throughout: a row's vectors may run into the next row's slots (rewritten by that row) and read past
// its end (those lanes are zeroed), never past src_end or total. Returns the sum of the values (in vector partial
// sums): dy's sum is the bias gradient. Without fill, [0, prefix) and what follows the rows are left alone: the caller
// keeps them zero (the backward's own buffers, zero from allocation: the weight gradient then finds in cache only the
// lines it reads).
float ToGrid(const float* HWY_RESTRICT src, const float* src_end, int rows, int cols, int wp, size_t prefix, size_t total,
             float* HWY_RESTRICT dst, bool fill) {
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d), span = (size_t(cols) + L - 1) / L * L;
  const auto zero = hn::Zero(d);
  size_t i = 0;
  for (; fill && i + L <= prefix; i += L) hn::StoreU(zero, d, dst + i);
  for (; fill && i < prefix; ++i) dst[i] = 0.0f;
  auto acc = zero;
  HWY_ALIGN float tmp[64];  // written before every use (a zero-initialised one cost a memset per call)
  for (int r = 0; r < rows; ++r) {
    const float* s = src + size_t(r) * size_t(cols);
    const size_t at = prefix + size_t(r) * size_t(wp);
    for (size_t c = 0; c < span; c += L) {
      hn::Vec<decltype(d)> v;
      if (c + L <= size_t(cols)) {
        v = hn::LoadU(d, s + c);
      } else if (s + c + L <= src_end) {
        v = hn::IfThenElseZero(hn::FirstN(d, size_t(cols) - c), hn::LoadU(d, s + c));
      } else {  // the plane's last values: through a buffer, so nothing past src_end is read
        for (size_t j = 0; j < L; ++j) tmp[j] = c + j < size_t(cols) ? s[c + j] : 0.0f;
        v = hn::Load(d, tmp);
      }
      acc = hn::Add(acc, v);
      if (at + c + L <= total) {
        hn::StoreU(v, d, dst + at + c);
      } else {
        hn::Store(v, d, tmp);
        for (size_t j = 0; at + c + j < total && j < L; ++j) dst[at + c + j] = tmp[j];
      }
    }
    // the columns past the vectors (wp > span only when wp - cols is a vector or more)
    for (size_t j = span; j < size_t(wp) && at + j < total; ++j) dst[at + j] = 0.0f;
  }
  for (i = prefix + size_t(rows) * size_t(wp); fill && i + L <= total; i += L) hn::StoreU(zero, d, dst + i);
  for (; fill && i < total; ++i) dst[i] = 0.0f;
  return hn::GetLane(hn::SumOfLanes(d, acc));
}

// The grid back to a plane: dst[r * cols + j] = src[r * wp + j] + b for j < cols. src is read in whole vectors up to
// src_end; dst is written in whole vectors (a row's last one running into the next row's slots, rewritten by it) but
// never past dst_end.
void FromGrid(const float* HWY_RESTRICT src, const float* src_end, int rows, int cols, int wp, float b,
              float* HWY_RESTRICT dst, const float* dst_end) {
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d);
  const auto bias = hn::Set(d, b);
  for (int r = 0; r < rows; ++r) {
    const float* s = src + size_t(r) * size_t(wp);
    float* o = dst + size_t(r) * size_t(cols);
    size_t c = 0;
    for (; c < size_t(cols) && s + c + L <= src_end && o + c + L <= dst_end; c += L)
      hn::StoreU(hn::Add(hn::LoadU(d, s + c), bias), d, o + c);
    for (; c < size_t(cols); ++c) o[c] = s[c] + b;
  }
}

// 2x2 max pooling, stride 2, over planes [0, planes) of (h, w), both even: y and the argmax within the window, one
// byte (0 1 / 2 3).
// The first maximum in window order (0,0) (0,1) (1,0) (1,1) wins and a NaN takes the window, as maxpool_ref. Pairs
// are deinterleaved from the rows; a row's last vector may read into the next row (its lanes are not stored), and
// whatever would read past x_end goes through the scalar loop.
void MaxPool2x2(const float* HWY_RESTRICT x, const float* x_end, float* HWY_RESTRICT y, uint8_t* HWY_RESTRICT am,
                size_t planes, int h, int w) {
  const hn::ScalableTag<float> d;
  const hn::RebindToSigned<decltype(d)> di;
  const hn::Rebind<uint8_t, decltype(d)> d8;
  const size_t L = hn::Lanes(d);
  const int oh = h / 2, ow = w / 2;
  const float* y_end = y + planes * size_t(oh) * size_t(ow);  // the same extent for am
  for (size_t pl = 0; pl < planes; ++pl) {
    const float* xc = x + pl * size_t(h) * size_t(w);
    float* yc = y + pl * size_t(oh) * size_t(ow);
    uint8_t* ac = am + pl * size_t(oh) * size_t(ow);
    for (int oy = 0; oy < oh; ++oy) {
      const float* r0 = xc + size_t(2 * oy) * size_t(w);
      const float* r1 = r0 + w;
      int ox = 0;
      for (; ox < ow && r1 + 2 * (size_t(ox) + L) <= x_end; ox += int(L)) {
        hn::Vec<decltype(d)> a, b, c, e;
        hn::LoadInterleaved2(d, r0 + 2 * ox, a, b);
        hn::LoadInterleaved2(d, r1 + 2 * ox, c, e);
        auto best = a;
        auto at = hn::Zero(di);
        auto take = hn::And(hn::Or(hn::Gt(b, best), hn::IsNaN(b)), hn::Eq(best, best));
        best = hn::IfThenElse(take, b, best);
        at = hn::IfThenElse(hn::RebindMask(di, take), hn::Set(di, 1), at);
        take = hn::And(hn::Or(hn::Gt(c, best), hn::IsNaN(c)), hn::Eq(best, best));
        best = hn::IfThenElse(take, c, best);
        at = hn::IfThenElse(hn::RebindMask(di, take), hn::Set(di, 2), at);
        take = hn::And(hn::Or(hn::Gt(e, best), hn::IsNaN(e)), hn::Eq(best, best));
        best = hn::IfThenElse(take, e, best);
        at = hn::IfThenElse(hn::RebindMask(di, take), hn::Set(di, 3), at);
        const auto at8 = hn::DemoteTo(d8, at);
        float* yo = yc + size_t(oy) * size_t(ow) + size_t(ox);
        uint8_t* ao = ac + size_t(oy) * size_t(ow) + size_t(ox);
        // A row's last vector may run into the next row's slots (rewritten by it) but not past this call's planes;
        // masked stores only there (on AMD Zen they are microcoded: 40% of this kernel's time when every row took one).
        if (size_t(ow - ox) >= L || yo + L <= y_end) {
          hn::StoreU(best, d, yo);
          hn::StoreU(at8, d8, ao);
        } else {
          hn::BlendedStore(best, hn::FirstN(d, size_t(ow - ox)), d, yo);
          hn::BlendedStore(at8, hn::FirstN(d8, size_t(ow - ox)), d8, ao);
        }
      }
      for (; ox < ow; ++ox) {  // the same selects, one window at a time
        const int j = 2 * ox;
        const float v[4] = {r0[j], r0[j + 1], r1[j], r1[j + 1]};
        float best = v[0];
        uint8_t at = 0;
        for (int t = 1; t < 4; ++t)
          if ((v[t] > best || v[t] != v[t]) && best == best) { best = v[t]; at = uint8_t(t); }
        yc[size_t(oy) * size_t(ow) + size_t(ox)] = best;
        ac[size_t(oy) * size_t(ow) + size_t(ox)] = at;
      }
    }
  }
}

// Rows of ow windows by whole vectors of d, then one more ending at the row's end that overlaps the last (those
// windows written twice, with the same values): no masked or partial stores. Rows shorter than a vector of d take
// vectors of d4; rows shorter than those, one window at a time. vec(tag, ox) does the windows [ox, ox + lanes).
template <class D, class D4, class Vec, class One>
HWY_INLINE void WindowRow(D d, D4 d4, int ow, const Vec& vec, const One& one) {
  const int L = int(hn::Lanes(d)), L4 = int(hn::Lanes(d4));
  int ox = 0;
  if (ow >= L) {
    for (; ox + L <= ow; ox += L) vec(d, ox);
    if (ox < ow) vec(d, ow - L);
  } else if (ow >= L4) {
    for (; ox + L4 <= ow; ox += L4) vec(d4, ox);
    if (ox < ow) vec(d4, ow - L4);
  } else {
    for (; ox < ow; ++ox) one(ox);
  }
}

// The backward of MaxPool2x2 for Lanes(d) windows of a row pair from ox: the two rows of dx as interleaved pairs.
template <class D>
void Pool2x2BackVec(D d, const float* HWY_RESTRICT dy, const uint8_t* HWY_RESTRICT am, const float* HWY_RESTRICT gate,
                    int ox, float* HWY_RESTRICT r0, float* HWY_RESTRICT r1) {
  const hn::RebindToSigned<D> di;
  const hn::Rebind<uint8_t, D> d8;
  auto v = hn::LoadU(d, dy);
  if (gate) v = hn::IfThenElseZero(hn::Gt(hn::LoadU(d, gate), hn::Zero(d)), v);
  const auto a = hn::PromoteTo(di, hn::LoadU(d8, am));
  auto at = [&](int i) { return hn::RebindMask(d, hn::Eq(a, hn::Set(di, i))); };
  hn::StoreInterleaved2(hn::IfThenElseZero(at(0), v), hn::IfThenElseZero(at(1), v), d, r0 + 2 * ox);
  hn::StoreInterleaved2(hn::IfThenElseZero(at(2), v), hn::IfThenElseZero(at(3), v), d, r1 + 2 * ox);
}

// The backward of MaxPool2x2 over planes [0, planes): each window's 2x2 block of dx gets dy at the argmax and zero
// elsewhere (every dx value written once). With gate (the pooled output), a window passes dy only where its maximum
// is positive: the ReLU before the pooling, in the same pass. Full vectors of windows (or, for rows shorter than
// one, vectors of 4: the reference CNN's rows of 7), the last one overlapping the one before; one window at a time
// only in rows shorter than 4 windows.
void MaxPool2x2Backward(const float* HWY_RESTRICT dy, const uint8_t* HWY_RESTRICT am, const float* HWY_RESTRICT gate,
                        float* HWY_RESTRICT dx, size_t planes, int h, int w) {
  const hn::ScalableTag<float> d;
  const hn::CappedTag<float, 4> d4;
  const int oh = h / 2, ow = w / 2;
  for (size_t pl = 0; pl < planes; ++pl) {
    const size_t o0 = pl * size_t(oh) * size_t(ow);
    float* dxc = dx + pl * size_t(h) * size_t(w);
    for (int oy = 0; oy < oh; ++oy) {
      const size_t orow = o0 + size_t(oy) * size_t(ow);
      const float* g = gate ? gate + orow : nullptr;
      float* r0 = dxc + size_t(2 * oy) * size_t(w);
      float* r1 = r0 + w;
      auto vec = [&](auto dd, int at) {
        Pool2x2BackVec(dd, dy + orow + at, am + orow + at, g ? g + at : nullptr, at, r0, r1);
      };
      auto one = [&](int ox) {
        const size_t o = orow + size_t(ox);
        const float v = gate && !(gate[o] > 0.0f) ? 0.0f : dy[o];
        const int a = am[o];
        r0[2 * ox] = a == 0 ? v : 0.0f;
        r0[2 * ox + 1] = a == 1 ? v : 0.0f;
        r1[2 * ox] = a == 2 ? v : 0.0f;
        r1[2 * ox + 1] = a == 3 ? v : 0.0f;
      };
      WindowRow(d, d4, ow, vec, one);
    }
  }
}

// 2x2 average pooling, stride 2, over planes [0, planes) of even (h, w): each output ((a + b) + c) + e, times 1/4,
// from 0 as avgpool_forward_ref adds them (so the same bits, -0 included). x_end: the end of the readable input.
// Vectors as in MaxPool2x2: a row's last one may run into the next row's slots; one window at a time at the very end.
void AvgPool2x2(const float* HWY_RESTRICT x, const float* x_end, float* HWY_RESTRICT y, size_t planes, int h, int w) {
  const hn::ScalableTag<float> d;
  const size_t L = hn::Lanes(d);
  const int oh = h / 2, ow = w / 2;
  const float* y_end = y + planes * size_t(oh) * size_t(ow);
  const auto quarter = hn::Set(d, 0.25f);
  for (size_t pl = 0; pl < planes; ++pl) {
    const float* xc = x + pl * size_t(h) * size_t(w);
    float* yc = y + pl * size_t(oh) * size_t(ow);
    for (int oy = 0; oy < oh; ++oy) {
      const float* r0 = xc + size_t(2 * oy) * size_t(w);
      const float* r1 = r0 + w;
      float* yo = yc + size_t(oy) * size_t(ow);
      int ox = 0;
      for (; ox < ow && r1 + 2 * (size_t(ox) + L) <= x_end; ox += int(L)) {
        hn::Vec<decltype(d)> a, b, c, e;
        hn::LoadInterleaved2(d, r0 + 2 * ox, a, b);
        hn::LoadInterleaved2(d, r1 + 2 * ox, c, e);
        const auto v = hn::Mul(hn::Add(hn::Add(hn::Add(hn::Add(hn::Zero(d), a), b), c), e), quarter);
        if (size_t(ow - ox) >= L || yo + ox + L <= y_end) hn::StoreU(v, d, yo + ox);
        else hn::BlendedStore(v, hn::FirstN(d, size_t(ow - ox)), d, yo + ox);
      }
      for (; ox < ow; ++ox) {
        const int j = 2 * ox;
        yo[ox] = ((((0.0f + r0[j]) + r0[j + 1]) + r1[j]) + r1[j + 1]) * 0.25f;
      }
    }
  }
}

// The backward of AvgPool2x2: each window's 2x2 block of dx is dy / 4 (0 + dy * 1/4, as avgpool_backward_ref adds
// it into zeros), every dx value written once.
void AvgPool2x2Backward(const float* HWY_RESTRICT dy, float* HWY_RESTRICT dx, size_t planes, int h, int w) {
  const hn::ScalableTag<float> d;
  const hn::CappedTag<float, 4> d4;
  const int oh = h / 2, ow = w / 2;
  for (size_t pl = 0; pl < planes; ++pl) {
    float* dxc = dx + pl * size_t(h) * size_t(w);
    for (int oy = 0; oy < oh; ++oy) {
      const float* g = dy + (pl * size_t(oh) + size_t(oy)) * size_t(ow);
      float* r0 = dxc + size_t(2 * oy) * size_t(w);
      float* r1 = r0 + w;
      auto vec = [&](auto dd, int at) {
        const auto v = hn::Add(hn::Zero(dd), hn::Mul(hn::LoadU(dd, g + at), hn::Set(dd, 0.25f)));
        hn::StoreInterleaved2(v, v, dd, r0 + 2 * at);
        hn::StoreInterleaved2(v, v, dd, r1 + 2 * at);
      };
      auto one = [&](int ox) {
        const float v = 0.0f + g[ox] * 0.25f;
        r0[2 * ox] = r0[2 * ox + 1] = r1[2 * ox] = r1[2 * ox + 1] = v;
      };
      WindowRow(d, d4, ow, vec, one);
    }
  }
}

// The weight and bias gradients of one image from dy's non-zero entries, for windows whose rows of taps are shorter
// than 8 floats (k * c < 8: an image net's first layer, c = 1), where the direct weight gradient fills few lanes of
// each vector: behind a ReLU and a max pooling 87-89% of that layer's dy is zero (the reference CNN's first
// convolution). For each output channel o, in order of position p = (oy, ox) where dy (o, p) != 0:
//   dw (o, c, ky, :) += dy (o, p) xp (c cs + (oy + ky) wp + ox + [0, k)),   db (o) += dy (o, p).
// xp: the image's padded planes (direct_pad_input); rows of 8 floats are read, the lanes past k into the next
// values of the buffer (the caller's group buffer holds at least 8 floats past the planes), and those lanes are
// never stored. With 8-lane vectors (AVX2, AVX-512) the R = c k rows of dw (o) stay in registers, in two sets that
// take the non-zero entries in turn (twice the independent chains of FMAs; summed at the end), and so does db (o)
// in two sums; narrower targets add lane by lane.
template <int R, class D>
HWY_INLINE void PatchRows(D d, const float* HWY_RESTRICT xp, const size_t* off, int wp, int k,
                          const float* HWY_RESTRICT dy, int oh, int ow, int OC, float* HWY_RESTRICT dw,
                          float* HWY_RESTRICT db) {
  const auto m = hn::FirstN(d, size_t(k));
  for (int o = 0; o < OC; ++o) {
    float* w = dw + size_t(o) * size_t(R) * size_t(k);
    hn::Vec<D> acc[R];
    hn::Vec<D> acc2[R];
    for (int r = 0; r < R; ++r) {  // (8 lanes: AVX2 or AVX-512, whose masked loads need no alignment)
      acc[r] = hn::MaskedLoad(m, d, w + size_t(r) * size_t(k));
      acc2[r] = hn::Zero(d);
    }
    float s = 0, s2 = 0;
    const float* dyo = dy + size_t(o) * size_t(oh) * size_t(ow);
    const int P = oh * ow;
    // the plane's non-zero positions, by words of up to 64 (not row by row: a row of 28 ended a loop every few
    // entries, and most loop ends mispredict; the reference CNN's step was 2-3% longer), visited in order
    for (int b0 = 0; b0 < P; b0 += 64) {
      uint64_t bits = NonzeroBits(d, dyo + b0, std::min(P, b0 + 64) - b0);
      auto add = [&](hn::Vec<D>* a, float& sum) {
        const int p = b0 + __builtin_ctzll(bits);
        bits &= bits - 1;
        const int oy = p / ow, ox = p - oy * ow;
        const float v = dyo[p];
        sum += v;
        const auto vv = hn::Set(d, v);
        const float* xw = xp + size_t(oy) * size_t(wp) + size_t(ox);
        for (int r = 0; r < R; ++r) a[r] = hn::MulAdd(vv, hn::LoadU(d, xw + off[r]), a[r]);
      };
      while (bits) {
        add(acc, s);
        if (bits) add(acc2, s2);
      }
    }
    db[o] += s + s2;
    for (int r = 0; r < R; ++r) hn::BlendedStore(hn::Add(acc[r], acc2[r]), m, d, w + size_t(r) * size_t(k));
  }
}

void PatchWeightGrad(const float* HWY_RESTRICT xp, size_t cs, int wp, int C, int k, const float* HWY_RESTRICT dy,
                     int oh, int ow, int OC, float* HWY_RESTRICT dw, float* HWY_RESTRICT db) {
  const hn::CappedTag<float, 8> d;
  const int R = C * k;
  size_t off[8] = {};
  for (int r = 0; r < R && r < 8; ++r) off[r] = size_t(r / k) * cs + size_t(r % k) * size_t(wp);
  if (hn::Lanes(d) == 8) {
    switch (R) {
      case 1: return PatchRows<1>(d, xp, off, wp, k, dy, oh, ow, OC, dw, db);
      case 2: return PatchRows<2>(d, xp, off, wp, k, dy, oh, ow, OC, dw, db);
      case 3: return PatchRows<3>(d, xp, off, wp, k, dy, oh, ow, OC, dw, db);
      case 4: return PatchRows<4>(d, xp, off, wp, k, dy, oh, ow, OC, dw, db);
      case 5: return PatchRows<5>(d, xp, off, wp, k, dy, oh, ow, OC, dw, db);
      case 6: return PatchRows<6>(d, xp, off, wp, k, dy, oh, ow, OC, dw, db);
      case 7: return PatchRows<7>(d, xp, off, wp, k, dy, oh, ow, OC, dw, db);
      default: break;
    }
  }
  for (int o = 0; o < OC; ++o) {
    float* w = dw + size_t(o) * size_t(R) * size_t(k);
    float s = 0;
    const float* dyo = dy + size_t(o) * size_t(oh) * size_t(ow);
    for (int oy = 0; oy < oh; ++oy)
      for_each_nonzero(dyo + size_t(oy) * size_t(ow), 0, ow, [&](int ox) {
        const float v = dyo[size_t(oy) * size_t(ow) + size_t(ox)];
        s += v;
        for (int r = 0; r < R; ++r) {
          const float* xr = xp + size_t(r / k) * cs + size_t(r % k) * size_t(wp) + size_t(oy) * size_t(wp) + size_t(ox);
          for (int j = 0; j < k; ++j) w[size_t(r) * size_t(k) + size_t(j)] += v * xr[j];
        }
      });
    db[o] += s;
  }
}

}  // namespace rectifier::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace rectifier::kernels {
HWY_EXPORT(TileFloats);
HWY_EXPORT(DirectConv);
HWY_EXPORT(DirectWeightGrad);
HWY_EXPORT(MaxPool2x2);
HWY_EXPORT(ToGrid);
HWY_EXPORT(FromGrid);
HWY_EXPORT(MaxPool2x2Backward);
HWY_EXPORT(AvgPool2x2);
HWY_EXPORT(AvgPool2x2Backward);
HWY_EXPORT(PatchWeightGrad);

namespace {
size_t round_up(size_t v, size_t m) { return (v + m - 1) / m * m; }
}  // namespace

bool direct_conv_applies(const ConvGeometry& g) {
  return g.stride == 1 && g.pad <= g.k - 1 && !(g.k == 1 && g.pad == 0);
}

namespace {
// A geometry's layout but for the backward fields (gpre, glead, gs).
DirectConvLayout forward_layout(const ConvGeometry& g) {
  DirectConvLayout l;
  l.wp = g.w + g.pad;
  l.qn = size_t(g.oh) * size_t(l.wp);
  l.qpad = round_up(l.qn, kDirectTile);
  // Reads reach q + (k - 1) (Wp + 1) for q < qpad; the data rows end at (pad + h) Wp.
  const size_t reads = l.qpad + size_t(g.k - 1) * size_t(l.wp + 1), data = size_t(g.pad + g.h) * size_t(l.wp);
  l.cs = round_up(std::max(reads, data), 16);
  l.ocpad = int(round_up(size_t(g.oc), kDirectOB));
  l.scratch = size_t(g.c) * l.cs + size_t(l.ocpad) * l.qpad;
  return l;
}
}  // namespace

DirectConvLayout direct_layout(const ConvGeometry& g) {
  DirectConvLayout l = forward_layout(g);
  // dy's grid (row stride wp) shifted by (k - 1 - pad) (wp + 1) is the input gradient's padded plane: that
  // convolution's padding is k - 1 - pad and its row stride g.ow + k - 1 - pad = g.w + pad = wp, the same.
  // The grid starts on a 16-float boundary of its plane (the weight gradient's loads of dy stay aligned); the padded
  // plane starts glead floats into it.
  const DirectConvLayout t = forward_layout(input_grad_geometry(g));
  const size_t shift = size_t(g.k - 1 - g.pad) * size_t(l.wp + 1);
  l.gpre = round_up(shift, 16);
  l.glead = l.gpre - shift;
  // gs an odd multiple of 32 floats: at 336 (21 cache lines) the reference CNN's weight gradient ran 8% slower than
  // at 320 or 352, the four dy planes of a tile and the input planes presumably contending for the same L1 sets.
  l.gs = round_up(std::max(l.glead + t.cs, l.gpre + l.qpad), 32);
  if (l.gs / 32 % 2 == 0) l.gs += 32;
  return l;
}

size_t direct_weights_floats(const ConvGeometry& g) {
  return size_t(direct_layout(g).ocpad) * size_t(g.c) * size_t(g.k) * size_t(g.k);
}

void pack_direct_weights(const ConvGeometry& g, const float* W, bool transposed, float* wr) {
  const int ocpad = direct_layout(g).ocpad, k = g.k;
  size_t at = 0;
  for (int ob = 0; ob < ocpad; ob += kDirectOB)
    for (int c = 0; c < g.c; ++c)
      for (int ki = 0; ki < k; ++ki)
        for (int kj = 0; kj < k; ++kj)
          for (int o = ob; o < ob + kDirectOB; ++o) {
            float v = 0;
            if (o < g.oc) {
              // forward: W[o][c][ki][kj]. transposed (g is the input-gradient geometry: its "input channels" are the
              // layer's output channels): W[c][o][k-1-ki][k-1-kj], W being [g.c][g.oc][k][k].
              v = transposed ? W[((size_t(c) * g.oc + size_t(o)) * k + size_t(k - 1 - ki)) * k + size_t(k - 1 - kj)]
                             : W[((size_t(o) * g.c + size_t(c)) * k + size_t(ki)) * k + size_t(kj)];
            }
            wr[at++] = v;
          }
}

// Every value of the planes and the grid is written once, the padding with zeros (ToGrid).
void direct_pad_input(const ConvGeometry& g, const float* x, float* xp, bool fill) {
  const DirectConvLayout l = direct_layout(g);
  const size_t plane = size_t(g.h) * size_t(g.w), prefix = size_t(g.pad) * size_t(l.wp) + size_t(g.pad);
  const float* end = x + size_t(g.c) * plane;
  for (int c = 0; c < g.c; ++c)
    HWY_DYNAMIC_DISPATCH(ToGrid)(x + size_t(c) * plane, end, g.h, g.w, l.wp, prefix, l.cs, xp + size_t(c) * l.cs, fill);
}

void direct_grid_output(const ConvGeometry& g, const float* dy, float* dyq, float* db, bool fill) {
  const DirectConvLayout l = direct_layout(g);
  const size_t plane = size_t(g.oh) * size_t(g.ow);
  const float* end = dy + size_t(g.oc) * plane;
  for (int o = 0; o < g.oc; ++o) {
    const float s = HWY_DYNAMIC_DISPATCH(ToGrid)(dy + size_t(o) * plane, end, g.oh, g.ow, l.wp, l.gpre, l.gs,
                                                 dyq + size_t(o) * l.gs, fill);
    if (db) db[o] += s;
  }
  if (fill) std::fill(dyq + size_t(g.oc) * l.gs, dyq + size_t(l.ocpad) * l.gs, 0.0f);
}

namespace {
// y (oc, oh, ow) = the grid out (ocpad planes of ldo) unpadded, plus bias if not null.
void from_grid(const ConvGeometry& g, const DirectConvLayout& l, const float* out, size_t ldo, const float* bias, float* y) {
  const float* out_end = out + size_t(l.ocpad) * ldo;
  const size_t plane = size_t(g.oh) * size_t(g.ow);
  const float* y_end = y + size_t(g.oc) * plane;
  for (int o = 0; o < g.oc; ++o)
    HWY_DYNAMIC_DISPATCH(FromGrid)(out + size_t(o) * ldo, out_end, g.oh, g.ow, l.wp, bias ? bias[o] : 0.0f,
                                   y + size_t(o) * plane, y_end);
}

void check_tile() {
  static const size_t tile = HWY_DYNAMIC_DISPATCH(TileFloats)();
  if (kDirectTile % tile != 0) throw std::logic_error("conv_direct: the SIMD tile does not divide kDirectTile");
}
}  // namespace

void conv_direct(const ConvGeometry& g, const float* x, const float* wr, const float* bias, float* y, float* scratch) {
  check_tile();
  const DirectConvLayout l = direct_layout(g);
  float* xp = scratch;
  float* out = scratch + size_t(g.c) * l.cs;
  direct_pad_input(g, x, xp, true);
  HWY_DYNAMIC_DISPATCH(DirectConv)(xp, l.cs, g.c, g.k, l.wp, l.qn, wr, l.ocpad, out, l.qpad);
  from_grid(g, l, out, l.qpad, bias, y);
}

void direct_input_grad(const ConvGeometry& g, const float* dyq, const float* wt, float* dx, float* scratch) {
  check_tile();
  const ConvGeometry gt = input_grad_geometry(g);
  const DirectConvLayout l = direct_layout(g), t = direct_layout(gt);
  HWY_DYNAMIC_DISPATCH(DirectConv)(dyq + l.glead, l.gs, gt.c, gt.k, t.wp, t.qn, wt, t.ocpad, scratch, t.qpad);
  from_grid(gt, t, scratch, t.qpad, nullptr, dx);
}

size_t direct_grad_image_floats(const ConvGeometry& g) {
  const DirectConvLayout l = direct_layout(g);
  // An odd number of cache lines between images, so that the same position of every image of a group does not fall
  // in the same L1 set (the reference CNN's second convolution would otherwise be exactly 16 x 4 KB per image). A
  // precaution: no difference was measured either way; the slowdown seen came from the plane stride (gs, above).
  const size_t n = round_up(size_t(g.c) * l.cs + size_t(l.ocpad) * l.gs, 16);
  return n / 16 % 2 ? n : n + 16;
}

void patch_weight_grad(const ConvGeometry& g, const float* xp, const float* dy, float* dw, float* db) {
  const DirectConvLayout l = direct_layout(g);
  HWY_DYNAMIC_DISPATCH(PatchWeightGrad)(xp, l.cs, l.wp, g.c, g.k, dy, g.oh, g.ow, g.oc, dw, db);
}

void direct_weight_grad(const ConvGeometry& g, const float* buf, int G, float* dw) {
  const DirectConvLayout l = direct_layout(g);
  const size_t per = direct_grad_image_floats(g);
  HWY_DYNAMIC_DISPATCH(DirectWeightGrad)(buf, per, l.cs, buf + size_t(g.c) * l.cs + l.gpre, per, G, g.c, g.k, l.wp, l.gs,
                                         l.qn, g.oc, l.ocpad, dw);
}

void maxpool2x2_forward(const float* x, const float* x_end, float* y, uint8_t* argmax, size_t planes, int h, int w) {
  HWY_DYNAMIC_DISPATCH(MaxPool2x2)(x, x_end, y, argmax, planes, h, w);
}

void maxpool2x2_backward(const float* dy, const uint8_t* argmax, const float* gate, float* dx, size_t planes, int h, int w) {
  HWY_DYNAMIC_DISPATCH(MaxPool2x2Backward)(dy, argmax, gate, dx, planes, h, w);
}

void avgpool2x2_forward(const float* x, const float* x_end, float* y, size_t planes, int h, int w) {
  HWY_DYNAMIC_DISPATCH(AvgPool2x2)(x, x_end, y, planes, h, w);
}

void avgpool2x2_backward(const float* dy, float* dx, size_t planes, int h, int w) {
  HWY_DYNAMIC_DISPATCH(AvgPool2x2Backward)(dy, dx, planes, h, w);
}

ConvGeometry input_grad_geometry(const ConvGeometry& g) {
  return {g.oc, g.oh, g.ow, g.c, g.k, 1, g.k - 1 - g.pad, g.h, g.w};
}

}  // namespace rectifier::kernels
#endif  // HWY_ONCE
