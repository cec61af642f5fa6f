// Highway kernels for the quantized weight formats: lookup tables (kernels/lut.h) and GPTQ int4 groups
// (kernels/int4.h). Written once, compiled by foreach_target.h for each target of
// kernels/simd_targets.h (this file is included once per target).
//
// The decode kernels use 8 f32 lanes (256-bit vectors) on both AVX2 and AVX-512: an 8-entry f32 table
// is one register, one vpermps looks up eight codes, and the lane layout holds 8 code words per vector.
// (On the AVX-512 target the same code runs as AVX-512VL 256-bit instructions, plus vpermt2ps for
// 16-entry tables.) The prompt path's micro-kernel (tile_hwy-inl.h) uses full-width vectors.
#include "kernels/simd_targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/lut_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/highway.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <type_traits>

#include "core/dtype.h"
#include "kernels/int4.h"
#include "kernels/lut.h"

HWY_BEFORE_NAMESPACE();
namespace sq::kernels::HWY_NAMESPACE {
#if SQ_HWY_KERNEL_TARGET

namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::CappedTag<float, 8>;
using DU = hn::RebindToUnsigned<DF>;
using DI = hn::RebindToSigned<DF>;
using VF = hn::Vec<DF>;
using VU = hn::Vec<DU>;

#include "kernels/tile_hwy-inl.h"

// ---- lookup tables ------------------------------------------------------------------------------------
// Codes in the lane-interleaved layout of formats/lut.h: per step t, the eight codes of columns
// 8t .. 8t+7 of a block sit at the same bit offset of eight consecutive u32 words, so one vector
// holds them and a right shift brings the next step's codes down to bit 0.

// vpermps reads only the low 3 bits of each index lane; the higher bits (the next steps' codes) are
// ignored on purpose, so the indices are passed as they are (IndicesFromVec would assert idx < 8).
HWY_INLINE VF Lookup8(VF table, VU idx) { return hn::TableLookupLanes(table, hn::Indices256<float>{idx.raw}); }

// Σ of eight accumulators, in a fixed pairwise order (the decode kernels keep 8 to cover FMA latency).
HWY_INLINE VF Sum8(const VF* a) {
  return hn::Add(hn::Add(hn::Add(a[0], a[1]), hn::Add(a[2], a[3])), hn::Add(hn::Add(a[4], a[5]), hn::Add(a[6], a[7])));
}

// 16-entry lookup on index bits 0..3 (4-bit codes): one vpermt2ps on AVX-512(VL), two vpermps and a
// blend on code bit 3 (moved to the sign bit) on AVX2.
HWY_INLINE VF Lookup16(VF lo, VF hi, VU idx) {
#if HWY_TARGET == HWY_AVX3
  return VF{_mm256_permutex2var_ps(lo.raw, idx.raw, hi.raw)};
#else
  const DF df;
  return hn::IfNegativeThenElse(hn::BitCast(df, hn::ShiftLeft<28>(idx)), Lookup8(hi, idx), Lookup8(lo, idx));
#endif
}

// Row r's table as f32: B = 2 replicated to 8 entries (index bit 2 is the next code's, ignored by
// replication), B = 3 one register, B = 4 codes 0..7 in lo and 8..15 in hi.
template <int B>
HWY_INLINE void RowTables(const uint16_t* t, VF& lo, VF& hi) {
  const DF df;
  const hn::Rebind<hwy::float16_t, DF> dh;  // F16 -> F32 by vcvtph2ps
  if constexpr (B == 2) {
    HWY_ALIGN uint16_t rep[8];
    for (int i = 0; i < 8; i++) rep[i] = t[i & 3];
    lo = hi = hn::PromoteTo(df, hn::Load(dh, reinterpret_cast<const hwy::float16_t*>(rep)));
  } else {
    lo = hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(t)));
    hi = B == 4 ? hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(t + 8))) : lo;
  }
}

// Calls f(t, w) for the weights of one block (w = columns 8t .. 8t+7 as f32), every t < kCols / 8 once.
template <int B>
struct LaneBlock {
  static constexpr size_t kCols = B == 4 ? 64 : B == 2 ? 128 : 512;
  static constexpr size_t kWords = B == 3 ? 48 : 8;

  template <class F>
  static HWY_INLINE void Decode(const uint32_t* HWY_RESTRICT blk, VF lo, VF hi, const F& f) {
    const DU du;
    if constexpr (B == 4) {
      VU v = hn::LoadU(du, blk);
      for (size_t t = 0; t < 8; t++, v = hn::ShiftRight<4>(v)) f(t, Lookup16(lo, hi, v));
    } else if constexpr (B == 2) {
      VU v = hn::LoadU(du, blk);
      for (size_t t = 0; t < 16; t++, v = hn::ShiftRight<2>(v)) f(t, Lookup8(lo, v));
    } else {
      // Byte planes (formats/lut.h): 8 bytes of each plane, zero-extended, give 8 columns' codes in bits
      // 0..2 and 8 more in bits 3..5; their top bits make e (two more codes).
      const hn::Rebind<uint8_t, DU> d8;
      const uint8_t* b = reinterpret_cast<const uint8_t*>(blk);
      for (size_t p = 0; p < 64; p += 8) {
        const VU v0 = hn::PromoteTo(du, hn::LoadU(d8, b + p));
        const VU v1 = hn::PromoteTo(du, hn::LoadU(d8, b + 64 + p));
        const VU v2 = hn::PromoteTo(du, hn::LoadU(d8, b + 128 + p));
        const size_t t = p / 8;
        f(t, Lookup8(lo, v0));
        f(t + 8, Lookup8(lo, hn::ShiftRight<3>(v0)));
        f(t + 16, Lookup8(lo, v1));
        f(t + 24, Lookup8(lo, hn::ShiftRight<3>(v1)));
        f(t + 32, Lookup8(lo, v2));
        f(t + 40, Lookup8(lo, hn::ShiftRight<3>(v2)));
        const VU e = hn::Or(hn::ShiftRight<6>(v0), hn::Or(hn::ShiftLeft<2>(hn::ShiftRight<6>(v1)),
                                                          hn::ShiftLeft<4>(hn::ShiftRight<6>(v2))));
        f(t + 48, Lookup8(lo, e));
        f(t + 56, Lookup8(lo, hn::ShiftRight<3>(e)));
      }
    }
  }
};

// n == 1: y[r] = Σ_k W[r, k] x[k] for r in [r0, r1). Eight accumulators (step t feeds t % 8) hide the
// FMA latency (4 cycles × 2 FMA pipes). A partial last block reads x from a zero-padded copy (its
// padding codes are 0 and the tables finite, so the padding adds exact zeros).
template <int B>
void LutMatvec(const LutView& v, const float* x, float* y, size_t r0, size_t r1) {
  using LB = LaneBlock<B>;
  const DF df;
  const size_t cols = size_t(v.cols), full = cols / LB::kCols, rem = cols % LB::kCols;
  HWY_ALIGN float xtail[LB::kCols];
  if (rem) {
    std::fill(xtail, xtail + LB::kCols, 0.0f);
    std::copy(x + full * LB::kCols, x + cols, xtail);
  }
  for (size_t r = r0; r < r1; r++) {
    VF lo, hi;
    RowTables<B>(v.lut + (r << B), lo, hi);
    const uint32_t* row = v.lane_row(int64_t(r));
    VF acc[8];
    for (auto& a : acc) a = hn::Zero(df);
    for (size_t b = 0; b <= full; b++) {
      if (b == full && !rem) break;
      const float* xb = b < full ? x + b * LB::kCols : xtail;
      LB::Decode(row + b * LB::kWords, lo, hi,
                 [&](size_t t, VF w) HWY_ATTR { acc[t & 7] = hn::MulAdd(w, hn::LoadU(df, xb + 8 * t), acc[t & 7]); });
    }
    y[r] = hn::GetLane(hn::SumOfLanes(df, Sum8(acc)));
  }
}

// W[r, k0 .. k0 + kb) as f32 into dst for tile::RowsBuffered: whole blocks (k0 is a multiple of 1024,
// hence of the block; the last block may write past kb, within the 1024-column tile).
template <int B>
struct LutDecodeSeg {
  const LutView& v;
  HWY_INLINE void operator()(size_t r, size_t k0, size_t kb, float* dst) const {
    using LB = LaneBlock<B>;
    const DF df;
    VF lo, hi;
    RowTables<B>(v.lut + (r << B), lo, hi);
    const uint32_t* row = v.lane_row(int64_t(r));
    for (size_t c = 0; c < kb; c += LB::kCols) {
      float* d = dst + c;
      LB::Decode(row + (k0 + c) / LB::kCols * LB::kWords, lo, hi,
                 [&](size_t t, VF w) HWY_ATTR { hn::Store(w, df, d + 8 * t); });
    }
  }
  void prefetch(size_t, size_t) const {}  // codes are small; the hardware prefetcher keeps up
};

// Small batches (2 <= n <= kSmallBatch): each weight vector is decoded once in registers, as for the
// matvec, and multiplied with C rows of X (two accumulators per row, steps alternating). The tile path
// (tile_hwy-inl.h) decodes into an L1 buffer first and was slower than the matvec at n = 2 (LLaMA-7B
// shapes, AVX2, 2 threads: batch 2 decoded 0.69x as many tokens per second as batch 1, 1.09x with this).
// Measured and not kept: X in L1-sized column chunks under panels of 16 weight rows (accumulators
// parked between chunks), software-prefetched: 16 code streams of a few hundred bytes each defeated
// the prefetcher and ran slower at n = 2, 4 and 8. Past n = 2 these f32 kernels are bound by the FMAs
// and X loads (each X row is read from L2 for every weight row); int8 activations (kernels/q8.h, 4×
// smaller X, 4 products per instruction) are the way past that, on AVX-512 VNNI today.
constexpr size_t kSmallBatch = 8;
constexpr size_t kSmallC = HWY_TARGET == HWY_AVX3 ? 8 : 4;  // accumulators: 2·C of the 16 / 32 registers
// 3-bit codes cost more to unpack, and past n = 4 the tile path's one decode into L1 per row pays off
// (11008 x 4096, AVX2, 2 threads, n = 8: tiles 0.63x the F16 kernel's speed, these 0.46x; 4-bit: 0.73x
// vs 0.78x).
template <int B>
constexpr size_t kLutSmallBatch = B == 4 ? 8 : 4;

template <int B, size_t C>
void LutSmall(const LutView& v, const float* x, float* y, size_t ldy, size_t r0, size_t r1) {
  using LB = LaneBlock<B>;
  const DF df;
  const size_t cols = size_t(v.cols), full = cols / LB::kCols, rem = cols % LB::kCols;
  HWY_ALIGN float xtail[C][LB::kCols];  // a partial last block's X, zero-padded
  if (rem)
    for (size_t j = 0; j < C; j++) {
      std::fill(xtail[j], xtail[j] + LB::kCols, 0.0f);
      std::copy(x + j * cols + full * LB::kCols, x + (j + 1) * cols, xtail[j]);
    }
  for (size_t r = r0; r < r1; r++) {
    VF lo, hi;
    RowTables<B>(v.lut + (r << B), lo, hi);
    const uint32_t* row = v.lane_row(int64_t(r));
    VF acc[C][2];
    for (size_t j = 0; j < C; j++) acc[j][0] = acc[j][1] = hn::Zero(df);
    for (size_t b = 0; b <= full; b++) {
      if (b == full && !rem) break;
      LB::Decode(row + b * LB::kWords, lo, hi, [&](size_t t, VF w) HWY_ATTR {
        for (size_t j = 0; j < C; j++) {
          const float* xb = b < full ? x + j * cols + b * LB::kCols : xtail[j];
          acc[j][t & 1] = hn::MulAdd(w, hn::LoadU(df, xb + 8 * t), acc[j][t & 1]);
        }
      });
    }
    for (size_t j = 0; j < C; j++) y[j * ldy + r] = hn::GetLane(hn::SumOfLanes(df, hn::Add(acc[j][0], acc[j][1])));
  }
}

// n rows of X in groups of up to kSmallC; `one(ptr-to-tag, j0)` runs a group of C rows.
template <class Group>
HWY_INLINE void SmallGroups(size_t n, const Group& group) {
  for (size_t j0 = 0; j0 < n; j0 += kSmallC) {
    switch (std::min(kSmallC, n - j0)) {
      case 1: group(std::integral_constant<size_t, 1>(), j0); break;
      case 2: group(std::integral_constant<size_t, 2>(), j0); break;
      case 3: group(std::integral_constant<size_t, 3>(), j0); break;
#if HWY_TARGET == HWY_AVX3
      case 4: group(std::integral_constant<size_t, 4>(), j0); break;
      case 5: group(std::integral_constant<size_t, 5>(), j0); break;
      case 6: group(std::integral_constant<size_t, 6>(), j0); break;
      case 7: group(std::integral_constant<size_t, 7>(), j0); break;
      default: group(std::integral_constant<size_t, 8>(), j0); break;
#else
      default: group(std::integral_constant<size_t, 4>(), j0); break;
#endif
    }
  }
}

template <int B>
void LutRows(const LutView& v, const float* x, size_t n, float* y, size_t r0, size_t r1) {
  if (n == 1) return LutMatvec<B>(v, x, y, r0, r1);
  if (n <= kLutSmallBatch<B>)
    return SmallGroups(n, [&](auto C, size_t j0) HWY_ATTR {
      LutSmall<B, C()>(v, x + j0 * size_t(v.cols), y + j0 * size_t(v.rows), size_t(v.rows), r0, r1);
    });
  const size_t cols = size_t(v.cols);
  const LutDecodeSeg<B> dec{v};
  tile::RowsBuffered(cols, x, cols, n, y, size_t(v.rows), r0, r1, dec);
}

void LutRows2(const LutView& v, const float* x, size_t n, float* y, size_t r0, size_t r1) {
  LutRows<2>(v, x, n, y, r0, r1);
}
void LutRows3(const LutView& v, const float* x, size_t n, float* y, size_t r0, size_t r1) {
  LutRows<3>(v, x, n, y, r0, r1);
}
void LutRows4(const LutView& v, const float* x, size_t n, float* y, size_t r0, size_t r1) {
  LutRows<4>(v, x, n, y, r0, r1);
}

// ---- int4 groups ----------------------------------------------------------------------------------------

// Codes of stored block b (16 positions = 8 bytes) of a row: lane i = byte i (low nibble: position
// 16b + 2i, high nibble: 16b + 2i + 1). The last block of a row may have only 4 bytes in the row.
HWY_INLINE VU LoadBlock(const uint8_t* row, size_t row_bytes, size_t b) {
  const DU du;
  const hn::Rebind<uint8_t, DU> d8;
  if (HWY_LIKELY(8 * b + 8 <= row_bytes)) return hn::PromoteTo(du, hn::LoadU(d8, row + 8 * b));
  uint8_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::memcpy(tmp, row + 8 * b, row_bytes - 8 * b);
  return hn::PromoteTo(du, hn::LoadU(d8, tmp));
}

// n == 1: y[r] = Σ_g s[r,g] · (Σ_{k in g} code·xq − zero[r,g] · xsum[g]).
void Int4Matvec(const Int4Packed& w, const float* xq, const float* xsum, float* y, size_t r0, size_t r1) {
  const DF df;
  const DU du;
  const DI di;
  const size_t G = size_t(w.n_groups), rb = size_t(w.row_bytes);
  const int32_t* gb = w.group_begin.data();
  const VU m15 = hn::Set(du, 15u);
  for (size_t r = r0; r < r1; r++) {
    const uint8_t* row = w.codes.data() + r * rb;
    const float* sc = w.scales.data() + r * G;
    const uint8_t* zp = w.zeros.data() + r * G;
    VF acc0 = hn::Zero(df), acc1 = hn::Zero(df);
    float zterm = 0;
    for (size_t g = 0; g < G; g++) {
      const size_t b0 = size_t(gb[g]) / 16, b1 = (size_t(gb[g + 1]) + 15) / 16;
      // Eight accumulators (2 per block, 4 blocks per step) cover the FMA latency.
      VF d[8];
      for (auto& a : d) a = hn::Zero(df);
      size_t b = b0;
      for (; b + 4 <= b1; b += 4)
        for (size_t i = 0; i < 4; i++) {
          const VU c = LoadBlock(row, rb, b + i);
          const float* xb = xq + 16 * (b + i);
          d[2 * i] = hn::MulAdd(hn::ConvertTo(df, hn::BitCast(di, hn::And(c, m15))), hn::LoadU(df, xb), d[2 * i]);
          d[2 * i + 1] =
              hn::MulAdd(hn::ConvertTo(df, hn::BitCast(di, hn::ShiftRight<4>(c))), hn::LoadU(df, xb + 8), d[2 * i + 1]);
        }
      for (; b < b1; b++) {
        const VU c = LoadBlock(row, rb, b);
        d[0] = hn::MulAdd(hn::ConvertTo(df, hn::BitCast(di, hn::And(c, m15))), hn::LoadU(df, xq + 16 * b), d[0]);
        d[1] = hn::MulAdd(hn::ConvertTo(df, hn::BitCast(di, hn::ShiftRight<4>(c))), hn::LoadU(df, xq + 16 * b + 8), d[1]);
      }
      const VF dsum = Sum8(d);
      if (g & 1)
        acc1 = hn::MulAdd(hn::Set(df, sc[g]), dsum, acc1);
      else
        acc0 = hn::MulAdd(hn::Set(df, sc[g]), dsum, acc0);
      zterm += sc[g] * float(zp[g]) * xsum[g];
    }
    y[r] = hn::GetLane(hn::SumOfLanes(df, hn::Add(acc0, acc1))) - zterm;
  }
}

// (code − zero) · scale for stored positions [k0, k0 + kb) of row r in block order (k0, kb multiples
// of 16), matching xq.
struct Int4DecodeSeg {
  const Int4Packed& w;
  HWY_INLINE void operator()(size_t r, size_t k0, size_t kb, float* dst) const {
    const DF df;
    const DU du;
    const DI di;
    const size_t G = size_t(w.n_groups), rb = size_t(w.row_bytes);
    const int32_t* gb = w.group_begin.data();
    const uint8_t* row = w.codes.data() + r * rb;
    const float* sc = w.scales.data() + r * G;
    const uint8_t* zp = w.zeros.data() + r * G;
    size_t g = size_t(std::upper_bound(gb, gb + G, int32_t(k0)) - gb) - 1;  // group holding position k0
    for (size_t b = k0 / 16; b < (k0 + kb) / 16; b++) {
      while (g + 1 < G && size_t(gb[g + 1]) <= 16 * b) g++;
      const VU c = LoadBlock(row, rb, b);
      const VF s = hn::Set(df, sc[g]), z = hn::Set(df, float(zp[g]));
      const VF lo = hn::ConvertTo(df, hn::BitCast(di, hn::And(c, hn::Set(du, 15u))));
      const VF hi = hn::ConvertTo(df, hn::BitCast(di, hn::ShiftRight<4>(c)));
      hn::Store(hn::Mul(hn::Sub(lo, z), s), df, dst + 16 * b - k0);
      hn::Store(hn::Mul(hn::Sub(hi, z), s), df, dst + 16 * b - k0 + 8);
    }
  }
  void prefetch(size_t, size_t) const {}
};

void Int4Rows(const Int4Packed& w, const float* xq, size_t cols16, const float* xsum, size_t n, float* y, size_t r0,
              size_t r1) {
  if (n == 1) return Int4Matvec(w, xq, xsum, y, r0, r1);
  tile::RowsBuffered(cols16, xq, cols16, n, y, size_t(w.rows), r0, r1, Int4DecodeSeg{w});
}

// ---- int4 groups in the lane layout (Int4Packed::lanes) ------------------------------------------------
// Same 64-column blocks as 4-bit lookup tables, over stored positions; every group starts on a block.
// AVX-512: per group the 16 dequantized values T[q] = (q − zero)·scale form a table (two vectors) and
// one vpermt2ps per 8 codes gives weights ready for the FMA: shift, lookup, FMA. AVX2 (no 16-entry
// lookup in one instruction): convert the codes, sum code·x per group in vectors and apply
// scale·(Σ code·x − zero·Σ x) per group.
HWY_INLINE void GroupTable(float s, float z, VF& lo, VF& hi) {
  const DF df;
  const VF io = hn::Iota(df, 0.0f), vs = hn::Set(df, s), vz = hn::Set(df, z);
  lo = hn::Mul(hn::Sub(io, vz), vs);
  hi = hn::Mul(hn::Sub(hn::Add(io, hn::Set(df, 8.0f)), vz), vs);
}

// n == 1 over xq = x in stored order, zero-padded to whole blocks.
void Int4LaneMatvec(const Int4Packed& w, const float* xq, const float* xsum, float* y, size_t r0, size_t r1) {
  const DF df;
  const size_t G = size_t(w.n_groups);
  const int32_t* gb = w.group_begin.data();
  for (size_t r = r0; r < r1; r++) {
    const uint32_t* row = w.lane_codes(int64_t(r));
    const uint32_t* sc = w.lane_scales(int64_t(r));  // f32 bit patterns
    const uint8_t* zp = w.lane_zeros(int64_t(r));
    VF acc[8];
    for (auto& a : acc) a = hn::Zero(df);
    float zterm = 0;
    for (size_t g = 0; g < G; g++) {
      const size_t b0 = size_t(gb[g]) / 64, b1 = (size_t(gb[g + 1]) + 63) / 64;
#if HWY_TARGET == HWY_AVX3
      (void)xsum;
      VF lo, hi;
      GroupTable(std::bit_cast<float>(sc[g]), float(zp[g]), lo, hi);
      for (size_t b = b0; b < b1; b++) {
        LaneBlock<4>::Decode(row + b * 8, lo, hi, [&](size_t t, VF wv) HWY_ATTR {
          acc[t] = hn::MulAdd(wv, hn::LoadU(df, xq + 64 * b + 8 * t), acc[t]);
        });
      }
#else
      const DU du;
      const DI di;
      const VU m15 = hn::Set(du, 15u);
      VF d[8];
      for (auto& a : d) a = hn::Zero(df);
      for (size_t b = b0; b < b1; b++) {
        VU v = hn::LoadU(du, row + b * 8);
        for (size_t t = 0; t < 8; t++, v = hn::ShiftRight<4>(v))
          d[t] = hn::MulAdd(hn::ConvertTo(df, hn::BitCast(di, hn::And(v, m15))), hn::LoadU(df, xq + 64 * b + 8 * t),
                            d[t]);
      }
      const VF dsum = Sum8(d);
      const float s = std::bit_cast<float>(sc[g]);
      acc[g & 7] = hn::MulAdd(hn::Set(df, s), dsum, acc[g & 7]);
      zterm += s * float(zp[g]) * xsum[g];
#endif
    }
    y[r] = hn::GetLane(hn::SumOfLanes(df, Sum8(acc))) - zterm;
  }
}

// (code − zero)·scale for stored positions [k0, k0 + kb), whole blocks (k0 a multiple of 1024).
struct Int4LaneDecodeSeg {
  const Int4Packed& w;
  HWY_INLINE void operator()(size_t r, size_t k0, size_t kb, float* dst) const {
    const DF df;
    const size_t G = size_t(w.n_groups);
    const int32_t* gb = w.group_begin.data();
    const uint32_t* row = w.lane_codes(int64_t(r));
    const uint32_t* sc = w.lane_scales(int64_t(r));  // f32 bit patterns
    const uint8_t* zp = w.lane_zeros(int64_t(r));
    size_t g = size_t(std::upper_bound(gb, gb + G, int32_t(k0)) - gb) - 1;  // group holding position k0
    VF lo, hi;
    GroupTable(std::bit_cast<float>(sc[g]), float(zp[g]), lo, hi);
    for (size_t c = 0; c < kb; c += 64) {
      if (g + 1 < G && size_t(gb[g + 1]) <= k0 + c) {
        while (g + 1 < G && size_t(gb[g + 1]) <= k0 + c) g++;
        GroupTable(std::bit_cast<float>(sc[g]), float(zp[g]), lo, hi);
      }
      float* d = dst + c;
      LaneBlock<4>::Decode(row + (k0 + c) / 64 * 8, lo, hi, [&](size_t t, VF wv) HWY_ATTR { hn::Store(wv, df, d + 8 * t); });
    }
  }
  void prefetch(size_t, size_t) const {}
};

// Small batches over the lane layout: per group, each 8-code vector converted once and multiplied with
// C rows of xq (stored order, row stride ldx); y = Σ_g s·(Σ code·x − zero·Σ x) per row of X.
template <size_t C>
void Int4LaneSmall(const Int4Packed& w, const float* xq, size_t ldx, const float* xsum, float* y, size_t ldy,
                   size_t r0, size_t r1) {
  const DF df;
  const DU du;
  const DI di;
  const VU m15 = hn::Set(du, 15u);
  const size_t G = size_t(w.n_groups);
  const int32_t* gb = w.group_begin.data();
  for (size_t r = r0; r < r1; r++) {
    const uint32_t* row = w.lane_codes(int64_t(r));
    const uint32_t* sc = w.lane_scales(int64_t(r));  // f32 bit patterns
    const uint8_t* zp = w.lane_zeros(int64_t(r));
    VF acc[C];
    float zterm[C];
    for (size_t j = 0; j < C; j++) acc[j] = hn::Zero(df), zterm[j] = 0;
    for (size_t g = 0; g < G; g++) {
      const size_t b0 = size_t(gb[g]) / 64, b1 = (size_t(gb[g + 1]) + 63) / 64;
      VF d[C];
      for (size_t j = 0; j < C; j++) d[j] = hn::Zero(df);
      for (size_t b = b0; b < b1; b++) {
        VU v = hn::LoadU(du, row + b * 8);
        for (size_t t = 0; t < 8; t++, v = hn::ShiftRight<4>(v)) {
          const VF code = hn::ConvertTo(df, hn::BitCast(di, hn::And(v, m15)));
          for (size_t j = 0; j < C; j++) d[j] = hn::MulAdd(code, hn::LoadU(df, xq + j * ldx + 64 * b + 8 * t), d[j]);
        }
      }
      const float s = std::bit_cast<float>(sc[g]);
      for (size_t j = 0; j < C; j++) {
        acc[j] = hn::MulAdd(hn::Set(df, s), d[j], acc[j]);
        zterm[j] += s * float(zp[g]) * xsum[j * G + g];
      }
    }
    for (size_t j = 0; j < C; j++) y[j * ldy + r] = hn::GetLane(hn::SumOfLanes(df, acc[j])) - zterm[j];
  }
}

void Int4LaneRows(const Int4Packed& w, const float* xq, size_t ldx, const float* xsum, size_t n, float* y, size_t r0,
                  size_t r1) {
  if (n == 1) return Int4LaneMatvec(w, xq, xsum, y, r0, r1);
  if (n <= kSmallBatch) {
    const size_t G = size_t(w.n_groups);
    return SmallGroups(n, [&](auto C, size_t j0) HWY_ATTR {
      Int4LaneSmall<C()>(w, xq + j0 * ldx, ldx, xsum + j0 * G, y + j0 * size_t(w.rows), size_t(w.rows), r0, r1);
    });
  }
  tile::RowsBuffered(ldx, xq, ldx, n, y, size_t(w.rows), r0, r1, Int4LaneDecodeSeg{w});
}

#endif  // SQ_HWY_KERNEL_TARGET
}  // namespace sq::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace sq::kernels {

const LutKernelTable* lut_hwy_table(Isa isa) {
#if HWY_TARGETS & HWY_AVX2
  static const LutKernelTable avx2{{&N_AVX2::LutRows2, &N_AVX2::LutRows3, &N_AVX2::LutRows4}};
  if (isa == Isa::kAvx2) return &avx2;
#endif
#if HWY_TARGETS & HWY_AVX3
  static const LutKernelTable avx3{{&N_AVX3::LutRows2, &N_AVX3::LutRows3, &N_AVX3::LutRows4}};
  if (hwy_isa(isa) == Isa::kAvx512) return &avx3;
#endif
  return nullptr;
}

const Int4KernelTable* int4_hwy_table(Isa isa) {
#if HWY_TARGETS & HWY_AVX2
  static const Int4KernelTable avx2{&N_AVX2::Int4Rows, &N_AVX2::Int4LaneRows};
  if (isa == Isa::kAvx2) return &avx2;
#endif
#if HWY_TARGETS & HWY_AVX3
  static const Int4KernelTable avx3{&N_AVX3::Int4Rows, &N_AVX3::Int4LaneRows};
  if (hwy_isa(isa) == Isa::kAvx512) return &avx3;
#endif
  return nullptr;
}

}  // namespace sq::kernels
#endif  // HWY_ONCE
