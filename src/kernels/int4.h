// Fast kernels for GPTQ int4 group weights (formats/int4_group.h, engine layout Int4Packed: row-major
// nibbles in "stored" column order, f32 scales and zero points per (row, group), optional act-order
// permutation). Y[n, rows] = X[n, cols] · Wᵀ, f32 accumulation.
//
// int4_matmul picks the implementation from ctx.isa (kScalar: int4_matmul_rows_ref; kAvx2 / kAvx512:
// the Highway kernels in lut_hwy.cpp) and splits output rows over ctx.pool.
// X is first copied once per call into "block order" (xq): per 16 stored columns, the 8 even ones then
// the 8 odd ones, with the act-order permutation folded in and zero padding to a multiple of 16. Then
// 8 code bytes -> vpmovzxbd -> (& 15, >> 4) are the even and odd codes, each a full vector matching xq
// without any shuffle. Per group the kernel sums Σ code·x in vectors and applies
//   y += scale · (Σ code·x − zero · Σ x)       (Σ x per group precomputed with xq)
// so the inner loop is load, zero-extend, and/shift, convert, FMA: ~7 vector ops per 16 weights.
//   n == 1: rows stream past once. n >= 2: a 4 × 1024 tile of (code − zero)·scale is decoded once into
//   L1 and used for all n rows of X.
// When every group starts on a 64-column block (group sizes that are multiples of 64), Int4Linear keeps
// the codes in the lane layout instead (Int4Packed::lanes) and the kernels read 8 codes per vector
// with one shift: on AVX-512 a 16-entry table of (q − zero)·scale per group and one vpermt2ps per 8
// weights, on AVX2 and/convert/FMA as above. Otherwise the fast path needs every group to start at a
// multiple of 16 stored columns (true for group sizes that are multiples of 16, with or without
// act-order); other layouts run the reference. At Isa::kAvx512Vnni, decode (n == 1) of lane layouts
// whose group starts are multiples of 128 runs the int8-activation kernel of kernels/q8.h.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/context.h"
#include "formats/int4_group.h"

namespace sq::kernels {

// True when the Highway kernels take this layout (interior group starts are multiples of 16).
bool int4_fast_supported(const Int4Packed& w);

// Y[n, rows] = X[n, cols] · Wᵀ, X in original column order. Y is overwritten.
void int4_matmul(const Int4Packed& w, const float* x, int64_t n, float* y, const ExecContext& ctx);

// --- internal ---------------------------------------------------------------------------------------
// xq [n, cols16] in block order, xsum [n, n_groups]; output rows [r0, r1); writes y[t*rows + r].
using Int4RowsFn = void (*)(const Int4Packed& w, const float* xq, size_t cols16, const float* xsum, size_t n,
                            float* y, size_t r0, size_t r1);
// blocks: codes in Int4Packed::codes, xq in block order [n, cols16].
// lanes: codes in Int4Packed::lanes, xq in stored order [n, ldx] zero-padded to whole 64-column blocks.
struct Int4KernelTable {
  Int4RowsFn blocks = nullptr, lanes = nullptr;
};
const Int4KernelTable* int4_hwy_table(Isa isa);  // null when `isa` was not compiled

}  // namespace sq::kernels
