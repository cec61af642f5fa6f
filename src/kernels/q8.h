// Decode (n = 1) with int8 activations for the quantized formats on AVX-512 VBMI + VNNI (Isa::kAvx512Vnni).
//
// Why: the f32 decode kernels spend about one cycle per 8 weights (shift, vpermps, FMA) and are bound
// by arithmetic, not memory (docs/RESULTS.md). With the activations quantized to int8 (per block of
// columns, x ≈ d_b · q) and the weights as int8 too, one vpermb looks up 64 weights and one vpdpbusd
// multiplies and sums 64 weight × activation pairs, exactly, in int32.
//
// Lookup tables (3- and 4-bit, one table per row, lane layout of formats/lut.h): each row's table is
// quantized to int8 at load, T[r, k] ≈ s_r · t_r[k] with s_r = max|table| / 127 (lut_q8_tables), and
// kept in front of the row's codes (LutView::q8_table, q8_scale).
//   y[r] = s_r · Σ_b d_b · Σ_{c in b} t_r[code(r, c)] · q[c]          blocks of kQ8LutBlock columns
// vpdpbusd takes unsigned × signed bytes, so the kernel looks up t + 128 (1..255) and starts each
// block's int32 sum at −128 · Σ_{c in b} q[c]: the integer sum is then exact.
// int4 groups (lane layout, every group boundary a multiple of kQ8Int4Block stored columns):
//   y[r] = Σ_g scale[r, g] · Σ_{b in g} d_b · (Σ_{c in b} code · q[c] − zero[r, g] · Σ_{c in b} q[c])
// codes 0..15 are the unsigned operand as they are.
//
// The scalar references below compute the same integers and the same per-block products; the fast
// kernels differ only in the order the float terms are added (per vector lane, then across lanes).
// The sparse part of a lookup-table matrix is added with f32 activations, row by row inside the same row
// chunks as the dense part (chunks sized by dense work plus non-zeros: see lut_matvec_q8).
// The error against f32 activations is that of int8 rounding per block (about max|x_b| / 254 per
// element), the same as llama.cpp's Q8 activations; the tests bound it.
#pragma once
#include <cstdint>
#include <vector>

#include "core/context.h"
#include "formats/int4_group.h"
#include "formats/lut.h"

namespace sq::kernels {

inline constexpr int64_t kQ8LutBlock = 256;   // columns per activation scale, lookup tables
inline constexpr int64_t kQ8Int4Block = 128;  // columns per activation scale, int4 groups
inline constexpr size_t kQ8MaxCols = 8;        // activation rows per pass of the multi-row kernels
// Activation rows per group for rows of `padded` int8 columns: as many as keep a group in 40 KiB (L1 is
// 48 KiB on the machines measured), 1 to kQ8MaxCols. Down-projections of LLaMA-7B (11008 columns, 11264
// padded) take 3: with 8 rows (90 KiB) read from L2 for every weight row, they ran at 0.65 the speed.
inline size_t q8_group_rows(size_t padded) {
  const size_t g = (size_t(40) << 10) / (padded ? padded : 1);
  return g < 1 ? 1 : g > kQ8MaxCols ? kQ8MaxCols : g;
}

// Activations quantized per block: x[c] ≈ d[c / block] · q[c]; q zero past cols (to `padded`).
struct Q8Act {
  int64_t cols = 0, block = 0, padded = 0;
  std::vector<int8_t> q;     // [padded]
  std::vector<float> d;      // [padded / block] = max|x_b| / 127 (0 for an all-zero block)
  std::vector<int32_t> sum;  // [padded / block] Σ q over the block
};
// q[c] = round-to-nearest-even(x[c] · (127 / max|x_b|)). `padded` is at least `min_padded`.
void q8_quantize_ref(const float* x, int64_t cols, int64_t block, Q8Act& a, int64_t min_padded = 0);

// Row tables as int8 with one f32 scale per row: qlut [rows, 16] (entries past 2^bits are 0), qscale [rows].
void lut_q8_tables(const uint16_t* lut, int64_t rows, int bits, int8_t* qlut, float* qscale);

// Whether the int8 decode path takes this layout.
bool lut_q8_supported(const LutView& v);      // lanes with int8 tables (LutView::has_q8), bits 3 or 4
bool int4_q8_supported(const Int4Packed& w);  // lanes, interior group starts multiples of kQ8Int4Block

// Scalar references, dense part only, rows [r0, r1): y[r] as above (a in natural / stored column order,
// a.block = kQ8LutBlock / kQ8Int4Block).
void lut_matvec_q8_ref(const LutView& v, const Q8Act& a, float* y, int64_t r0, int64_t r1);
void int4_matvec_q8_ref(const Int4Packed& w, const Q8Act& a, float* y, int64_t r0, int64_t r1);

// Y[n, rows] = X[n, cols] · Wᵀ with int8 activations (dense + sparse part for lookup tables; X in
// original column order for int4), split over ctx.pool. Each row of X is quantized on its own and the
// multi-row kernels (n > 1) add each row's terms in the matvec kernels' (n = 1) order, so a row's
// result is bit for bit the same whatever else is in the call: batched decode equals decoding alone
// (tests/test_kernels_quant.cpp, tests/test_batch.cpp). ctx.isa
// kScalar runs the references above row by row; kAvx512Vnni (or kBest on such a CPU) the fast kernels;
// anything else throws sq::Error.
void lut_matmul_q8(const LutView& v, const float* x, int64_t n, float* y, const ExecContext& ctx);
void int4_matmul_q8(const Int4Packed& w, const float* x, int64_t n, float* y, const ExecContext& ctx);
// n = 1.
inline void lut_matvec_q8(const LutView& v, const float* x, float* y, const ExecContext& ctx) {
  lut_matmul_q8(v, x, 1, y, ctx);
}
inline void int4_matvec_q8(const Int4Packed& w, const float* x, float* y, const ExecContext& ctx) {
  int4_matmul_q8(w, x, 1, y, ctx);
}

// --- internal: the AVX-512 VBMI/VNNI kernels (q8_avx512.cpp) ----------------------------------------
namespace q8_avx512 {
// Same result as q8_quantize_ref into caller buffers: q [padded], d and sum [padded / block].
void quantize(const float* x, int64_t cols, int64_t block, int64_t padded, int8_t* q, float* d, int32_t* sum);
// Dense part, rows [r0, r1). xq in natural order (3-bit) or in lut4_order (4-bit, int4).
void lut3_rows(const LutView& v, const int8_t* xq, const float* d, const int32_t* sum, float* y, size_t r0,
               size_t r1);
void lut4_rows(const LutView& v, const int8_t* xq, const float* d, const int32_t* sum, float* y, size_t r0,
               size_t r1);
// int4: bg[b] = the group of activation block b (each block lies inside one group).
void int4_rows(const Int4Packed& w, const int8_t* xq, const float* d, const int32_t* sum, const int32_t* bg,
               float* y, size_t r0, size_t r1);
// Several activation rows (kernels/q8_avx512.cpp "several activation rows"), rows [r0, r1) of
// y[j·ldy + r]. Activation groups: the n rows of X in groups of `group` rows (q8_group_rows; the last
// one smaller, C rows); group j0 starts at block j0·nb of xq, d and t, and within it block b of its row j is at
// (b·C + j)·block bytes of xq, its scale d and integer term t at [b·C + j] (t = −128·Σq for lookup
// tables, Σq for int4). nb = blocks per row (padded / block).
void lut_rows_n(const LutView& v, size_t n, size_t group, const int8_t* xq, const float* d, const int32_t* t, size_t nb, float* y,
                size_t ldy, size_t r0, size_t r1);
void int4_rows_n(const Int4Packed& w, size_t n, size_t group, const int8_t* xq, const float* d, const int32_t* t, size_t nb,
                 const int32_t* bg, float* y, size_t ldy, size_t r0, size_t r1);
// y[r] += Σ_j vals[j] · x[indices[j]] over each row's CSR entries, rows [r0, r1) (one activation row;
// the scalar reference is kernels/sparse.h csr_add_rows with n = 1, up to the order of the f32 adds).
void csr_rows(const int32_t* indptr, const int32_t* indices, const float* vals, const float* x, float* y, size_t r0,
              size_t r1);
}  // namespace q8_avx512

// The 4-bit lane layout read 64 bytes at a time: per 128 columns (two 64-column blocks), the low nibbles
// of the 64 code bytes are columns A[P] = 64·(P / 32) + 16·(P % 4) + (P % 32) / 4, the high nibbles
// A[P] + 8. lut4_order writes q in that order (64 "low" then 64 "high" per 128 columns); padded % 128 == 0.
void lut4_order(const int8_t* q, int64_t padded, int8_t* out);

}  // namespace sq::kernels
