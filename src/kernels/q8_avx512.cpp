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
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <type_traits>

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

// Software prefetch of the code bytes kPrefetch ahead of those being read. One thread of the 3-bit
// kernel decoded ~94 G weights/s from cache but ~43 from DRAM: reads and arithmetic mostly serialised.
// The prefetch gave a small gain (43 -> 47, 3-bit, 4096x4096, one thread; 1, 4 and 8 KiB ahead or into
// L2 instead were no better, within this VM's noise); the four streams per thread (kQ8Streams) gave
// the larger one. Prefetching past the end of the matrix is harmless (prefetches do not fault).
constexpr size_t kPrefetch = 2048;
SQ_Q8_TARGET inline void prefetch_ahead(const uint8_t* p, size_t bytes) {
  for (size_t o = 0; o < bytes; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetch + o), _MM_HINT_T0);
}

// Rows decoded side by side per thread (separate sequential streams; see lut3_tile).
constexpr size_t kQ8Streams = 4;

SQ_Q8_TARGET inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

// Loads N activation vectors into registers once per step, for all R rows of a tile. The empty asm
// hides where the values came from, so that the compiler keeps them in registers: without it GCC folds
// the load back into every row's vpdpbusd as a memory operand, and the 4-bit loop then issued about 64
// loads per 2048 weights (32 of them activations, beside 16 code loads and 16 prefetches), which held
// its code-stream reads back. Measured (bench_quant_kernels, 2 threads, old and new binaries
// alternated, two runs): 4-bit 11008x4096 41.6 / 43.1 -> 48.0 / 47.0 GB/s, 4096x11008 37.3 / 39.0 ->
// 44.6 / 43.0 GB/s; 3-bit and int4 unchanged within this VM's noise (there GCC had already kept half
// of the 3-bit loop's activations and all of int4's in registers). A stand-alone copy of the 4-bit
// loop, one thread, 256x4096 codes in L2: 17-20 -> 12-14 ns per 2048 weights. The 3-bit loop loads all
// eight vectors of a 512-column step even for a last step of 256 real columns: q8.cpp pads xq to whole
// 512-column lane blocks (zeros), so the reads stay inside it.
template <size_t N>
SQ_Q8_TARGET inline void load_act(const int8_t* xb, __m512i (&x)[N]) {
  for (size_t k = 0; k < N; k++) {
    x[k] = _mm512_loadu_si512(xb + 64 * k);
    asm("" : "+v"(x[k]));
  }
}

// The sparse part of row r for one activation row: Σ_j vals[j] · x[indices[j]] over the row's CSR
// entries, 16 per step (one masked index load, one vgatherdps of x at those columns, one FMA with the
// deltas), then one horizontal sum. Measured on 3-bit + 0.45% sparse, 11008x4096 and 32000x4096, 2 threads
// (bench_quant_kernels, time over dense 3-bit's): this loop after each row chunk 1.25x; the scalar loop
// (kernels/sparse.cpp) in the same place 1.27-1.51x; each row's sparse sum right after its dense sum
// inside the tiles 1.6-1.8x. The bytes alone would give 1.07x: this CPU's gathers are slow and the
// row lengths vary (a loop exit mispredicted per row); unrolled masked steps and prefetching did not help.
SQ_Q8_TARGET inline float csr_row(const int32_t* indptr, const int32_t* indices, const float* vals, const float* x,
                                  size_t r) {
  const int32_t j0 = indptr[r], j1 = indptr[r + 1];
  __m512 acc = _mm512_setzero_ps();
  for (int32_t j = j0; j < j1; j += 16) {
    const int32_t n = j1 - j;
    const __mmask16 k = n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1);
    const __m512 xv =
        _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, _mm512_maskz_loadu_epi32(k, indices + j), x, 4);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, vals + j), xv, acc);
  }
  return hsum(acc);
}

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
SQ_Q8_TARGET inline __m512i lut4_block(__m512i c0, __m512i c1, __m512i T, const __m512i* x, int32_t start_sum) {
  __m512i a = start(start_sum), a2 = _mm512_setzero_si512();
  a = _mm512_dpbusd_epi32(a, _mm512_permutexvar_epi8(c0, T), x[0]);
  a2 = _mm512_dpbusd_epi32(a2, _mm512_permutexvar_epi8(_mm512_srli_epi16(c0, 4), T), x[1]);
  a = _mm512_dpbusd_epi32(a, _mm512_permutexvar_epi8(c1, T), x[2]);
  a2 = _mm512_dpbusd_epi32(a2, _mm512_permutexvar_epi8(_mm512_srli_epi16(c1, 4), T), x[3]);
  return _mm512_add_epi32(a, a2);
}

template <size_t R>
SQ_Q8_TARGET inline void lut4_tile(const LutView& v, const size_t* r, const int8_t* xq, const float* d,
                                   const int32_t* sum, float* y) {
  const size_t wpr = size_t(lane_words_per_row(v.cols, 4)), row_bytes = 4 * wpr;
  const size_t full = row_bytes / 128, nb = (size_t(v.cols) + kQ8LutBlock - 1) / kQ8LutBlock;
  const __m512i bias = _mm512_set1_epi8(char(0x80));
  __m512i T[R];
  __m512 acc0[R], acc1[R];
  const uint8_t* row[R];
  for (size_t i = 0; i < R; i++) {
    // Table byte k = T[r, k & 15] + 128 (u8): the 16 entries replicated over the four 128-bit lanes.
    T[i] = _mm512_xor_si512(
        _mm512_broadcast_i32x4(_mm_loadu_si128(static_cast<const __m128i*>(v.q8_table(int64_t(r[i]))))), bias);
    acc0[i] = acc1[i] = _mm512_setzero_ps();
    row[i] = reinterpret_cast<const uint8_t*>(v.lane_row(int64_t(r[i])));
  }
  size_t b = 0;
  for (; b + 2 <= full; b += 2) {  // two activation blocks per step, one per float accumulator
    __m512i x[8];
    load_act(xq + 256 * b, x);
    const __m512 d0 = _mm512_set1_ps(d[b]), d1 = _mm512_set1_ps(d[b + 1]);
#pragma GCC unroll 4
    for (size_t i = 0; i < R; i++) {
      const uint8_t* p = row[i] + 128 * b;
      prefetch_ahead(p, 256);
      const __m512i a = lut4_block(_mm512_loadu_si512(p), _mm512_loadu_si512(p + 64), T[i], x, -128 * sum[b]);
      const __m512i a2 =
          lut4_block(_mm512_loadu_si512(p + 128), _mm512_loadu_si512(p + 192), T[i], x + 4, -128 * sum[b + 1]);
      acc0[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), d0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a2), d1, acc1[i]);
    }
  }
  for (; b < nb; b++) {  // the rest: masked code loads (zeros past the row; xq is zero there too)
    const size_t o = 128 * b;
    __m512i x[4];
    load_act(xq + 256 * b, x);
    for (size_t i = 0; i < R; i++) {
      const __m512i c0 = load_codes(row[i] + o, row_bytes - o);
      const __m512i c1 =
          o + 64 < row_bytes ? load_codes(row[i] + o + 64, row_bytes - o - 64) : _mm512_setzero_si512();
      acc0[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(lut4_block(c0, c1, T[i], x, -128 * sum[b])),
                                _mm512_set1_ps(d[b]), acc0[i]);
    }
  }
  for (size_t i = 0; i < R; i++) y[r[i]] = hsum(_mm512_add_ps(acc0[i], acc1[i])) * v.q8_scale(int64_t(r[i]));
}

// Rows [r0, r1) in tiles of R rows from R equal sub-ranges (see lut3_tile), the rest one at a time.
template <class Tile1, class TileR>
SQ_Q8_TARGET inline void by_streams(size_t r0, size_t r1, const Tile1& one, const TileR& many) {
  constexpr size_t R = kQ8Streams;
  const size_t len = (r1 - r0) / R;  // rows per sub-range
  size_t r[R];
  for (size_t j = 0; j < len; j++) {
    for (size_t i = 0; i < R; i++) r[i] = r0 + i * len + j;
    many(r);
  }
  for (size_t k = r0 + R * len; k < r1; k++) one(&k);
}

SQ_Q8_TARGET void lut4_rows(const LutView& v, const int8_t* xq, const float* d, const int32_t* sum, float* y,
                            size_t r0, size_t r1) {
  by_streams(
      r0, r1, [&](const size_t* r) SQ_Q8_TARGET { lut4_tile<1>(v, r, xq, d, sum, y); },
      [&](const size_t* r) SQ_Q8_TARGET { lut4_tile<kQ8Streams>(v, r, xq, d, sum, y); });
}

// 3-bit byte planes (formats/lut.h), xq in natural order. Per 512-column block: planes 0, 1 are the
// first activation block (columns 0..255), plane 2 and e the second (256..511).
// R rows at once, taken from R equal sub-ranges of [r0, r1) (as the F16 matvec in dense_hwy.cpp): R
// long sequential streams per thread keep more DRAM reads in flight than one, and the activation loads
// are shared by the R rows.
struct Lut3Row {
  __m512i TA, TB;  // TA[i] = T[i & 7] + 128 reads code bits 0..2; TB[i] = T[(i >> 3) & 7] + 128 bits 3..5
  __m512 acc0, acc1;
  const uint8_t* p;
};

template <size_t R>
SQ_Q8_TARGET inline void lut3_tile(const LutView& v, const size_t* r, const int8_t* xq, const float* d,
                                   const int32_t* sum, float* y) {
  const size_t wpr = size_t(lane_words_per_row(v.cols, 3));
  const size_t nb = (size_t(v.cols) + kQ8LutBlock - 1) / kQ8LutBlock, n512 = wpr / 48;
  const __m512i bias = _mm512_set1_epi8(char(0x80));
  alignas(64) static constexpr uint8_t kSpread[64] = {
      0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
      4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7};
  const __m512i idx_b = _mm512_load_si512(kSpread);  // TB = vpermb(idx_b, TA): TB[i] = TA[i >> 3]
  const __m512i m03 = _mm512_set1_epi8(0x03), m0f = _mm512_set1_epi8(0x0f);
  Lut3Row w[R];
  for (size_t i = 0; i < R; i++) {
    int64_t t8;
    std::memcpy(&t8, v.q8_table(int64_t(r[i])), 8);
    w[i].TA = _mm512_xor_si512(_mm512_set1_epi64(t8), bias);
    w[i].TB = _mm512_permutexvar_epi8(idx_b, w[i].TA);
    w[i].acc0 = w[i].acc1 = _mm512_setzero_ps();
    w[i].p = reinterpret_cast<const uint8_t*>(v.lane_row(int64_t(r[i])));
  }
  for (size_t s = 0; s < n512; s++) {
    __m512i x[8];
    load_act(xq + 512 * s, x);
    const __m512 d0 = _mm512_set1_ps(d[2 * s]);
    const bool second = 2 * s + 1 < nb;  // false: a last block of at most 256 real columns (plane 2, e are padding)
    const __m512 d1 = second ? _mm512_set1_ps(d[2 * s + 1]) : d0;
    const int32_t s0 = -128 * sum[2 * s], s1 = second ? -128 * sum[2 * s + 1] : 0;
#pragma GCC unroll 4
    for (size_t i = 0; i < R; i++) {
      const uint8_t* p = w[i].p + 192 * s;
      prefetch_ahead(p, 192);
      const __m512i v0 = _mm512_loadu_si512(p), v1 = _mm512_loadu_si512(p + 64);
      __m512i a = start(s0);
      a = _mm512_dpbusd_epi32(a, _mm512_permutexvar_epi8(v0, w[i].TA), x[0]);
      a = _mm512_dpbusd_epi32(a, _mm512_permutexvar_epi8(v0, w[i].TB), x[1]);
      a = _mm512_dpbusd_epi32(a, _mm512_permutexvar_epi8(v1, w[i].TA), x[2]);
      a = _mm512_dpbusd_epi32(a, _mm512_permutexvar_epi8(v1, w[i].TB), x[3]);
      w[i].acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), d0, w[i].acc0);
      if (!second) continue;
      const __m512i v2 = _mm512_loadu_si512(p + 128);
      // e = v0[7:6] | v1[7:6] << 2 | v2[7:6] << 4 per byte (bits 6, 7 of e are don't-care for vpermb):
      // 16-bit shifts bring each byte's top bits down (the bits shifted in from the neighbour byte land
      // above them), then two bitwise selects (ternary-logic 0xE4: c ? a : b) merge them.
      const __m512i u = _mm512_ternarylogic_epi32(_mm512_srli_epi16(v0, 6), _mm512_srli_epi16(v1, 4), m03, 0xE4);
      const __m512i e = _mm512_ternarylogic_epi32(u, _mm512_srli_epi16(v2, 2), m0f, 0xE4);
      __m512i a2 = start(s1);
      a2 = _mm512_dpbusd_epi32(a2, _mm512_permutexvar_epi8(v2, w[i].TA), x[4]);
      a2 = _mm512_dpbusd_epi32(a2, _mm512_permutexvar_epi8(v2, w[i].TB), x[5]);
      a2 = _mm512_dpbusd_epi32(a2, _mm512_permutexvar_epi8(e, w[i].TA), x[6]);
      a2 = _mm512_dpbusd_epi32(a2, _mm512_permutexvar_epi8(e, w[i].TB), x[7]);
      w[i].acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a2), d1, w[i].acc1);
    }
  }
  for (size_t i = 0; i < R; i++) y[r[i]] = hsum(_mm512_add_ps(w[i].acc0, w[i].acc1)) * v.q8_scale(int64_t(r[i]));
}

SQ_Q8_TARGET void lut3_rows(const LutView& v, const int8_t* xq, const float* d, const int32_t* sum, float* y,
                            size_t r0, size_t r1) {
  by_streams(
      r0, r1, [&](const size_t* r) SQ_Q8_TARGET { lut3_tile<1>(v, r, xq, d, sum, y); },
      [&](const size_t* r) SQ_Q8_TARGET { lut3_tile<kQ8Streams>(v, r, xq, d, sum, y); });
}

// int4 groups in the 4-bit lane layout (stored order), xq in lut4_order, activation blocks of 128
// (each inside one group: group bg[b]). Per two blocks and row: two 64-byte code loads, and/shift/and
// for the two nibbles of each, four vpdpbusd (two chains), and each block's float update with
// scale · d_b into its own accumulator. R rows at once, as lut3_tile. Two blocks per step rather than
// one: one block per step (each group's blocks in a loop, the accumulator picked by the block's parity)
// read 0.83-0.93 as fast (11008x4096 and 4096x11008, 2 threads, alternated in one process, 15 rounds).
// A row's scales and zero points lie just before its codes (formats/int4_group.h), so the prefetch
// 2 KiB ahead in the code stream fetches the next row's with the end of this one.
template <size_t R>
SQ_Q8_TARGET inline void int4_tile(const Int4Packed& w, const size_t* r, const int8_t* xq, const float* d,
                                   const int32_t* sum, const int32_t* bg, float* y) {
  const size_t row_bytes = 4 * size_t(lane_words_per_row(w.cols, 4));
  const size_t nb = (size_t(w.cols) + kQ8Int4Block - 1) / kQ8Int4Block, full = std::min(nb, row_bytes / 64);
  const __m512i m0f = _mm512_set1_epi8(0x0f);
  const uint8_t* row[R];
  const uint32_t* sc[R];  // f32 scales as bit patterns, in front of the row's codes
  const uint8_t* zp[R];
  __m512 acc0[R], acc1[R];
  for (size_t i = 0; i < R; i++) {
    row[i] = reinterpret_cast<const uint8_t*>(w.lane_codes(int64_t(r[i])));
    sc[i] = w.lane_scales(int64_t(r[i]));
    zp[i] = w.lane_zeros(int64_t(r[i]));
    acc0[i] = acc1[i] = _mm512_setzero_ps();
  }
  const auto scale = [&](size_t i, size_t g) { return std::bit_cast<float>(sc[i][g]); };
  // One block's int32 sum: −zero · Σ q plus the codes (low nibbles with xlo, high with xhi).
  const auto block = [&](__m512i c, __m512i xlo, __m512i xhi, int32_t z, int32_t s) SQ_Q8_TARGET {
    const __m512i a = _mm512_dpbusd_epi32(start(-z * s), _mm512_and_si512(c, m0f), xlo);
    return _mm512_dpbusd_epi32(a, _mm512_and_si512(_mm512_srli_epi16(c, 4), m0f), xhi);
  };
  size_t b = 0;
  for (; b + 2 <= full; b += 2) {  // whole 64-byte code blocks
    __m512i x[4];
    load_act(xq + 128 * b, x);
    const size_t g0 = size_t(bg[b]), g1 = size_t(bg[b + 1]);
#pragma GCC unroll 4
    for (size_t i = 0; i < R; i++) {
      const uint8_t* p = row[i] + 64 * b;
      prefetch_ahead(p, 128);
      const __m512i a = block(_mm512_loadu_si512(p), x[0], x[1], zp[i][g0], sum[b]);
      const __m512i a2 = block(_mm512_loadu_si512(p + 64), x[2], x[3], zp[i][g1], sum[b + 1]);
      acc0[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), _mm512_set1_ps(scale(i, g0) * d[b]), acc0[i]);
      acc1[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a2), _mm512_set1_ps(scale(i, g1) * d[b + 1]), acc1[i]);
    }
  }
  for (; b < nb; b++) {  // the rest: masked code loads (zeros past the row; xq is zero there too)
    const size_t o = 64 * b, g = size_t(bg[b]);
    __m512i x[2];
    load_act(xq + 128 * b, x);
    for (size_t i = 0; i < R; i++) {
      const __m512i a = block(load_codes(row[i] + o, row_bytes - o), x[0], x[1], zp[i][g], sum[b]);
      acc0[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a), _mm512_set1_ps(scale(i, g) * d[b]), acc0[i]);
    }
  }
  for (size_t i = 0; i < R; i++) y[r[i]] = hsum(_mm512_add_ps(acc0[i], acc1[i]));
}

SQ_Q8_TARGET void int4_rows(const Int4Packed& w, const int8_t* xq, const float* d, const int32_t* sum,
                            const int32_t* bg, float* y, size_t r0, size_t r1) {
  by_streams(
      r0, r1, [&](const size_t* r) SQ_Q8_TARGET { int4_tile<1>(w, r, xq, d, sum, bg, y); },
      [&](const size_t* r) SQ_Q8_TARGET { int4_tile<kQ8Streams>(w, r, xq, d, sum, bg, y); });
}

// ---- several activation rows (batched decode, prompt chunks) --------------------------------------
// One weight row against C (<= q8_group_rows) activation rows: each step decodes the row's int8 weights
// once (vpermb, or and/shift for int4) and runs every activation row's vpdpbusd on them. Activations
// come interleaved per group (q8.h, "activation groups"): block b of row j at xg + (b·C + j)·block,
// its scale and integer term at dg[b·C + j], tg[b·C + j], so one pointer and constant offsets address
// all C rows (with a pointer per row, GCC ran out of registers and reloaded them from the stack: half
// the speed). Each row's float adds are in the matvec kernel's order (acc0 / acc1 as lut4_tile,
// lut3_tile, int4_tile), so each row's result is the matvec's bit for bit.

#define SQ_Q8_INLINE SQ_Q8_TARGET inline __attribute__((always_inline))

// acc[j] += d_j,b · (t_j,b + Σ over one 256-column block of w_k · x_j): four 64-byte weight vectors in
// the tables' biased u8 form, t = −128·Σq. Accumulators are arrays of compile-time size so that they
// stay in registers.
template <size_t C>
SQ_Q8_INLINE void lut_block_dot(__m512i w0, __m512i w1, __m512i w2, __m512i w3, const int8_t* xg, const float* dg,
                                const int32_t* tg, size_t b, __m512 (&acc)[C]) {
  const int8_t* xb = xg + b * C * 256;
#pragma GCC unroll 8
  for (size_t j = 0; j < C; j++) {
    __m512i a = _mm512_dpbusd_epi32(start(tg[b * C + j]), w0, _mm512_loadu_si512(xb + 256 * j));
    __m512i a2 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w1, _mm512_loadu_si512(xb + 256 * j + 64));
    a = _mm512_dpbusd_epi32(a, w2, _mm512_loadu_si512(xb + 256 * j + 128));
    a2 = _mm512_dpbusd_epi32(a2, w3, _mm512_loadu_si512(xb + 256 * j + 192));
    acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a, a2)), _mm512_set1_ps(dg[b * C + j]), acc[j]);
  }
}

template <size_t C>
SQ_Q8_INLINE void lut4_block(const __m512i T, __m512i c0, __m512i c1, const int8_t* xg, const float* dg,
                             const int32_t* tg, size_t b, __m512 (&acc)[C]) {
  lut_block_dot<C>(_mm512_permutexvar_epi8(c0, T), _mm512_permutexvar_epi8(_mm512_srli_epi16(c0, 4), T),
                   _mm512_permutexvar_epi8(c1, T), _mm512_permutexvar_epi8(_mm512_srli_epi16(c1, 4), T), xg, dg, tg,
                   b, acc);
}

template <size_t C>
SQ_Q8_TARGET void lut4_multi(const LutView& v, size_t r, const int8_t* xg, const float* dg, const int32_t* tg,
                             float* y, size_t ldy) {
  const size_t row_bytes = 4 * size_t(lane_words_per_row(v.cols, 4));
  const size_t full = row_bytes / 128, nb = (size_t(v.cols) + kQ8LutBlock - 1) / kQ8LutBlock;
  const __m512i T = _mm512_xor_si512(
      _mm512_broadcast_i32x4(_mm_loadu_si128(static_cast<const __m128i*>(v.q8_table(int64_t(r))))),
      _mm512_set1_epi8(char(0x80)));
  const uint8_t* p = reinterpret_cast<const uint8_t*>(v.lane_row(int64_t(r)));
  __m512 acc0[C], acc1[C];
  for (size_t j = 0; j < C; j++) acc0[j] = acc1[j] = _mm512_setzero_ps();
  size_t b = 0;
  for (; b + 2 <= full; b += 2) {
    const uint8_t* q = p + 128 * b;
    prefetch_ahead(q, 256);
    lut4_block<C>(T, _mm512_loadu_si512(q), _mm512_loadu_si512(q + 64), xg, dg, tg, b, acc0);
    lut4_block<C>(T, _mm512_loadu_si512(q + 128), _mm512_loadu_si512(q + 192), xg, dg, tg, b + 1, acc1);
  }
  for (; b < nb; b++) {
    const size_t o = 128 * b;
    const __m512i c1 = o + 64 < row_bytes ? load_codes(p + o + 64, row_bytes - o - 64) : _mm512_setzero_si512();
    lut4_block<C>(T, load_codes(p + o, row_bytes - o), c1, xg, dg, tg, b, acc0);
  }
  const float s = v.q8_scale(int64_t(r));
  for (size_t j = 0; j < C; j++) y[j * ldy + r] = hsum(_mm512_add_ps(acc0[j], acc1[j])) * s;
}

template <size_t C>
SQ_Q8_TARGET void lut3_multi(const LutView& v, size_t r, const int8_t* xg, const float* dg, const int32_t* tg,
                             float* y, size_t ldy) {
  const size_t wpr = size_t(lane_words_per_row(v.cols, 3));
  const size_t nb = (size_t(v.cols) + kQ8LutBlock - 1) / kQ8LutBlock, n512 = wpr / 48;
  alignas(64) static constexpr uint8_t kSpread[64] = {
      0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
      4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7};
  const __m512i m03 = _mm512_set1_epi8(0x03), m0f = _mm512_set1_epi8(0x0f);
  int64_t t8;
  std::memcpy(&t8, v.q8_table(int64_t(r)), 8);
  const __m512i TA = _mm512_xor_si512(_mm512_set1_epi64(t8), _mm512_set1_epi8(char(0x80)));
  const __m512i TB = _mm512_permutexvar_epi8(_mm512_load_si512(kSpread), TA);
  const uint8_t* p0 = reinterpret_cast<const uint8_t*>(v.lane_row(int64_t(r)));
  __m512 acc0[C], acc1[C];
  for (size_t j = 0; j < C; j++) acc0[j] = acc1[j] = _mm512_setzero_ps();
  for (size_t st = 0; st < n512; st++) {
    const uint8_t* p = p0 + 192 * st;
    prefetch_ahead(p, 192);
    const __m512i v0 = _mm512_loadu_si512(p), v1 = _mm512_loadu_si512(p + 64);
    lut_block_dot<C>(_mm512_permutexvar_epi8(v0, TA), _mm512_permutexvar_epi8(v0, TB),
                     _mm512_permutexvar_epi8(v1, TA), _mm512_permutexvar_epi8(v1, TB), xg, dg, tg, 2 * st, acc0);
    if (2 * st + 1 >= nb) continue;  // a last block of at most 256 real columns: plane 2 and e are padding
    const __m512i v2 = _mm512_loadu_si512(p + 128);
    const __m512i u = _mm512_ternarylogic_epi32(_mm512_srli_epi16(v0, 6), _mm512_srli_epi16(v1, 4), m03, 0xE4);
    const __m512i e = _mm512_ternarylogic_epi32(u, _mm512_srli_epi16(v2, 2), m0f, 0xE4);
    lut_block_dot<C>(_mm512_permutexvar_epi8(v2, TA), _mm512_permutexvar_epi8(v2, TB),
                     _mm512_permutexvar_epi8(e, TA), _mm512_permutexvar_epi8(e, TB), xg, dg, tg, 2 * st + 1, acc1);
  }
  const float s = v.q8_scale(int64_t(r));
  for (size_t j = 0; j < C; j++) y[j * ldy + r] = hsum(_mm512_add_ps(acc0[j], acc1[j])) * s;
}

// int4: block b (in group bg[b]), 128 columns, low and high nibbles against the two halves of the
// activation block (lut4_order); t = Σq, times the row's zero point.
template <size_t C>
SQ_Q8_INLINE void int4_block_dot(__m512i c, int32_t z, float scale, const int8_t* xg, const float* dg,
                                 const int32_t* tg, size_t b, __m512 (&acc)[C]) {
  const __m512i m0f = _mm512_set1_epi8(0x0f);
  const __m512i lo = _mm512_and_si512(c, m0f), hi = _mm512_and_si512(_mm512_srli_epi16(c, 4), m0f);
  const int8_t* xb = xg + b * C * 128;
#pragma GCC unroll 8
  for (size_t j = 0; j < C; j++) {
    const __m512i a = _mm512_dpbusd_epi32(start(-z * tg[b * C + j]), lo, _mm512_loadu_si512(xb + 128 * j));
    const __m512i a2 = _mm512_dpbusd_epi32(a, hi, _mm512_loadu_si512(xb + 128 * j + 64));
    acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a2), _mm512_set1_ps(scale * dg[b * C + j]), acc[j]);
  }
}

template <size_t C>
SQ_Q8_TARGET void int4_multi(const Int4Packed& w, size_t r, const int8_t* xg, const float* dg, const int32_t* tg,
                             const int32_t* bg, float* y, size_t ldy) {
  const size_t row_bytes = 4 * size_t(lane_words_per_row(w.cols, 4));
  const size_t nb = (size_t(w.cols) + kQ8Int4Block - 1) / kQ8Int4Block, full = std::min(nb, row_bytes / 64);
  const uint8_t* p = reinterpret_cast<const uint8_t*>(w.lane_codes(int64_t(r)));
  const uint32_t* sc = w.lane_scales(int64_t(r));
  const uint8_t* zp = w.lane_zeros(int64_t(r));
  auto scale = [&](size_t b) { return std::bit_cast<float>(sc[bg[b]]); };
  __m512 acc0[C], acc1[C];
  for (size_t j = 0; j < C; j++) acc0[j] = acc1[j] = _mm512_setzero_ps();
  size_t b = 0;
  for (; b + 2 <= full; b += 2) {
    const uint8_t* q = p + 64 * b;
    prefetch_ahead(q, 128);
    int4_block_dot<C>(_mm512_loadu_si512(q), zp[bg[b]], scale(b), xg, dg, tg, b, acc0);
    int4_block_dot<C>(_mm512_loadu_si512(q + 64), zp[bg[b + 1]], scale(b + 1), xg, dg, tg, b + 1, acc1);
  }
  for (; b < nb; b++)
    int4_block_dot<C>(load_codes(p + 64 * b, row_bytes - 64 * b), zp[bg[b]], scale(b), xg, dg, tg, b, acc0);
  for (size_t j = 0; j < C; j++) y[j * ldy + r] = hsum(_mm512_add_ps(acc0[j], acc1[j]));
}

// Rows [r0, r1) for n activation rows: groups of `group` activation rows (the outer loop, so a
// group's activations stay in L1/L2 while the rows' codes stream past), each row once per group. Group
// j0 starts at row j0 · nb blocks of xq, d and t.
template <class Kernel>
SQ_Q8_TARGET inline void multi_rows(size_t n, size_t group, size_t r0, size_t r1, const Kernel& k) {
  for (size_t j0 = 0; j0 < n; j0 += group) {
    const size_t c = std::min(group, n - j0);
    for (size_t r = r0; r < r1; r++) {
      switch (c) {
        case 1: k(std::integral_constant<size_t, 1>(), r, j0); break;
        case 2: k(std::integral_constant<size_t, 2>(), r, j0); break;
        case 3: k(std::integral_constant<size_t, 3>(), r, j0); break;
        case 4: k(std::integral_constant<size_t, 4>(), r, j0); break;
        case 5: k(std::integral_constant<size_t, 5>(), r, j0); break;
        case 6: k(std::integral_constant<size_t, 6>(), r, j0); break;
        case 7: k(std::integral_constant<size_t, 7>(), r, j0); break;
        default: k(std::integral_constant<size_t, 8>(), r, j0); break;
      }
    }
  }
}

SQ_Q8_TARGET void lut_rows_n(const LutView& v, size_t n, size_t group, const int8_t* xq, const float* d,
                             const int32_t* t, size_t nb, float* y, size_t ldy, size_t r0, size_t r1) {
  multi_rows(n, group, r0, r1, [&](auto C, size_t r, size_t j0) SQ_Q8_TARGET {
    const int8_t* xg = xq + j0 * nb * size_t(kQ8LutBlock);
    if (v.bits == 3)
      lut3_multi<C()>(v, r, xg, d + j0 * nb, t + j0 * nb, y + j0 * ldy, ldy);
    else
      lut4_multi<C()>(v, r, xg, d + j0 * nb, t + j0 * nb, y + j0 * ldy, ldy);
  });
}

SQ_Q8_TARGET void int4_rows_n(const Int4Packed& w, size_t n, size_t group, const int8_t* xq, const float* d,
                              const int32_t* t, size_t nb, const int32_t* bg, float* y, size_t ldy, size_t r0,
                              size_t r1) {
  multi_rows(n, group, r0, r1, [&](auto C, size_t r, size_t j0) SQ_Q8_TARGET {
    int4_multi<C()>(w, r, xq + j0 * nb * size_t(kQ8Int4Block), d + j0 * nb, t + j0 * nb, bg, y + j0 * ldy, ldy);
  });
}

SQ_Q8_TARGET void csr_rows(const int32_t* indptr, const int32_t* indices, const float* vals, const float* x, float* y,
                           size_t r0, size_t r1) {
  for (size_t r = r0; r < r1; r++) y[r] += csr_row(indptr, indices, vals, x, r);
}

}  // namespace sq::kernels::q8_avx512
