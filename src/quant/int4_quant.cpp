#include "quant/int4_quant.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"

namespace sq {

namespace {
// Shrink factors tried by the clip search (1.00 first, so ties keep the full range).
constexpr float kClipGrid[] = {1.00f, 0.95f, 0.90f, 0.85f, 0.80f, 0.75f, 0.70f, 0.65f, 0.60f, 0.55f};
}  // namespace

void int4_params_for_range(float lo, float hi, uint16_t* scale_f16, uint8_t* zero) {
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  if (!(hi > lo)) {  // all-zero group: any zero point; scale 0 dequantizes everything to 0
    *scale_f16 = 0;
    *zero = 8;
    return;
  }
  uint16_t sh = f32_to_f16((hi - lo) / 15.0f);
  float s = f16_to_f32(sh);
  SQ_CHECK(std::isfinite(s), "int4 quantization: weight range [", lo, ", ", hi, "] is too large for F16 scales");
  float z = s > 0.0f ? std::nearbyint(-lo / s) : 8.0f;
  if (z < 1.0f) {
    // zero 0 is not storable in GPTQ v1; grid [-s, 14 s] with s = hi / 14 covers [lo, hi] since
    // here -lo < s_old / 2 < hi / 14.
    sh = f32_to_f16(hi / 14.0f);
    z = 1.0f;
  }
  *scale_f16 = sh;
  *zero = uint8_t(std::clamp(z, 1.0f, 15.0f));
}

double int4_quantize_group_with(const float* w, int64_t n, uint16_t scale_f16, uint8_t zero, uint8_t* q) {
  const float s = f16_to_f32(scale_f16);
  double err = 0.0;
  for (int64_t i = 0; i < n; i++) {
    float v = s > 0.0f ? std::nearbyint(w[i] / s) + float(zero) : float(zero);
    int c = int(std::clamp(v, 0.0f, 15.0f));
    q[i] = uint8_t(c);
    double d = double(s * float(c - int(zero))) - double(w[i]);
    err += d * d;
  }
  return err;
}

double int4_quantize_group(const float* w, int64_t n, bool clip_search, uint16_t* scale_f16, uint8_t* zero,
                           uint8_t* q) {
  float mn = 0.0f, mx = 0.0f;
  for (int64_t i = 0; i < n; i++) {
    mn = std::min(mn, w[i]);
    mx = std::max(mx, w[i]);
  }
  int4_params_for_range(mn, mx, scale_f16, zero);
  double best = int4_quantize_group_with(w, n, *scale_f16, *zero, q);
  if (!clip_search || best == 0.0) return best;
  std::vector<uint8_t> tmp(static_cast<size_t>(n));
  for (size_t f = 1; f < std::size(kClipGrid); f++) {
    uint16_t sh;
    uint8_t z;
    int4_params_for_range(mn * kClipGrid[f], mx * kClipGrid[f], &sh, &z);
    double e = int4_quantize_group_with(w, n, sh, z, tmp.data());
    if (e < best) {
      best = e;
      *scale_f16 = sh;
      *zero = z;
      std::copy(tmp.begin(), tmp.end(), q);
    }
  }
  return best;
}

Int4Matrix quantize_int4_rtn(const float* W, int64_t rows, int64_t cols, int group_size, bool clip_search,
                             const ExecContext& ctx) {
  SQ_CHECK(rows > 0 && cols > 0, "quantize_int4_rtn: invalid shape [", rows, ", ", cols, "]");
  Int4Matrix m;
  m.rows = rows;
  m.cols = cols;
  m.group_size = group_size;
  const int64_t G = int4_num_groups(cols, group_size);
  const int64_t gs = group_size == -1 ? cols : group_size;
  m.q.resize(size_t(rows * cols));
  m.zeros.resize(size_t(G * rows));
  m.scales.resize(size_t(G * rows));

  auto do_rows = [&](size_t r0, size_t r1, int) {
    for (int64_t r = int64_t(r0); r < int64_t(r1); r++) {
      const float* wr = W + size_t(r * cols);
      for (int64_t c = 0; c < cols; c++)
        SQ_CHECK(std::isfinite(wr[c]), "quantize_int4_rtn: weight [", r, ", ", c, "] is not finite");
      for (int64_t g = 0; g < G; g++) {
        int64_t c0 = g * gs, n = std::min(gs, cols - c0);
        int4_quantize_group(wr + c0, n, clip_search, &m.scales[size_t(g * rows + r)], &m.zeros[size_t(g * rows + r)],
                            m.q.data() + size_t(r * cols + c0));
      }
    }
  };
  if (ctx.pool) {
    // A few rows per task: each row costs cols (x10 with clip search) quantizations.
    size_t grain = size_t(std::max<int64_t>(1, 16384 / (cols * (clip_search ? 10 : 1))));
    ctx.pool->parallel_for(size_t(rows), grain, do_rows);
  } else {
    do_rows(0, size_t(rows), 0);
  }
  return m;
}

}  // namespace sq
