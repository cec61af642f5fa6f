// The int8-activation decode kernels of kernels/q8.h for AVX-512 F/BW/VL + VBMI (vpermb) + VNNI
// (vpdpbusd). Written with intrinsics under a function target attribute: Highway's AVX3 target, which
// the rest of the kernels use, has neither instruction, and these kernels only exist for one ISA.
// Only called after isa_supported(Isa::kAvx512Vnni) (kernels/q8.cpp), so the baseline build stays generic.
//
// Per 64 weights: one vpermb (64 table lookups on the byte indices; vpermb reads index bits 0..5 and
// the tables are replicated so that the unused bits do not matter) and one vpdpbusd (64 u8 × s8
// products summed into 16 int32 lanes), plus one 16-bit shift per 128 weights to bring high nibbles
// (4-bit) or plane top bits (3-bit) down. Per activation block: one int32 -> f32 conversion and an FMA.
// GCC 12 warns about the deliberately undefined upper halves inside its own AVX-512 headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/q8.h"

#define SQ_Q8_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx512vnni")))

namespace sq::kernels::q8_avx512 {

namespace {

// Mask of the first n (< 64) bytes.
SQ_Q8_TARGET inline __mmask64 first_bytes(size_t n) { return n >= 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1; }

// 64 code bytes at p, of which `avail` are inside the row (the rest read as 0).
SQ_Q8_TARGET inline __m512i load_codes(const uint8_t* p, size_t avail) {
  return avail >= 64 ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(first_bytes(avail), p);
}

// An int32 accumulator whose lanes sum to c (c in lane 0).
SQ_Q8_TARGET inline __m512i start(int32_t c) { return _mm512_castsi128_si512(_mm_cvtsi32_si128(c)); }

// Software prefetch of the code bytes kPrefetch ahead of those being read: the kernels need only a
// third to a half of the bytes per cycle of the F16 kernel, and the hardware prefetcher alone left one
// thread's DRAM reads and arithmetic mostly serialised (measured: bench_quant_kernels, threads:1).
// Prefetching past the end of the matrix is harmless (prefetches do not fault).
constexpr size_t kPrefetch = 2048;
SQ_Q8_TARGET inline void prefetch_ahead(const uint8_t* p, size_t bytes) {
  for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetch + o), _MM_HINT_T0);
}

SQ_Q8_TARGET inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

}  // namespace

SQ_Q8_TARGET void quantize(const float* x, int64_t cols, int64_t block, int64_t padded, int8_t* q, float* d,
                           int32_t* sum) {
  std::memset(q, 0, size_t(padded));
  for (int64_t b = 0; b * block < padded; b++) {
    const int64_t c0 = b * block, c1 = std::min(cols, c0 + block);
    d[b] = 0;
    sum[b] = 0;
    if (c1 <= c0) continue;
    __m512 m = _mm512_setzero_ps();
    for (int64_t c = c0; c < c1; c += 16) {
      const __mmask16 k = c1 - c >= 16 ? __mmask16(0xffff) : __mmask16((1u << (c1 - c)) - 1);
      m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_maskz_loadu_ps(k, x + c)));
    }
    const float amax = _mm512_reduce_max_ps(m);
    if (amax == 0) continue;
    const float inv = 127.0f / amax;
    d[b] = amax / 127.0f;
    const __m512 vi = _mm512_set1_ps(inv);
    __m512i s = _mm512_setzero_si512();
    for (int64_t c = c0; c < c1; c += 16) {
      const __mmask16 k = c1 - c >= 16 ? __mmask16(0xffff) : __mmask16((1u << (c1 - c)) - 1);
      // Round to nearest even, as std::nearbyint in the reference (MXCSR default).
      const __m512i qi = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + c), vi));
      s = _mm512_add_epi32(s, qi);
      _mm_mask_storeu_epi8(q + c, k, _mm512_cvtsepi32_epi8(qi));
    }
    sum[b] = _mm512_reduce_add_epi32(s);
  }
}

// 4-bit lane layout, xq in lut4_order. Per 256 columns (one activation block): two 64-byte code loads,
// each giving 64 low-nibble and 64 high-nibble indices, summed in two int32 chains (the vpdpbusd
// latency). Whole blocks run without branches; a row's last partial block reads its codes masked.
SQ_Q8_TARGET inline __m512i lut4_block(__m512i c0, __m512i c1, __m512i T, const int8_t* xb, int32_t start_sum) {
  __m512i a = start(start_sum), a2 = _mm512_setzero_si512();
  a = _mm512_dpbusd_epi32(a, _mm512_permutexvar_epi8(c0, T), _mm512_loadu_si512(xb));
  a2 = _mm512_dpbusd_epi32(a2, _mm512_permutexvar_epi8(_mm512_srli_epi16(c0, 4), T), _mm512_loadu_si512(xb + 64));
  a = _mm512_dpbusd_epi32(a, _mm512_permutexvar_epi8(c1, T), _mm512_loadu_si512(xb + 128));
  a2 = _mm512_dpbusd_epi32(a2, _mm512_permutexvar_epi8(_mm512_srli_epi16(c1, 4), T), _mm512_loadu_si512(xb + 192));
  return _mm512_add_epi32(a, a2);
}

SQ_Q8_TARGET void lut4_rows(const LutView& v, const int8_t* xq, const float* d, const int32_t* sum, float* y,
                            size_t r0, size_t r1) {
  const size_t wpr = size_t(lane_words_per_row(v.cols, 4)), row_bytes = 4 * wpr;
  const size_t full = row_bytes / 128, nb = (size_t(v.cols) + kQ8LutBlock - 1) / kQ8LutBlock;
  const __m512i bias = _mm512_set1_epi8(char(0x80));
  for (size_t r = r0; r < r1; r++) {
    const uint8_t* row = reinterpret_cast<const uint8_t*>(v.lanes + r * wpr);
    // Table byte i = T[r, i & 15] + 128 (u8): the 16 entries replicated over the four 128-bit lanes.
    const __m512i T = _mm512_xor_si512(
        _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v.qlut + r * 16))), bias);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    size_t b = 0;
    for (; b + 2 <= full; b += 2) {  // two activation blocks per step, one per float accumulator
      const uint8_t* p = row + 128 * b;
      prefetch_ahead(p, 256);
      const __m512i a = lut4_block(_mm512_loadu_si512(p), _mm512_loadu_si512(p + 64), T, xq + 256 * b, -128 * sum[b]);
      const __m512i a2 =
          lut4_block(_mm512_loadu_si512(p + 128), _mm512_loadu_si512(p + 192), T, xq + 256 * b + 256, -128 * sum[b + 1]);
      acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), _mm512_set1_ps(d[b]), acc0);
      acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a2), _mm512_set1_ps(d[b + 1]), acc1);
    }
    for (; b < nb; b++) {  // the rest: masked code loads (zeros past the row; xq is zero there too)
      const size_t o = 128 * b;
      const __m512i c0 = load_codes(row + o, row_bytes - o);
      const __m512i c1 = o + 64 < row_bytes ? load_codes(row + o + 64, row_bytes - o - 64) : _mm512_setzero_si512();
      acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lut4_block(c0, c1, T, xq + 256 * b, -128 * sum[b])),
                             _mm512_set1_ps(d[b]), acc0);
    }
    y[r] = hsum(_mm512_add_ps(acc0, acc1)) * v.qscale[r];
  }
}

// 3-bit byte planes (formats/lut.h), xq in natural order. Per 512-column block: planes 0, 1 are the
// first activation block (columns 0..255), plane 2 and e the second (256..511).
SQ_Q8_TARGET void lut3_rows(const LutView& v, const int8_t* xq, const float* d, const int32_t* sum, float* y,
                            size_t r0, size_t r1) {
  const size_t wpr = size_t(lane_words_per_row(v.cols, 3));
  const size_t nb = (size_t(v.cols) + kQ8LutBlock - 1) / kQ8LutBlock, n512 = wpr / 48;
  const __m512i bias = _mm512_set1_epi8(char(0x80));
  // vpermb indices that spread byte k of an 8-byte table over bytes 8k .. 8k+7: TB[i] = TA[i >> 3].
  alignas(64) uint8_t spread[64];
  for (int i = 0; i < 64; i++) spread[i] = uint8_t(i >> 3);
  const __m512i idx_b = _mm512_load_si512(spread);
  const __m512i m03 = _mm512_set1_epi8(0x03), m0f = _mm512_set1_epi8(0x0f);
  for (size_t r = r0; r < r1; r++) {
    const uint8_t* row = reinterpret_cast<const uint8_t*>(v.lanes + r * wpr);
    int64_t t8;
    std::memcpy(&t8, v.qlut + r * 16, 8);
    // TA[i] = T[i & 7] + 128 reads code bits 0..2; TB[i] = T[(i >> 3) & 7] + 128 reads bits 3..5.
    const __m512i TA = _mm512_xor_si512(_mm512_set1_epi64(t8), bias);
    const __m512i TB = _mm512_permutexvar_epi8(idx_b, TA);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (size_t s = 0; s < n512; s++) {
      const uint8_t* p = row + 192 * s;
      const int8_t* xb = xq + 512 * s;
      prefetch_ahead(p, 192);
      const __m512i v0 = _mm512_loadu_si512(p), v1 = _mm512_loadu_si512(p + 64);
      __m512i a = start(-128 * sum[2 * s]);
      a = _mm512_dpbusd_epi32(a, _mm512_permutexvar_epi8(v0, TA), _mm512_loadu_si512(xb));
      a = _mm512_dpbusd_epi32(a, _mm512_permutexvar_epi8(v0, TB), _mm512_loadu_si512(xb + 64));
      a = _mm512_dpbusd_epi32(a, _mm512_permutexvar_epi8(v1, TA), _mm512_loadu_si512(xb + 128));
      a = _mm512_dpbusd_epi32(a, _mm512_permutexvar_epi8(v1, TB), _mm512_loadu_si512(xb + 192));
      acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), _mm512_set1_ps(d[2 * s]), acc0);
      if (2 * s + 1 >= nb) break;  // a last block of at most 256 real columns: plane 2 and e are padding
      const __m512i v2 = _mm512_loadu_si512(p + 128);
      // e = v0[7:6] | v1[7:6] << 2 | v2[7:6] << 4 per byte (bits 6, 7 of e are don't-care for vpermb):
      // 16-bit shifts bring each byte's top bits down (the bits shifted in from the neighbour byte land
      // above them), then two bitwise selects (ternary-logic 0xE4: c ? a : b) merge them.
      const __m512i u = _mm512_ternarylogic_epi32(_mm512_srli_epi16(v0, 6), _mm512_srli_epi16(v1, 4), m03, 0xE4);
      const __m512i e = _mm512_ternarylogic_epi32(u, _mm512_srli_epi16(v2, 2), m0f, 0xE4);
      __m512i a2 = start(-128 * sum[2 * s + 1]);
      a2 = _mm512_dpbusd_epi32(a2, _mm512_permutexvar_epi8(v2, TA), _mm512_loadu_si512(xb + 256));
      a2 = _mm512_dpbusd_epi32(a2, _mm512_permutexvar_epi8(v2, TB), _mm512_loadu_si512(xb + 320));
      a2 = _mm512_dpbusd_epi32(a2, _mm512_permutexvar_epi8(e, TA), _mm512_loadu_si512(xb + 384));
      a2 = _mm512_dpbusd_epi32(a2, _mm512_permutexvar_epi8(e, TB), _mm512_loadu_si512(xb + 448));
      acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a2), _mm512_set1_ps(d[2 * s + 1]), acc1);
    }
    y[r] = hsum(_mm512_add_ps(acc0, acc1)) * v.qscale[r];
  }
}

// int4 groups in the 4-bit lane layout (stored order), xq in lut4_order, activation blocks of 128:
// per block one 64-byte code load, and/shift/and for the two nibbles, two vpdpbusd (two chains), and
// the block's float update with scale · d_b.
SQ_Q8_TARGET void int4_rows(const Int4Packed& w, const int8_t* xq, const float* d, const int32_t* sum, float* y,
                            size_t r0, size_t r1) {
  const size_t G = size_t(w.n_groups), wpr = size_t(lane_words_per_row(w.cols, 4)), row_bytes = 4 * wpr;
  const int32_t* gb = w.group_begin.data();
  const __m512i m0f = _mm512_set1_epi8(0x0f);
  for (size_t r = r0; r < r1; r++) {
    const uint8_t* row = reinterpret_cast<const uint8_t*>(w.lanes.data() + r * wpr);
    const float* sc = w.scales.data() + r * G;
    const uint8_t* zp = w.zeros.data() + r * G;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (size_t g = 0; g < G; g++) {
      const int32_t z = zp[g];
      const size_t b0 = size_t(gb[g]) / kQ8Int4Block, b1 = (size_t(gb[g + 1]) + kQ8Int4Block - 1) / kQ8Int4Block;
      for (size_t b = b0; b < b1; b++) {
        const size_t o = 64 * b;
        const __m512i c = o + 64 <= row_bytes ? _mm512_loadu_si512(row + o) : load_codes(row + o, row_bytes - o);
        prefetch_ahead(row + o, 64);
        const __m512i a = _mm512_dpbusd_epi32(start(-z * sum[b]), _mm512_and_si512(c, m0f), _mm512_loadu_si512(xq + 2 * o));
        const __m512i a2 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(_mm512_srli_epi16(c, 4), m0f),
                                               _mm512_loadu_si512(xq + 2 * o + 64));
        const __m512 sd = _mm512_set1_ps(sc[g] * d[b]);
        if (b & 1)
          acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a, a2)), sd, acc1);
        else
          acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a, a2)), sd, acc0);
      }
    }
    y[r] = hsum(_mm512_add_ps(acc0, acc1));
  }
}

}  // namespace sq::kernels::q8_avx512
