#include "kernels/int4.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "kernels/q8.h"
#include "kernels/scratch.h"
#include "kernels/split_rows.h"

namespace sq::kernels {

namespace {

constexpr size_t kRowQuantum = 4;  // rows per tile of the int4 kernels

}  // namespace

bool int4_fast_supported(const Int4Packed& w) {
  if (!w.lanes.empty()) return true;
  if (w.n_groups < 1 || int64_t(w.group_begin.size()) != w.n_groups + 1) return false;
  for (int64_t g = 1; g < w.n_groups; g++)
    if (w.group_begin[size_t(g)] % 16 != 0) return false;
  return true;
}

void int4_matmul(const Int4Packed& w, const float* x, int64_t n, float* y, const ExecContext& ctx) {
  SQ_CHECK(n >= 0, "int4 kernel: negative batch size ", n);
  if (n == 0 || w.rows == 0) return;
  const Isa isa = resolve_isa(ctx.isa);
  if (isa == Isa::kAvx512Vnni && int4_q8_supported(w)) return int4_matmul_q8(w, x, n, y, ctx);
  const size_t rows = size_t(w.rows), cols = size_t(w.cols), N = size_t(n);
  const size_t work_per_row = cols * N;
  const Int4KernelTable* table = nullptr;
  if (isa != Isa::kScalar && int4_fast_supported(w)) {
    table = int4_hwy_table(isa);
    SQ_CHECK(table != nullptr, "int4 kernel: ISA ", isa_name(isa), " was not compiled into this build");
  }
  const Int4RowsFn fn = table == nullptr ? nullptr : w.lanes.empty() ? table->blocks : table->lanes;
  if (fn == nullptr) {  // the scalar reference, on X in stored order
    const float* xp = x;
    if (!w.perm.empty()) {
      float* buf = thread_buffer<struct Int4RefX, float>(N * cols);
      for (size_t t = 0; t < N; t++)
        for (size_t k = 0; k < cols; k++) buf[t * cols + k] = x[t * cols + size_t(w.perm[k])];
      xp = buf;
    }
    split_rows(rows, kRowQuantum, work_per_row, ctx.pool, [&](size_t r0, size_t r1) {
      int4_matmul_rows_ref(w, xp, n, y, int64_t(r0), int64_t(r1));
    });
    return;
  }
  // X in the order the kernel reads codes, act-order permutation folded in, zero padding past cols:
  //   lanes:  stored order, padded to whole 64-column blocks;
  //   blocks: per 16 stored positions the 8 even then the 8 odd (matching the low / high nibbles of 8
  //           code bytes), padded to a multiple of 16.
  // Plus Σ x per (row of X, group) for the zero-point term.
  const bool lanes = !w.lanes.empty();
  const size_t G = size_t(w.n_groups), ld = lanes ? (cols + 63) / 64 * 64 : (cols + 15) / 16 * 16;
  float* xq = thread_buffer<struct Int4X, float>(N * ld);
  float* xsum = thread_buffer<struct Int4XSum, float>(N * G);
  std::fill(xq, xq + N * ld, 0.0f);
  for (size_t t = 0; t < N; t++) {
    const float* xt = x + t * cols;
    float* q = xq + t * ld;
    for (size_t k = 0; k < cols; k++) {
      const size_t src = w.perm.empty() ? k : size_t(w.perm[k]);
      q[lanes ? k : (k & ~size_t(15)) + ((k & 1) << 3) + ((k & 15) >> 1)] = xt[src];
    }
    for (size_t g = 0; g < G; g++) {
      float s = 0;
      for (int32_t k = w.group_begin[g]; k < w.group_begin[g + 1]; k++)
        s += xt[w.perm.empty() ? size_t(k) : size_t(w.perm[size_t(k)])];
      xsum[t * G + g] = s;
    }
  }
  split_rows(rows, kRowQuantum, work_per_row, ctx.pool,
             [&](size_t r0, size_t r1) { fn(w, xq, ld, xsum, N, y, r0, r1); });
}

}  // namespace sq::kernels
