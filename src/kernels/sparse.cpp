#include "kernels/sparse.h"

#include <algorithm>

namespace sq::kernels {

std::vector<int64_t> split_rows_by_nnz(const int32_t* indptr, int64_t rows, int parts) {
  parts = std::max(1, parts);
  std::vector<int64_t> b(size_t(parts) + 1, rows);
  b[0] = 0;
  const int64_t nnz = indptr[rows];
  for (int i = 1; i < parts; i++) {
    // First row whose cumulative nnz reaches i/parts of the total: rows before it go to earlier parts.
    const int64_t target = nnz * i / parts;
    const int32_t* p = std::lower_bound(indptr, indptr + rows + 1, target);
    b[size_t(i)] = std::max(b[size_t(i) - 1], int64_t(p - indptr));
  }
  for (int i = 1; i < parts; i++) b[size_t(i)] = std::min(b[size_t(i)], rows);
  return b;
}

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

// Below this many non-zero × X-row products a second thread costs more than it saves.
constexpr int64_t kMinWorkPerThread = 16384;

// Activation rows per block of the many-row path (below): X^T for a block of kTB rows is cols × kTB
// floats (1 MiB at 4096 columns, L2-sized), and a row's accumulators are kTB floats (4 vectors of 16).
constexpr int64_t kTB = 64;

// Rows [r0, r1) for activation rows [t0, t0 + tb): xt is X^T of that block ([cols, kTB], row c = column c
// of the tb activation rows, zero past tb). Per non-zero one contiguous multiply-add of kTB floats
// (a fixed trip count: one vector loop), in place of tb scalar gathers from X.
void csr_rows_block(int64_t rows, const int32_t* indptr, const int32_t* indices, const float* vals,
                    const float* __restrict xt, int64_t tb, int64_t t0, float* y, int64_t r0, int64_t r1) {
  alignas(64) float acc[kTB];
  for (int64_t r = r0; r < r1; r++) {
    const int32_t j0 = indptr[r], j1 = indptr[r + 1];
    if (j0 == j1) continue;
    std::fill(acc, acc + kTB, 0.0f);
    for (int32_t j = j0; j < j1; j++) {
      const float v = vals[j];
      const float* __restrict xc = xt + int64_t(indices[j]) * kTB;
      for (int64_t t = 0; t < kTB; t++) acc[t] += v * xc[t];
    }
    for (int64_t t = 0; t < tb; t++) y[(t0 + t) * rows + r] += acc[t];
  }
}

}  // namespace

void csr_add_matmul(int64_t rows, int64_t cols, const int32_t* indptr, const int32_t* indices, const float* vals,
                    const float* x, int64_t n, float* y, ThreadPool* pool) {
  if (rows <= 0 || n <= 0 || indptr[rows] == 0) return;
  const int64_t work = int64_t(indptr[rows]) * n;
  const int threads = pool ? pool->size() : 1;
  const int parts = int(std::min<int64_t>(threads, std::max<int64_t>(1, work / kMinWorkPerThread)));
  const std::vector<int64_t> b = split_rows_by_nnz(indptr, rows, parts);
  auto over_parts = [&](const auto& body) {
    if (parts <= 1) return body(size_t(0));
    pool->run(size_t(parts), [&](size_t i, int) { body(i); });
  };
  if (n < 8) {  // decode and small batches: per row and activation row, a gather from X
    over_parts([&](size_t i) { csr_add_rows(rows, cols, indptr, indices, vals, x, n, y, b[i], b[i + 1]); });
    return;
  }
  // Prompt processing: X^T block by block, so each non-zero reads a contiguous run of activations.
  // (The per-row gathers took ~20% of a 512-token prompt of 3-bit + 0.45% sparse on LLaMA-7B shapes.)
  std::vector<float> xt(size_t(cols * kTB));
  for (int64_t t0 = 0; t0 < n; t0 += kTB) {
    const int64_t tb = std::min(kTB, n - t0);
    if (tb < kTB) std::fill(xt.begin(), xt.end(), 0.0f);  // the last, partial block: zero columns past tb
    for (int64_t t = 0; t < tb; t++)
      for (int64_t c = 0; c < cols; c++) xt[size_t(c * kTB + t)] = x[(t0 + t) * cols + c];
    over_parts([&](size_t i) { csr_rows_block(rows, indptr, indices, vals, xt.data(), tb, t0, y, b[i], b[i + 1]); });
  }
}

}  // namespace sq::kernels
