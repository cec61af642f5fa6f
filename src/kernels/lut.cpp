#include "kernels/lut.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/q8.h"
#include "kernels/sparse.h"
#include "kernels/split_rows.h"

namespace sq::kernels {

namespace {

// Output rows per scheduling unit (the buffered kernel decodes 4 rows per tile).
constexpr size_t kRowQuantum = 4;

}  // namespace

bool lut_fast_supported(const LutView& v) { return v.lanes != nullptr; }

void lut_matmul(const LutView& v, const float* x, int64_t n, float* y, const ExecContext& ctx) {
  SQ_CHECK(n >= 0, "lut kernel: negative batch size ", n);
  if (n == 0 || v.rows == 0) return;
  const Isa isa = resolve_isa(ctx.isa);
  if (isa == Isa::kAvx512Vnni && lut_q8_supported(v)) return lut_matmul_q8(v, x, n, y, ctx);
  LutRowsFn fn = nullptr;
  if (isa != Isa::kScalar && lut_fast_supported(v)) {
    const LutKernelTable* t = lut_hwy_table(isa);
    SQ_CHECK(t != nullptr, "lut kernel: ISA ", isa_name(isa), " was not compiled into this build");
    fn = t->rows[v.bits - 2];
  }
  const size_t work_per_row = size_t(v.cols) * size_t(n);
  if (fn == nullptr) {  // the scalar reference (dense and sparse part together)
    split_rows(size_t(v.rows), kRowQuantum, work_per_row, ctx.pool, [&](size_t r0, size_t r1) {
      lut_matmul_ref(v, x, n, y, int64_t(r0), int64_t(r1));
    });
    return;
  }
  split_rows(size_t(v.rows), kRowQuantum, work_per_row, ctx.pool,
             [&](size_t r0, size_t r1) { fn(v, x, size_t(n), y, r0, r1); });
  if (v.nnz > 0) csr_add_matmul(v.rows, v.cols, v.indptr, v.indices, v.deltas, x, n, y, ctx.pool);
}

}  // namespace sq::kernels
