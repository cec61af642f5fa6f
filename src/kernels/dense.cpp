#include "kernels/dense.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/split_rows.h"

namespace sq::kernels {

namespace {

inline float elem_f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}
inline float elem_f16(const uint8_t* p) {
  uint16_t b;
  std::memcpy(&b, p, 2);
  return f16_to_f32(b);
}
inline float elem_bf16(const uint8_t* p) {
  uint16_t b;
  std::memcpy(&b, p, 2);
  return bf16_to_f32(b);
}

template <float (*Elem)(const uint8_t*), size_t kSize>
void rows_ref(const void* w, size_t cols, const float* x, size_t n, float* y, size_t ldy, size_t r0, size_t r1) {
  const auto* wb = static_cast<const uint8_t*>(w);
  for (size_t r = r0; r < r1; r++) {
    const uint8_t* row = wb + r * cols * kSize;
    for (size_t j = 0; j < n; j++) {
      const float* xj = x + j * cols;
      float s = 0.0f;
      for (size_t k = 0; k < cols; k++) s += Elem(row + k * kSize) * xj[k];
      y[j * ldy + r] = s;
    }
  }
}

// Output rows per scheduling unit: the SIMD kernels work on 8 (matvec) or 4 rows at a time.
constexpr size_t kRowQuantum = 8;

}  // namespace

bool dense_dtype_supported(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

void dense_rows_ref(DType wt, const void* w, size_t cols, const float* x, size_t n, float* y, size_t ldy,
                    size_t r0, size_t r1) {
  switch (wt) {
    case DType::F32: return rows_ref<elem_f32, 4>(w, cols, x, n, y, ldy, r0, r1);
    case DType::F16: return rows_ref<elem_f16, 2>(w, cols, x, n, y, ldy, r0, r1);
    case DType::BF16: return rows_ref<elem_bf16, 2>(w, cols, x, n, y, ldy, r0, r1);
    default: fail("dense kernel: unsupported weight dtype ", dtype_name(wt));
  }
}

void dense_matmul(DType wt, const void* w, int64_t rows, int64_t cols, const float* x, int64_t n, float* y,
                  const ExecContext& ctx) {
  SQ_CHECK(dense_dtype_supported(wt), "dense kernel: unsupported weight dtype ", dtype_name(wt));
  SQ_CHECK(rows >= 0 && cols >= 0 && n >= 0, "dense kernel: negative size (rows ", rows, ", cols ", cols,
           ", n ", n, ")");
  if (rows == 0 || n == 0) return;
  if (cols == 0) {  // empty sums
    std::fill(y, y + size_t(n) * size_t(rows), 0.0f);
    return;
  }
  const Isa isa = resolve_isa(ctx.isa);

  // Pick the row function: a Highway target's, or the reference bound to the dtype.
  DenseRowsFn fn = nullptr;
  if (isa != Isa::kScalar) {
    const DenseKernelTable* t = dense_hwy_table(isa);
    SQ_CHECK(t != nullptr, "dense kernel: ISA ", isa_name(isa), " was not compiled into this build");
    fn = wt == DType::F32 ? t->f32 : wt == DType::F16 ? t->f16 : t->bf16;
  }
  auto run_rows = [&](size_t r0, size_t r1) {
    if (fn)
      fn(w, size_t(cols), x, size_t(n), y, size_t(rows), r0, r1);
    else
      dense_rows_ref(wt, w, size_t(cols), x, size_t(n), y, size_t(rows), r0, r1);
  };

  split_rows(size_t(rows), kRowQuantum, size_t(cols) * size_t(n), ctx.pool, run_rows);
}

}  // namespace sq::kernels
