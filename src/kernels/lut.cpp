#include "kernels/lut.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/sparse.h"

namespace sq::kernels {

namespace {

// Output rows per scheduling unit (the buffered kernel decodes 4 rows per tile).
constexpr size_t kRowQuantum = 4;
// Below this many weight × X-row products per chunk, a hand-off to another thread costs more than it
// saves (a wake-up is ~1 µs; 64 Ki products take several µs).
constexpr size_t kMinWorkPerChunk = size_t(64) << 10;

// Calls fn(r0, r1) over [0, rows) in chunks of whole quanta, on the pool when it is worth it.
template <class Fn>
void split_rows(size_t rows, size_t work_per_row, ThreadPool* pool, const Fn& fn) {
  const size_t n_quanta = (rows + kRowQuantum - 1) / kRowQuantum;
  const size_t grain = std::max<size_t>(1, kMinWorkPerChunk / (std::max<size_t>(1, work_per_row) * kRowQuantum));
  if (pool == nullptr || pool->size() == 1 || n_quanta <= grain) {
    fn(size_t(0), rows);
    return;
  }
  pool->parallel_for(n_quanta, grain, [&](size_t b, size_t e, int) {
    fn(b * kRowQuantum, std::min(rows, e * kRowQuantum));
  });
}

}  // namespace

bool lut_fast_supported(const LutView& v) { return v.bits >= 2 && v.bits <= 4 && v.group_size == v.cols; }

void lut_matmul(const LutView& v, const float* x, int64_t n, float* y, const ExecContext& ctx) {
  SQ_CHECK(n >= 0, "lut kernel: negative batch size ", n);
  if (n == 0 || v.rows == 0) return;
  const Isa isa = resolve_isa(ctx.isa);
  LutRowsFn fn = nullptr;
  if (isa != Isa::kScalar && lut_fast_supported(v)) {
    const LutKernelTable* t = lut_hwy_table(isa);
    SQ_CHECK(t != nullptr, "lut kernel: ISA ", isa_name(isa), " was not compiled into this build");
    fn = t->rows[v.bits - 2];
  }
  const size_t work_per_row = size_t(v.cols) * size_t(n);
  if (fn == nullptr) {  // the scalar reference (dense and sparse part together)
    split_rows(size_t(v.rows), work_per_row, ctx.pool, [&](size_t r0, size_t r1) {
      lut_matmul_ref(v, x, n, y, int64_t(r0), int64_t(r1));
    });
    return;
  }
  split_rows(size_t(v.rows), work_per_row, ctx.pool,
             [&](size_t r0, size_t r1) { fn(v, x, size_t(n), y, r0, r1); });
  if (v.nnz > 0) csr_add_matmul(v.rows, v.cols, v.indptr, v.indices, v.deltas, x, n, y, ctx.pool);
}

}  // namespace sq::kernels
