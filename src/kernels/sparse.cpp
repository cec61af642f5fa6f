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

}  // namespace

void csr_add_matmul(int64_t rows, int64_t cols, const int32_t* indptr, const int32_t* indices, const float* vals,
                    const float* x, int64_t n, float* y, ThreadPool* pool) {
  if (rows <= 0 || n <= 0 || indptr[rows] == 0) return;
  const int64_t work = int64_t(indptr[rows]) * n;
  const int threads = pool ? pool->size() : 1;
  const int parts = int(std::min<int64_t>(threads, std::max<int64_t>(1, work / kMinWorkPerThread)));
  if (parts <= 1) {
    csr_add_rows(rows, cols, indptr, indices, vals, x, n, y, 0, rows);
    return;
  }
  const std::vector<int64_t> b = split_rows_by_nnz(indptr, rows, parts);
  pool->run(size_t(parts), [&](size_t i, int) {
    csr_add_rows(rows, cols, indptr, indices, vals, x, n, y, b[i], b[i + 1]);
  });
}

}  // namespace sq::kernels
