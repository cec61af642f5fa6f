// Dense-weight kernels: Y[n, rows] = X[n, cols] · Wᵀ with W[rows, cols] row-major in F32, F16 or BF16
// (the layout of nn.Linear.weight in a safetensors file, used in place from the mapped file), X and Y
// row-major f32, f32 accumulation.
//
// One entry point, dense_matmul, picks the implementation from ctx.isa (kScalar: the plain C++
// reference below; kAvx2 / kAvx512: the Highway kernels of dense_hwy.cpp compiled for that target;
// kBest: the best the CPU has) and splits the output rows over ctx.pool.
//   n <= 3 (decode): each weight row is converted to f32 in registers as it streams past and used for
//                    all n rows of X; 8 (n = 1) or 4 rows from as many long sequential streams, one
//                    accumulator per row and row of X. Memory bound: runs near the read bandwidth.
//   n >= 4 (prompt): a tile of 4 weight rows × 1024 columns is converted once into an L1 buffer and
//                    used for every row of X (a 4×3 register-blocked micro-kernel). Compute bound.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/context.h"
#include "core/dtype.h"

namespace sq::kernels {

// True for the weight dtypes the dense kernels take (F32, F16, BF16).
bool dense_dtype_supported(DType t);

// Y[n, rows] = X[n, cols] · Wᵀ. `w` needs no alignment. Y is overwritten; X and Y must not overlap.
// Throws sq::Error for an unsupported dtype or an ISA this CPU lacks. A null ctx.pool runs on the
// calling thread.
void dense_matmul(DType wt, const void* w, int64_t rows, int64_t cols, const float* x, int64_t n, float* y,
                  const ExecContext& ctx);

// The scalar reference for output rows [r0, r1) of Y (row stride ldy), all n rows of X (row stride
// cols): y[j*ldy + r] = Σ_k f32(w[r*cols + k]) * x[j*cols + k], summed in order k = 0, 1, ... in f32.
void dense_rows_ref(DType wt, const void* w, size_t cols, const float* x, size_t n, float* y, size_t ldy,
                    size_t r0, size_t r1);

// --- internal: the per-ISA tables filled by dense_hwy.cpp ----------------------------------------
// Same contract as dense_rows_ref, for one weight dtype.
using DenseRowsFn = void (*)(const void* w, size_t cols, const float* x, size_t n, float* y, size_t ldy,
                             size_t r0, size_t r1);
struct DenseKernelTable {
  DenseRowsFn f32 = nullptr, f16 = nullptr, bf16 = nullptr;
};
// The table compiled for `isa` (kAvx2 or kAvx512); null when that target was not compiled.
// The caller must have checked that the CPU supports it.
const DenseKernelTable* dense_hwy_table(Isa isa);

}  // namespace sq::kernels
