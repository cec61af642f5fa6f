// Fast kernels for the lookup-table weight format (formats/lut.h: SqueezeLLM / RTN tables, codes as one
// LSB-first bit stream, optional CSR sparse part). Y[n, rows] = X[n, cols] · Wᵀ, f32 accumulation.
//
// lut_matmul picks the implementation from ctx.isa (kScalar: formats/lut.h's lut_matmul_ref; kAvx2 /
// kAvx512: the Highway kernels of lut_hwy.cpp) and splits the output rows over ctx.pool. The fast
// kernels read the lane-interleaved codes LutLinear repacks at load (formats/lut.h; same size as the
// on-disk stream when cols is a multiple of the 64/128/512-column block): per 8 weights one right
// shift of a vector of 8 code words and one table lookup, then the FMA. The per-row table is one
// register (3-bit: 8 f32 entries, vpermps reads index bits 0..2; 2-bit: 4 entries replicated to 8),
// or two for 4-bit (vpermt2ps on AVX-512, two vpermps and a blend on code bit 3 on AVX2).
//   n == 1 (decode): each row streams past once, 8 accumulators.
//   n >= 2: a tile of 4 rows × 1024 columns is decoded once into an L1 f32 buffer and used for all n
//           rows of X (kernels/tile_hwy-inl.h, shared with the dense and int4 kernels).
// At Isa::kAvx512Vnni, decode (n == 1) of 3- and 4-bit tables runs the int8-activation kernels of
// kernels/q8.h instead (same lane layout, int8 copies of the tables).
// The sparse part is added afterwards by kernels/sparse.h, split over threads by non-zeros.
// Fast paths cover bits 2, 3, 4 with one table per row (group_size == cols); everything else (group
// tables, 5..8 bits) keeps the on-disk stream and runs the scalar reference, threaded.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/context.h"
#include "formats/lut.h"

namespace sq::kernels {

// True when a Highway kernel exists for this layout: the lane-interleaved codes (formats/lut.h).
bool lut_fast_supported(const LutView& v);

// Y[n, rows] = X[n, cols] · Wᵀ (dense + sparse part). Y is overwritten; X, Y must not overlap.
// Throws sq::Error for an ISA this CPU lacks. A null ctx.pool runs on the calling thread.
void lut_matmul(const LutView& v, const float* x, int64_t n, float* y, const ExecContext& ctx);

// --- internal: per-ISA kernels filled by lut_hwy.cpp ----------------------------------------------
// Dense part only, output rows [r0, r1), all n rows of X; writes y[t*rows + r].
using LutRowsFn = void (*)(const LutView& v, const float* x, size_t n, float* y, size_t r0, size_t r1);
struct LutKernelTable {
  LutRowsFn rows[3] = {nullptr, nullptr, nullptr};  // bits 2, 3, 4
};
const LutKernelTable* lut_hwy_table(Isa isa);  // null when `isa` was not compiled

}  // namespace sq::kernels
