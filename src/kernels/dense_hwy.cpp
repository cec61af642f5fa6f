// Highway kernels for dense F32/F16/BF16 weights, written once and compiled by foreach_target.h for
// each target of kernels/simd_targets.h (this file is included once per target). The contract is
// dense_rows_ref's (kernels/dense.h): output rows [r0, r1) of Y[n, ldy] = X[n, cols] · Wᵀ.
#include "kernels/simd_targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/dense_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include <algorithm>
#include <cstring>

#include "core/dtype.h"
#include "kernels/dense.h"

HWY_BEFORE_NAMESPACE();
namespace sq::kernels::HWY_NAMESPACE {
#if SQ_HWY_KERNEL_TARGET

namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Weight element types as Highway lane types (F16 and BF16 are 16-bit patterns).
using F16 = hwy::float16_t;
using BF16 = hwy::bfloat16_t;

// One vector of weights as f32: F16 through vcvtph2ps (F16C), BF16 by a 16-bit shift.
HWY_INLINE VF LoadW(DF df, const float* p) { return hn::LoadU(df, p); }
HWY_INLINE VF LoadW(DF df, const F16* p) { return hn::PromoteTo(df, hn::LoadU(hn::Rebind<F16, DF>(), p)); }
HWY_INLINE VF LoadW(DF df, const BF16* p) { return hn::PromoteTo(df, hn::LoadU(hn::Rebind<BF16, DF>(), p)); }

// One weight element as f32, for the column tails (memcpy: mapped tensors need not be aligned).
HWY_INLINE float ElemW(const float* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}
HWY_INLINE float ElemW(const F16* p) {
  uint16_t b;
  std::memcpy(&b, p, 2);
  return f16_to_f32(b);
}
HWY_INLINE float ElemW(const BF16* p) {
  uint16_t b;
  std::memcpy(&b, p, 2);
  return bf16_to_f32(b);
}

// ---- decode path (n <= 3): convert weights in registers as they stream past -------------------------

// out[c*R + i] = Σ_k W_i[k] · X[c, k] over k in [0, cols), for R weight rows w[i] and C rows of X (row
// stride cols). U accumulators per output, each taking every U-th vector of the row (U vectors = U · N
// consecutive weights per row per step), summed at the end; the < U · N columns left over go one vector
// at a time into the first, the last < N one element at a time. Every row's sum is the same sequence of
// operations whichever tile it is computed in (results do not depend on how rows are split over threads).
//
// Each step also prefetches the weight lines kPrefetchBytes ahead in every row. A row's stream runs on
// into the next row of its sub-range (RowsDirect), which is the next one in memory, so prefetching past
// a row's end fetches what that stream reads next (and past the matrix's end, prefetches do not fault).
// Measured on the Zen 5-class EPYC VM: decode of an 8-layer LLaMA-7B-shaped F16 model, 2 threads, the
// distances alternated within one process (15 rounds of 8 tokens, medians of the ratio to no prefetch):
// 1 KiB ahead +10% / +10% / +7% (three runs), 1.5 KiB +7% / +9%, 768 B +6% / +4%, 2 KiB +6% / +3% / +5%,
// 512 B +1%, 4 KiB -10%. Without it the hardware prefetchers apparently keep too few lines in flight
// once each line also costs conversions and FMAs.
constexpr size_t kPrefetchBytes = 1024;

template <size_t R, size_t C, size_t U, class WT>
HWY_INLINE void DirectTile(const WT* const* HWY_RESTRICT w, size_t cols, const float* HWY_RESTRICT x,
                           float* HWY_RESTRICT out) {
  const DF df;
  const size_t N = hn::Lanes(df);
  // Bytes of each row one step reads. Steps shorter than a line (AVX2, or U = 1) prefetch only on the
  // steps that start a line, so every line is prefetched once.
  const size_t step_bytes = U * N * sizeof(WT), line_steps = step_bytes < 64 ? 64 / step_bytes : 1;
  VF acc[U][R * C];
  for (size_t u = 0; u < U; u++)
    for (size_t t = 0; t < R * C; t++) acc[u][t] = hn::Zero(df);
  size_t k = 0;
  for (size_t step = 0; k + U * N <= cols; k += U * N, step++) {
    for (size_t i = 0; i < R && step % line_steps == 0; i++) {
      const char* ahead = reinterpret_cast<const char*>(w[i] + k) + kPrefetchBytes;
      for (size_t b = 0; b < step_bytes; b += 64) hwy::Prefetch(ahead + b);
    }
    for (size_t u = 0; u < U; u++) {
      VF xv[C];
      for (size_t c = 0; c < C; c++) xv[c] = hn::LoadU(df, x + c * cols + k + u * N);
      for (size_t i = 0; i < R; i++) {
        const VF wv = LoadW(df, w[i] + k + u * N);
        for (size_t c = 0; c < C; c++) acc[u][i * C + c] = hn::MulAdd(wv, xv[c], acc[u][i * C + c]);
      }
    }
  }
  for (; k + N <= cols; k += N) {
    VF xv[C];
    for (size_t c = 0; c < C; c++) xv[c] = hn::LoadU(df, x + c * cols + k);
    for (size_t i = 0; i < R; i++) {
      const VF wv = LoadW(df, w[i] + k);
      for (size_t c = 0; c < C; c++) acc[0][i * C + c] = hn::MulAdd(wv, xv[c], acc[0][i * C + c]);
    }
  }
  for (size_t u = 1; u < U; u++)
    for (size_t t = 0; t < R * C; t++) acc[0][t] = hn::Add(acc[0][t], acc[u][t]);
  for (size_t i = 0; i < R; i++) {
    for (size_t c = 0; c < C; c++) {
      float s = hn::GetLane(hn::SumOfLanes(df, acc[0][i * C + c]));
      for (size_t kk = k; kk < cols; kk++) s += ElemW(w[i] + kk) * x[c * cols + kk];
      out[c * R + i] = s;
    }
  }
}

// Rows [r0, r1) for C = n rows of X, R rows at a time: one row from each of R equal sub-ranges of
// [r0, r1), so each thread reads R long sequential streams (like the bandwidth probe) rather than R
// rows side by side, whose streams would restart every R rows and retrain the prefetchers. The < R rows
// left over go one at a time.
// Matvec (C = 1): R = 4 streams of U = 2 vectors per step (with AVX-512 one 64-byte line of F16 per
// stream per step). Measured on a Zen 5-class EPYC VM, 2 threads, matvecs over twelve 11008x4096 F16 matrices in
// turn against a plain 4-stream read of the same bytes (medians of 14 interleaved passes, two runs):
// R = 4, U = 2: 0.91, 0.97; R = 4, U = 1: 0.87, 0.88; R = 8, U = 1 (the earlier choice, from a Zen 3
// VM): 0.76, 0.80. 12 or 16 streams were no better than 8; 2 streams or 1 slower than 4.
// C = 2, 3: R = 4, U = 1 (more accumulators would not fit the AVX2 register file).
template <size_t C, class WT>
void RowsDirect(const WT* w, size_t cols, const float* x, float* y, size_t ldy, size_t r0, size_t r1) {
  constexpr size_t R = 4, U = C == 1 ? 2 : 1;
  const size_t len = (r1 - r0) / R;  // rows per sub-range
  const WT* rows[R];
  float out[R * C];
  for (size_t j = 0; j < len; j++) {
    for (size_t i = 0; i < R; i++) rows[i] = w + (r0 + i * len + j) * cols;
    DirectTile<R, C, U>(rows, cols, x, out);
    for (size_t c = 0; c < C; c++)
      for (size_t i = 0; i < R; i++) y[c * ldy + r0 + i * len + j] = out[c * R + i];
  }
  for (size_t r = r0 + R * len; r < r1; r++) {
    rows[0] = w + r * cols;
    DirectTile<1, C, U>(rows, cols, x, out);
    for (size_t c = 0; c < C; c++) y[c * ldy + r] = out[c];
  }
}

// ---- small batches (4 <= n <= kDirectMaxRows): two weight rows against up to C rows of X ----------------
// Batched decode reads each weight once per step for all its rows: per step one weight vector of each of
// 2 rows (two sequential streams, as RowsDirect), converted in registers, times C vectors of X, 2·C
// accumulators (C = 8 on AVX-512: 16 accumulators + 8 X vectors in the 32 registers; 4 on AVX2's 16).
// More than C rows of X take further passes over the same two weight rows, which are then in L1.
// Measured (LLaMA-7B shapes, 2 threads, F16, n = 8): the tile path took 4.3x the matvec's time.
constexpr size_t kSmallC = HWY_TARGET == HWY_AVX3 ? 6 : 3;
constexpr size_t kSmallR = HWY_TARGET == HWY_AVX3 ? 4 : 3;
constexpr size_t kDirectMaxRows = 32;

template <class WT>
void RowsSmallBatch(const WT* w, size_t cols, const float* x, size_t n, float* y, size_t ldy, size_t r0, size_t r1) {
  constexpr size_t R = kSmallR;
  const size_t len = (r1 - r0) / R;
  const WT* rows[R];
  float out[R * kSmallC];
  auto tile = [&](const WT* const* rw, size_t nr, size_t r_of_0, size_t stride) HWY_ATTR {
    for (size_t j0 = 0; j0 < n; j0 += kSmallC) {
      const size_t c = std::min(kSmallC, n - j0);
      const float* xj = x + j0 * cols;
#define SQ_SMALL_CASE(CC)                                                       \
  case CC:                                                                      \
    if (nr == R) DirectTile<R, CC, 1>(rw, cols, xj, out);                       \
    else DirectTile<1, CC, 1>(rw, cols, xj, out);                               \
    break;
      switch (c) {
        SQ_SMALL_CASE(1)
        SQ_SMALL_CASE(2)
        SQ_SMALL_CASE(3)
#if HWY_TARGET == HWY_AVX3
        SQ_SMALL_CASE(4)
        SQ_SMALL_CASE(5)
        SQ_SMALL_CASE(6)
#endif
        default: break;
      }
#undef SQ_SMALL_CASE
      for (size_t jj = 0; jj < c; jj++)
        for (size_t i = 0; i < nr; i++) y[(j0 + jj) * ldy + r_of_0 + i * stride] = out[jj * nr + i];
    }
  };
  for (size_t j = 0; j < len; j++) {
    for (size_t i = 0; i < R; i++) rows[i] = w + (r0 + i * len + j) * cols;
    tile(rows, R, r0 + j, len);
  }
  for (size_t r = r0 + R * len; r < r1; r++) {
    rows[0] = w + r * cols;
    tile(rows, 1, r, 0);
  }
}

// ---- prompt path (n > kDirectMaxRows): convert a weight tile once, reuse it for every row of X -------

#include "kernels/tile_hwy-inl.h"

// Converts W[r, k0 .. k0 + kb) to f32 for tile::RowsBuffered.
template <class WT>
struct DenseDecode {
  const WT* w;
  size_t cols;
  HWY_INLINE void operator()(size_t r, size_t k0, size_t kb, float* dst) const {
    const DF df;
    const size_t N = hn::Lanes(df), kvec = kb - kb % N;
    const WT* src = w + r * cols + k0;
    size_t k = 0;
    for (; k < kvec; k += N) hn::Store(LoadW(df, src + k), df, dst + k);
    for (; k < kb; k++) dst[k] = ElemW(src + k);
  }
  // With column blocks outermost, W is read in 4 × 1024-element pieces a row stride apart, which the
  // hardware prefetchers do not follow: fetch the next tile's pieces by hand.
  HWY_INLINE void prefetch(size_t r, size_t k0) const {
    const size_t piece_bytes = std::min(tile::kTileCols, cols - k0) * sizeof(WT);
    for (size_t i = 0; i < tile::kTileRows; i++) {
      const char* p = reinterpret_cast<const char*>(w + (r + i) * cols + k0);
      for (size_t b = 0; b < piece_bytes; b += 64) hwy::Prefetch(p + b);
    }
  }
};

template <class WT>
void Rows(const void* w, size_t cols, const float* x, size_t n, float* y, size_t ldy, size_t r0, size_t r1) {
  const WT* wt = static_cast<const WT*>(w);
  switch (n) {
    case 0: return;
    case 1: return RowsDirect<1>(wt, cols, x, y, ldy, r0, r1);
    case 2: return RowsDirect<2>(wt, cols, x, y, ldy, r0, r1);
    case 3: return RowsDirect<3>(wt, cols, x, y, ldy, r0, r1);
    default:
      if (n <= kDirectMaxRows) return RowsSmallBatch(wt, cols, x, n, y, ldy, r0, r1);
      return tile::RowsBuffered(cols, x, cols, n, y, ldy, r0, r1, DenseDecode<WT>{wt, cols});
  }
}

void RowsF32(const void* w, size_t cols, const float* x, size_t n, float* y, size_t ldy, size_t r0, size_t r1) {
  Rows<float>(w, cols, x, n, y, ldy, r0, r1);
}
void RowsF16(const void* w, size_t cols, const float* x, size_t n, float* y, size_t ldy, size_t r0, size_t r1) {
  Rows<F16>(w, cols, x, n, y, ldy, r0, r1);
}
void RowsBF16(const void* w, size_t cols, const float* x, size_t n, float* y, size_t ldy, size_t r0,
              size_t r1) {
  Rows<BF16>(w, cols, x, n, y, ldy, r0, r1);
}

#endif  // SQ_HWY_KERNEL_TARGET
}  // namespace sq::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace sq::kernels {

const DenseKernelTable* dense_hwy_table(Isa isa) {
#if HWY_TARGETS & HWY_AVX2
  static const DenseKernelTable avx2{&N_AVX2::RowsF32, &N_AVX2::RowsF16, &N_AVX2::RowsBF16};
  if (isa == Isa::kAvx2) return &avx2;
#endif
#if HWY_TARGETS & HWY_AVX3
  static const DenseKernelTable avx3{&N_AVX3::RowsF32, &N_AVX3::RowsF16, &N_AVX3::RowsBF16};
  if (hwy_isa(isa) == Isa::kAvx512) return &avx3;
#endif
  return nullptr;
}

}  // namespace sq::kernels
#endif  // HWY_ONCE
