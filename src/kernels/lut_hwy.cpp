// Highway kernels for the quantized weight formats: lookup tables (kernels/lut.h) and GPTQ int4 groups
// (kernels/int4.h). Written once, compiled by foreach_target.h for each target of
// kernels/simd_targets.h (this file is included once per target).
//
// All kernels use 8 f32 lanes (256-bit vectors) on both AVX2 and AVX-512: an 8-entry f32 table is one
// register and one vpermps looks up eight codes, and 8 code bytes zero-extend to one vector of eight
// int32 lanes. (On the AVX-512 target the same code runs as AVX-512VL 256-bit instructions.)
#include "kernels/simd_targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/lut_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/highway.h>

#include <algorithm>
#include <cstring>

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
constexpr size_t kN = 8;  // lanes of DF (both targets)

#include "kernels/tile_hwy-inl.h"

// ---- lookup tables ------------------------------------------------------------------------------------

// vpermps reads only the low 3 bits of each index lane; the higher bits (the neighbouring codes of the
// shifted word) are ignored on purpose, so the indices are passed as they are (IndicesFromVec would
// assert idx < 8 in debug builds).
HWY_INLINE VF Lookup8(VF table, VU idx) { return hn::TableLookupLanes(table, hn::Indices256<float>{idx.raw}); }

// Row r's table as f32: B = 2 replicated to 8 entries (index bit 2 is the next code's, ignored by
// replication), B = 3 one register, B = 4 codes 0..7 in lo and 8..15 in hi.
template <int B>
HWY_INLINE void RowTables(const uint16_t* t, VF& lo, VF& hi) {
  const DF df;
  HWY_ALIGN float f[16];
  constexpr int L = 1 << B;
  for (int i = 0; i < 8; i++) f[i] = f16_to_f32(t[i & (L - 1)]);
  if (B == 4)
    for (int i = 0; i < 8; i++) f[8 + i] = f16_to_f32(t[8 + i]);
  lo = hn::Load(df, f);
  hi = B == 4 ? hn::Load(df, f + 8) : lo;
}

// Eight weights from `word`, which holds 8 codes of B bits, code i at bits [i*B, i*B + B).
// shifts = {0, B, .., 7B}; shl = 28 - shifts (moves code bit 3 to the sign bit, B = 4 only).
template <int B>
HWY_INLINE VF Decode8(uint32_t word, VF lo, VF hi, VU shifts, VU shl) {
  const DU du;
  const VU v = hn::Set(du, word);
  const VU idx = v >> shifts;
  if constexpr (B < 4) {
    (void)hi;
    (void)shl;
    return Lookup8(lo, idx);
  } else {
    const DF df;
    const VF a = Lookup8(lo, idx), b = Lookup8(hi, idx);
    return hn::IfNegativeThenElse(hn::BitCast(df, v << shl), b, a);
  }
}

HWY_INLINE uint32_t Load32(const uint8_t* p) {
  uint32_t w;
  std::memcpy(&w, p, 4);
  return w;
}

// 32 bits of the stream starting at bit `bitpos` (zeros past the end of the `total`-byte stream).
// bitpos / 8 < total always holds (the unit's first code lies in the stream).
HWY_INLINE uint32_t FetchBits(const uint8_t* s, size_t total, size_t bitpos) {
  const size_t byte = bitpos >> 3;
  uint64_t w = 0;
  if (HWY_LIKELY(byte + 8 <= total))
    std::memcpy(&w, s + byte, 8);
  else
    std::memcpy(&w, s + byte, total - byte);
  return uint32_t(w >> (bitpos & 7));
}

template <int B>
struct LutConsts {
  VU shifts, shl;
  LutConsts() {
    const DU du;
    shifts = hn::Mul(hn::Iota(du, 0), hn::Set(du, uint32_t(B)));
    shl = hn::Sub(hn::Set(du, 28u), shifts);
  }
};

// n == 1: y[r] = Σ_k W[r, k] x[k] for r in [r0, r1).
template <int B>
void LutMatvec(const LutView& v, const float* x, float* y, size_t r0, size_t r1) {
  const DF df;
  const LutConsts<B> k;
  const size_t rows = size_t(v.rows), cols = size_t(v.cols), units = cols / 8, rem = cols % 8;
  const size_t total = packed_code_bytes(rows * cols, B);
  for (size_t r = r0; r < r1; r++) {
    VF lo, hi;
    RowTables<B>(v.lut + (r << B), lo, hi);
    VF a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
    // Byte-aligned rows: unit u is the B bytes at p + u*B; its 4-byte load runs 4 - B bytes into the
    // next row, so the last row of the matrix takes the bounds-checked path.
    if (rem == 0 && (B == 4 || r + 1 < rows)) {
      const uint8_t* p = v.qcodes + r * units * B;
      size_t u = 0;
      for (; u + 4 <= units; u += 4) {
        a0 = hn::MulAdd(Decode8<B>(Load32(p + u * B), lo, hi, k.shifts, k.shl), hn::LoadU(df, x + 8 * u), a0);
        a1 = hn::MulAdd(Decode8<B>(Load32(p + (u + 1) * B), lo, hi, k.shifts, k.shl), hn::LoadU(df, x + 8 * u + 8),
                        a1);
        a2 = hn::MulAdd(Decode8<B>(Load32(p + (u + 2) * B), lo, hi, k.shifts, k.shl),
                        hn::LoadU(df, x + 8 * u + 16), a2);
        a3 = hn::MulAdd(Decode8<B>(Load32(p + (u + 3) * B), lo, hi, k.shifts, k.shl),
                        hn::LoadU(df, x + 8 * u + 24), a3);
      }
      for (; u < units; u++)
        a0 = hn::MulAdd(Decode8<B>(Load32(p + u * B), lo, hi, k.shifts, k.shl), hn::LoadU(df, x + 8 * u), a0);
    } else {
      size_t bit = r * cols * B, u = 0;
      for (; u < units; u++, bit += 8 * B)
        a0 = hn::MulAdd(Decode8<B>(FetchBits(v.qcodes, total, bit), lo, hi, k.shifts, k.shl),
                        hn::LoadU(df, x + 8 * u), a0);
      if (rem) {  // codes past the row end meet x = 0 (tables are finite)
        const VF xv = hn::MaskedLoad(hn::FirstN(df, rem), df, x + 8 * u);
        a1 = hn::MulAdd(Decode8<B>(FetchBits(v.qcodes, total, bit), lo, hi, k.shifts, k.shl), xv, a1);
      }
    }
    y[r] = hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  }
}

// W[r, k0 .. k0 + kb) as f32 into dst, rounded up to whole units of 8 (k0 is a multiple of 8).
template <int B>
struct LutDecodeSeg {
  const LutView& v;
  size_t total;
  LutConsts<B> k;
  HWY_INLINE void operator()(size_t r, size_t k0, size_t kb, float* dst) const {
    const DF df;
    VF lo, hi;
    RowTables<B>(v.lut + (r << B), lo, hi);
    size_t bit = (r * size_t(v.cols) + k0) * B;
    for (size_t u = 0; u * 8 < kb; u++, bit += 8 * B)
      hn::Store(Decode8<B>(FetchBits(v.qcodes, total, bit), lo, hi, k.shifts, k.shl), df, dst + 8 * u);
  }
  void prefetch(size_t, size_t) const {}  // codes are small; the hardware prefetcher keeps up
};

template <int B>
void LutRows(const LutView& v, const float* x, size_t n, float* y, size_t r0, size_t r1) {
  if (n == 1) return LutMatvec<B>(v, x, y, r0, r1);
  const size_t cols = size_t(v.cols);
  const LutDecodeSeg<B> dec{v, packed_code_bytes(size_t(v.rows) * cols, B), LutConsts<B>()};
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
      VF d0 = hn::Zero(df), d1 = hn::Zero(df), d2 = hn::Zero(df), d3 = hn::Zero(df);
      size_t b = b0;
      for (; b + 2 <= b1; b += 2) {
        const VU c0 = LoadBlock(row, rb, b), c1 = LoadBlock(row, rb, b + 1);
        d0 = hn::MulAdd(hn::ConvertTo(df, hn::BitCast(di, hn::And(c0, m15))), hn::LoadU(df, xq + 16 * b), d0);
        d1 = hn::MulAdd(hn::ConvertTo(df, hn::BitCast(di, hn::ShiftRight<4>(c0))), hn::LoadU(df, xq + 16 * b + 8), d1);
        d2 = hn::MulAdd(hn::ConvertTo(df, hn::BitCast(di, hn::And(c1, m15))), hn::LoadU(df, xq + 16 * b + 16), d2);
        d3 = hn::MulAdd(hn::ConvertTo(df, hn::BitCast(di, hn::ShiftRight<4>(c1))), hn::LoadU(df, xq + 16 * b + 24),
                        d3);
      }
      if (b < b1) {
        const VU c0 = LoadBlock(row, rb, b);
        d0 = hn::MulAdd(hn::ConvertTo(df, hn::BitCast(di, hn::And(c0, m15))), hn::LoadU(df, xq + 16 * b), d0);
        d1 = hn::MulAdd(hn::ConvertTo(df, hn::BitCast(di, hn::ShiftRight<4>(c0))), hn::LoadU(df, xq + 16 * b + 8), d1);
      }
      const VF d = hn::Add(hn::Add(d0, d1), hn::Add(d2, d3));
      if (g & 1)
        acc1 = hn::MulAdd(hn::Set(df, sc[g]), d, acc1);
      else
        acc0 = hn::MulAdd(hn::Set(df, sc[g]), d, acc0);
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
  if (isa == Isa::kAvx512) return &avx3;
#endif
  return nullptr;
}

const Int4RowsFn* int4_hwy_kernel(Isa isa) {
#if HWY_TARGETS & HWY_AVX2
  static const Int4RowsFn avx2 = &N_AVX2::Int4Rows;
  if (isa == Isa::kAvx2) return &avx2;
#endif
#if HWY_TARGETS & HWY_AVX3
  static const Int4RowsFn avx3 = &N_AVX3::Int4Rows;
  if (isa == Isa::kAvx512) return &avx3;
#endif
  return nullptr;
}

}  // namespace sq::kernels
#endif  // HWY_ONCE
