#include "kernels/sparse.h"

#include <algorithm>

#include "kernels/scratch.h"
#include "kernels/split_rows.h"

namespace sq::kernels {

// Rows [r0, r1): y[t*rows + r] += Σ_j vals[j] · x[t*cols + indices[j]].
void csr_add_rows(int64_t rows, int64_t cols, const int32_t* indptr, const int32_t* indices, const float* vals,
                  const float* x, int64_t n, float* y, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r++) {
    const int32_t j0 = indptr[r], j1 = indptr[r + 1];
    if (j0 == j1) continue;
    for (int64_t t = 0; t < n; t++) {
      const float* xt = x + t * cols;
      float a0 = 0, a1 = 0, a2 = 0, a3 = 0;  // independent chains: the loads, not the adds, bound this
      int32_t j = j0;
      for (; j + 4 <= j1; j += 4) {
        a0 += vals[j] * xt[indices[j]];
        a1 += vals[j + 1] * xt[indices[j + 1]];
        a2 += vals[j + 2] * xt[indices[j + 2]];
        a3 += vals[j + 3] * xt[indices[j + 3]];
      }
      for (; j < j1; j++) a0 += vals[j] * xt[indices[j]];
      y[t * rows + r] += (a0 + a1) + (a2 + a3);
    }
  }
}

namespace {

// Activation rows per block of the many-row path (below): X^T for a block of TB rows is cols × TB floats
// (1 MiB at 4096 columns and TB = 64, L2-sized), and a row's accumulators are TB floats. TB = 16 for
// batched decode (8 .. 32 rows): with 64, a batch of 8 computed, transposed and zero-filled 8× the rows
// it has (LLaMA-7B 11008 x 4096 + 0.45% sparse, AVX2, 2 threads: the sparse part took 3 ms of 9.8).
constexpr int64_t kTB = 64, kTBSmall = 16;

// Rows [r0, r1) for activation rows [t0, t0 + tb): xt is X^T of that block ([cols, TB], row c = column c
// of the tb activation rows, zero past tb). Per non-zero one contiguous multiply-add of TB floats
// (a fixed trip count: one vector loop), in place of tb scalar gathers from X.
template <int64_t TB>
void csr_rows_block(int64_t rows, const int32_t* indptr, const int32_t* indices, const float* vals,
                    const float* __restrict xt, int64_t tb, int64_t t0, float* y, int64_t r0, int64_t r1) {
  alignas(64) float acc[TB];
  for (int64_t r = r0; r < r1; r++) {
    const int32_t j0 = indptr[r], j1 = indptr[r + 1];
    if (j0 == j1) continue;
    std::fill(acc, acc + TB, 0.0f);
    for (int32_t j = j0; j < j1; j++) {
      const float v = vals[j];
      const float* __restrict xc = xt + int64_t(indices[j]) * TB;
      for (int64_t t = 0; t < TB; t++) acc[t] += v * xc[t];
    }
    for (int64_t t = 0; t < tb; t++) y[(t0 + t) * rows + r] += acc[t];
  }
}

template <int64_t TB, class OverRows>
void csr_add_blocks(int64_t rows, int64_t cols, const int32_t* indptr, const int32_t* indices, const float* vals,
                    const float* x, int64_t n, float* y, ThreadPool* pool, const OverRows& over_rows) {
  float* xt = thread_buffer<struct CsrXt, float>(size_t(cols * kTB));
  for (int64_t t0 = 0; t0 < n; t0 += TB) {
    const int64_t tb = std::min(TB, n - t0);
    if (tb < TB) std::fill(xt, xt + cols * TB, 0.0f);  // the last, partial block: zero columns past tb
    // The transpose, in column ranges over the pool too (a copy of tb x cols floats).
    split_rows(size_t(cols), 16, size_t(tb), pool, [&](size_t c0, size_t c1) {
      for (int64_t t = 0; t < tb; t++)
        for (size_t c = c0; c < c1; c++) xt[c * TB + size_t(t)] = x[(t0 + t) * cols + int64_t(c)];
    });
    over_rows(TB, [&](int64_t r0, int64_t r1) { csr_rows_block<TB>(rows, indptr, indices, vals, xt, tb, t0, y, r0, r1); });
  }
}

}  // namespace

void csr_add_matmul(int64_t rows, int64_t cols, const int32_t* indptr, const int32_t* indices, const float* vals,
                    const float* x, int64_t n, float* y, ThreadPool* pool) {
  if (rows <= 0 || n <= 0 || indptr[rows] == 0) return;
  // Rows in guided chunks of about equal work (kernels/split_rows.h): non-zeros × activation rows, at
  // kSparseWork dense-weight equivalents per product, however the non-zeros cluster in rows.
  auto over_rows = [&](int64_t n_act, const auto& fn) {
    split_rows_by_work(
        size_t(rows), 1, [&](size_t r) { return size_t(indptr[r]) * size_t(n_act) * kSparseWork; }, pool,
        [&](size_t r0, size_t r1) { fn(int64_t(r0), int64_t(r1)); });
  };
  if (n < 8) {  // decode and small batches: per row and activation row, a gather from X
    over_rows(n, [&](int64_t r0, int64_t r1) { csr_add_rows(rows, cols, indptr, indices, vals, x, n, y, r0, r1); });
    return;
  }
  // Prompt processing and larger batches: X^T block by block, so each non-zero reads a contiguous run
  // of activations. (The per-row gathers took ~20% of a 512-token prompt of 3-bit + 0.45% sparse on
  // LLaMA-7B shapes.)
  if (n <= 2 * kTBSmall)
    csr_add_blocks<kTBSmall>(rows, cols, indptr, indices, vals, x, n, y, pool, over_rows);
  else
    csr_add_blocks<kTB>(rows, cols, indptr, indices, vals, x, n, y, pool, over_rows);
}

}  // namespace sq::kernels
