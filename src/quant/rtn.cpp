#include "quant/rtn.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "quant/kmeans.h"

namespace sq {

LutMatrix quantize_rtn_lut(const float* W, int64_t rows, int64_t cols, int bits, int64_t group_size,
                           const ExecContext& ctx) {
  SQ_CHECK(bits >= 2 && bits <= 8, "rtn: bits = ", bits, " is outside [2, 8]");
  SQ_CHECK(rows >= 1 && cols >= 1, "rtn: bad shape [", rows, ", ", cols, "]");
  LutMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.bits = bits;
  m.group_size = (group_size <= 0 || group_size > cols) ? cols : group_size;
  const int L = m.levels();
  const int64_t ng = m.n_groups();
  m.codes.resize(size_t(rows) * size_t(cols));
  m.lut.resize(size_t(rows * ng) * size_t(L));

  auto do_rows = [&](size_t r0, size_t r1, int) {
    float table[256];
    for (int64_t r = int64_t(r0); r < int64_t(r1); r++) {
      const float* w = W + r * cols;
      for (int64_t g = 0; g < ng; g++) {
        const int64_t c0 = g * m.group_size, c1 = std::min(cols, c0 + m.group_size);
        float lo = w[c0], hi = w[c0];
        for (int64_t c = c0; c < c1; c++) {
          SQ_CHECK(std::isfinite(w[c]), "rtn: weight [", r, ", ", c, "] is not finite");
          lo = std::min(lo, w[c]);
          hi = std::max(hi, w[c]);
        }
        const double scale = (double(hi) - double(lo)) / double(L - 1);  // double: no overflow
        uint16_t* lut = m.lut.data() + size_t((r * ng + g) * L);
        for (int q = 0; q < L; q++) {
          // min + q·scale is non-decreasing in q and so is its F16 rounding: the table stays sorted.
          lut[q] = f32_to_f16(float(std::clamp(double(lo) + double(q) * scale, -65504.0, 65504.0)));
          table[q] = f16_to_f32(lut[q]);
        }
        const NearestCode encode(table, L);
        for (int64_t c = c0; c < c1; c++) m.codes[size_t(r * cols + c)] = encode(w[c]);
      }
    }
  };
  if (ctx.pool) ctx.pool->parallel_for(size_t(rows), 16, do_rows);
  else do_rows(0, size_t(rows), 0);
  return m;
}

}  // namespace sq
