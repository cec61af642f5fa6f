#include "kernels/q8.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/sparse.h"
#include "kernels/scratch.h"
#include "kernels/split_rows.h"

namespace sq::kernels {

namespace {

constexpr size_t kRowQuantum = 4;

int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

// The ISA the int8 path runs for ctx: kScalar (reference) or kAvx512Vnni; others are an error.
Isa q8_isa(const ExecContext& ctx, const char* what) {
  const Isa isa = resolve_isa(ctx.isa);
  SQ_CHECK(isa == Isa::kScalar || isa == Isa::kAvx512Vnni, what, ": int8-activation kernels exist for scalar and ",
           "avx512vnni, not ", isa_name(isa));
  return isa;
}

// The calling thread's activation buffers, by reference: tasks on other threads must see the caller's
// (a lambda naming a thread_local directly would read its own thread's instance).
Q8Act& thread_act() {
  thread_local Q8Act a;
  return a;
}

}  // namespace

void q8_quantize_ref(const float* x, int64_t cols, int64_t block, Q8Act& a, int64_t min_padded) {
  SQ_CHECK(cols >= 1 && block >= 1, "q8_quantize: bad sizes cols = ", cols, ", block = ", block);
  a.cols = cols;
  a.block = block;
  a.padded = round_up(std::max(cols, min_padded), block);
  const int64_t nb = a.padded / block;
  a.q.assign(size_t(a.padded), 0);
  a.d.assign(size_t(nb), 0.0f);
  a.sum.assign(size_t(nb), 0);
  for (int64_t b = 0; b < nb; b++) {
    const int64_t c0 = b * block, c1 = std::min(cols, c0 + block);
    float amax = 0;
    for (int64_t c = c0; c < c1; c++) amax = std::max(amax, std::fabs(x[c]));
    if (amax == 0) continue;  // q = 0, d = 0
    const float inv = 127.0f / amax;
    a.d[size_t(b)] = amax / 127.0f;
    int32_t s = 0;
    for (int64_t c = c0; c < c1; c++) {
      const int32_t q = int32_t(std::nearbyint(x[c] * inv));  // |q| <= 127: |x·inv| <= 127 (+ rounding)
      a.q[size_t(c)] = int8_t(q);
      s += q;
    }
    a.sum[size_t(b)] = s;
  }
}

void lut_q8_tables(const uint16_t* lut, int64_t rows, int bits, int8_t* qlut, float* qscale) {
  const int L = 1 << bits;
  SQ_CHECK(L <= 16, "lut_q8_tables: ", bits, "-bit tables have more than 16 entries");
  for (int64_t r = 0; r < rows; r++) {
    float t[16] = {}, amax = 0;
    for (int k = 0; k < L; k++) {
      t[k] = f16_to_f32(lut[r * L + k]);
      amax = std::max(amax, std::fabs(t[k]));
    }
    const float inv = amax > 0 ? 127.0f / amax : 0.0f;
    for (int k = 0; k < 16; k++) qlut[r * 16 + k] = k < L ? int8_t(std::nearbyint(t[k] * inv)) : int8_t(0);
    qscale[r] = amax / 127.0f;
  }
}

bool lut_q8_supported(const LutView& v) {
  return v.has_q8() && (v.bits == 3 || v.bits == 4);
}

bool int4_q8_supported(const Int4Packed& w) {
  if (w.lanes.empty() || int64_t(w.group_begin.size()) != w.n_groups + 1) return false;
  for (int64_t g = 1; g < w.n_groups; g++)
    if (w.group_begin[size_t(g)] % kQ8Int4Block != 0) return false;
  return true;
}

void lut_matvec_q8_ref(const LutView& v, const Q8Act& a, float* y, int64_t r0, int64_t r1) {
  const int64_t nb = (v.cols + a.block - 1) / a.block;
  for (int64_t r = r0; r < r1; r++) {
    const uint32_t* row = v.lane_row(r);
    int8_t t[16];
    std::memcpy(t, v.q8_table(r), 16);
    float acc = 0;
    for (int64_t b = 0; b < nb; b++) {
      int32_t dot = 0;
      for (int64_t c = b * a.block; c < std::min(v.cols, (b + 1) * a.block); c++)
        dot += int32_t(t[lane_code(row, v.bits, c)]) * int32_t(a.q[size_t(c)]);
      acc += a.d[size_t(b)] * float(dot);
    }
    y[r] = acc * v.q8_scale(r);
  }
}

void int4_matvec_q8_ref(const Int4Packed& w, const Q8Act& a, float* y, int64_t r0, int64_t r1) {
  const int64_t G = w.n_groups;
  for (int64_t r = r0; r < r1; r++) {
    float acc = 0;
    for (int64_t g = 0; g < G; g++) {
      const float s = w.scale(r, g);
      const int32_t z = w.zero(r, g);
      const int64_t k0 = w.group_begin[size_t(g)], k1 = w.group_begin[size_t(g + 1)];
      for (int64_t b = k0 / a.block; b * a.block < k1; b++) {
        int32_t dot = -z * a.sum[size_t(b)];
        for (int64_t k = b * a.block; k < std::min(k1, (b + 1) * a.block); k++)
          dot += int32_t(w.code(r, k)) * int32_t(a.q[size_t(k)]);
        acc += (s * a.d[size_t(b)]) * float(dot);
      }
    }
    y[r] = acc;
  }
}

void lut4_order(const int8_t* q, int64_t padded, int8_t* out) {
  for (int64_t i = 0; i < padded; i += 128)
    for (int P = 0; P < 64; P++) {
      const int64_t col = i + 64 * (P / 32) + 16 * (P % 4) + (P % 32) / 4;
      out[i + P] = q[col];
      out[i + 64 + P] = q[col + 8];
    }
}

namespace {

// X [n, cols] quantized row by row into the calling thread's buffers: q [n, padded] (4-bit lanes and
// int4: each row in lut4_order), d and sum [n, padded / block]. The AVX-512 quantizer gives the
// reference's bits.
struct Q8Rows {
  const int8_t* q;
  const float* d;
  const int32_t* sum;
  size_t padded, nb;
};
Q8Rows quantize_rows(const float* x, int64_t n, int64_t cols, int64_t block, int64_t min_padded, bool order4) {
  const size_t padded = size_t(round_up(std::max(cols, min_padded), block)), nb = padded / size_t(block);
  int8_t* q = thread_buffer<struct Q8RowsQ, int8_t>(size_t(n) * padded);
  float* d = thread_buffer<struct Q8RowsD, float>(size_t(n) * nb);
  int32_t* sum = thread_buffer<struct Q8RowsSum, int32_t>(size_t(n) * nb);
  int8_t* tmp = order4 ? thread_buffer<struct Q8RowsTmp, int8_t>(padded) : nullptr;
  for (int64_t j = 0; j < n; j++) {
    int8_t* qj = q + size_t(j) * padded;
    q8_avx512::quantize(x + j * cols, cols, block, int64_t(padded), order4 ? tmp : qj, d + size_t(j) * nb,
                        sum + size_t(j) * nb);
    if (order4) lut4_order(tmp, int64_t(padded), qj);
  }
  return {q, d, sum, padded, nb};
}

// The rows of a in the multi-row kernels' group layout (q8.h, "activation groups"); t = lut_scale · Σq
// (−128 for lookup tables, 1 for int4).
struct Q8Groups {
  const int8_t* q;
  const float* d;
  const int32_t* t;
};
Q8Groups group_rows(const Q8Rows& a, size_t n, size_t group, size_t block, int32_t t_scale) {
  int8_t* q = thread_buffer<struct Q8GroupsQ, int8_t>(n * a.padded);
  float* d = thread_buffer<struct Q8GroupsD, float>(n * a.nb);
  int32_t* t = thread_buffer<struct Q8GroupsT, int32_t>(n * a.nb);
  for (size_t j0 = 0; j0 < n; j0 += group) {
    const size_t c = std::min(group, n - j0);
    for (size_t b = 0; b < a.nb; b++)
      for (size_t j = 0; j < c; j++) {
        const size_t src = (j0 + j) * a.nb + b, dst = j0 * a.nb + b * c + j;
        std::memcpy(q + dst * block, a.q + (j0 + j) * a.padded + b * block, block);
        d[dst] = a.d[src];
        t[dst] = t_scale * a.sum[src];
      }
  }
  return {q, d, t};
}

}  // namespace

void lut_matmul_q8(const LutView& v, const float* x, int64_t n, float* y, const ExecContext& ctx) {
  SQ_CHECK(lut_q8_supported(v), "lut int8 kernel: needs 3- or 4-bit codes in the lane layout with int8 tables");
  SQ_CHECK(n >= 0, "lut int8 kernel: negative batch size ", n);
  const Isa isa = q8_isa(ctx, "lut int8 kernel");
  if (n == 0 || v.rows == 0) return;
  const size_t rows = size_t(v.rows), cols = size_t(v.cols), N = size_t(n);
  // Padded to whole lane blocks (pairs of them for 4-bit), so the fast kernels read whole blocks of
  // activations (zeros past cols).
  const int64_t min_padded = round_up(v.cols, lane_block_cols(v.bits) * (v.bits == 4 ? 2 : 1));
  // Work per row: the dense part's cols weights plus the row's non-zeros at kSparseWork weights each (a
  // non-zero reads 8 bytes and gathers one activation, against 3/8 or 1/2 byte per dense weight), so
  // chunks carry equal work however the non-zeros cluster in rows.
  const int32_t* indptr = v.nnz > 0 ? v.indptr : nullptr;
  auto cum_work = [&](size_t r) { return N * (r * cols + (indptr ? size_t(indptr[r]) * kSparseWork : 0)); };
  if (isa == Isa::kScalar) {  // the reference, one row of X at a time
    for (size_t j = 0; j < N; j++) {
      Q8Act& a = thread_act();  // grow-only storage (kernels/scratch.h)
      q8_quantize_ref(x + j * cols, v.cols, kQ8LutBlock, a, min_padded);
      float* yj = y + j * rows;
      split_rows_by_work(rows, kRowQuantum, cum_work, ctx.pool, [&](size_t r0, size_t r1) {
        lut_matvec_q8_ref(v, a, yj, int64_t(r0), int64_t(r1));
        if (indptr)
          csr_add_rows(v.rows, v.cols, indptr, v.indices, v.deltas, x + j * cols, 1, yj, int64_t(r0), int64_t(r1));
      });
    }
    return;
  }
  const Q8Rows a = quantize_rows(x, n, v.cols, kQ8LutBlock, min_padded, v.bits == 4);
  if (N == 1) {
    const auto fn = v.bits == 3 ? &q8_avx512::lut3_rows : &q8_avx512::lut4_rows;
    split_rows_by_work(rows, kRowQuantum, cum_work, ctx.pool, [&](size_t r0, size_t r1) {
      fn(v, a.q, a.d, a.sum, y, r0, r1);
      if (indptr) q8_avx512::csr_rows(indptr, v.indices, v.deltas, x, y, r0, r1);
    });
    return;
  }
  const size_t group = q8_group_rows(a.padded);
  const Q8Groups g = group_rows(a, N, group, size_t(kQ8LutBlock), -128);
  // The sparse part inside the same row chunks, each activation row as n = 1 adds it: every row of X
  // gets the matvec's bits whatever else is in the batch.
  split_rows_by_work(rows, kRowQuantum, cum_work, ctx.pool, [&](size_t r0, size_t r1) {
    q8_avx512::lut_rows_n(v, N, group, g.q, g.d, g.t, a.nb, y, rows, r0, r1);
    if (indptr)
      for (size_t j = 0; j < N; j++) q8_avx512::csr_rows(indptr, v.indices, v.deltas, x + j * cols, y + j * rows, r0, r1);
  });
}

void int4_matmul_q8(const Int4Packed& w, const float* x, int64_t n, float* y, const ExecContext& ctx) {
  SQ_CHECK(int4_q8_supported(w), "int4 int8 kernel: needs the lane layout with group starts on ", kQ8Int4Block,
           "-column blocks");
  SQ_CHECK(n >= 0, "int4 int8 kernel: negative batch size ", n);
  const Isa isa = q8_isa(ctx, "int4 int8 kernel");
  if (n == 0 || w.rows == 0) return;
  const size_t rows = size_t(w.rows), cols = size_t(w.cols), N = size_t(n);
  const float* xp = x;  // X in stored order (act-order permutation folded in)
  if (!w.perm.empty()) {
    float* xs = thread_buffer<struct Int4Q8Perm, float>(N * cols);
    for (size_t j = 0; j < N; j++)
      for (size_t k = 0; k < cols; k++) xs[j * cols + k] = x[j * cols + size_t(w.perm[k])];
    xp = xs;
  }
  if (isa == Isa::kScalar) {
    for (size_t j = 0; j < N; j++) {
      Q8Act& a = thread_act();  // grow-only storage (kernels/scratch.h)
      q8_quantize_ref(xp + j * cols, w.cols, kQ8Int4Block, a, 0);
      float* yj = y + j * rows;
      split_rows(rows, kRowQuantum, cols, ctx.pool,
                 [&](size_t r0, size_t r1) { int4_matvec_q8_ref(w, a, yj, int64_t(r0), int64_t(r1)); });
    }
    return;
  }
  const Q8Rows a = quantize_rows(xp, n, w.cols, kQ8Int4Block, 0, true);
  int32_t* bg = thread_buffer<struct Int4Q8Groups, int32_t>(a.nb);  // block -> group (no block straddles two)
  for (int64_t g = 0; g < w.n_groups; g++)
    for (int64_t b = w.group_begin[size_t(g)] / kQ8Int4Block; b * kQ8Int4Block < w.group_begin[size_t(g + 1)]; b++)
      bg[size_t(b)] = int32_t(g);
  if (N == 1) {
    split_rows(rows, kRowQuantum, cols, ctx.pool,
               [&](size_t r0, size_t r1) { q8_avx512::int4_rows(w, a.q, a.d, a.sum, bg, y, r0, r1); });
    return;
  }
  const size_t group = q8_group_rows(a.padded);
  const Q8Groups g = group_rows(a, N, group, size_t(kQ8Int4Block), 1);
  split_rows(rows, kRowQuantum, cols * N, ctx.pool, [&](size_t r0, size_t r1) {
    q8_avx512::int4_rows_n(w, N, group, g.q, g.d, g.t, a.nb, bg, y, rows, r0, r1);
  });
}

}  // namespace sq::kernels
