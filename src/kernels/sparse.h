// The CSR sparse part of a lookup-table weight (formats/lut.h): Y[t, r] += Σ_j vals[j] · X[t, indices[j]]
// for j in [indptr[r], indptr[r+1]). Work is proportional to non-zeros, which are far from uniform over
// rows (outliers cluster in a few rows), so threads get row chunks of ≈ equal non-zeros, not equal rows
// (kernels/split_rows.h).
// Few activation rows (n < 8): per row and activation row a gather (x[indices[j]]), plain C++ with
// independent accumulators (SIMD gathers do not beat it on AVX2). Many (prompt processing): X is
// transposed in blocks of 64 activation rows, and each non-zero adds v · X^T[c, block] to the row's 64
// accumulators, a contiguous vector loop. The int8 decode path (kernels/q8.h) adds the sparse rows
// inside its own row chunks instead (chunks sized by dense work + non-zeros; AVX-512 gathers there).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/threadpool.h"

namespace sq::kernels {

// Rows [r0, r1) only, on the calling thread: the gather loop (csr_add_matmul's path for n < 8, and the
// reference its other path is tested against).
void csr_add_rows(int64_t rows, int64_t cols, const int32_t* indptr, const int32_t* indices, const float* vals,
                  const float* x, int64_t n, float* y, int64_t r0, int64_t r1);

// Y[n, rows] += CSR · Xᵀ (X [n, cols], row-major). A null pool runs on the calling thread.
void csr_add_matmul(int64_t rows, int64_t cols, const int32_t* indptr, const int32_t* indices, const float* vals,
                    const float* x, int64_t n, float* y, ThreadPool* pool);

}  // namespace sq::kernels
