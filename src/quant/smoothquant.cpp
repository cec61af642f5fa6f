#include "quant/smoothquant.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace sq {

std::vector<float> smooth_scales(std::span<const float> act_absmax, const std::vector<std::span<const float>>& weights,
                                 int64_t in, double alpha) {
  SQ_CHECK(in > 0, "smooth_scales: input width ", in, " is invalid");
  SQ_CHECK(alpha >= 0.0 && alpha <= 1.0, "smooth_scales: alpha ", alpha, " is outside [0, 1]");
  SQ_CHECK(act_absmax.size() == size_t(in), "smooth_scales: ", act_absmax.size(), " activation maxima for ", in,
           " input channels");
  SQ_CHECK(!weights.empty(), "smooth_scales: no weights given");
  // Column maxima over all rows of all weights; NaN/inf propagate into wmax and trip the guard below.
  std::vector<float> wmax(size_t(in), 0.0f);
  std::vector<bool> bad(size_t(in), false);
  for (size_t wi = 0; wi < weights.size(); wi++) {
    const auto& w = weights[wi];
    SQ_CHECK(w.size() % size_t(in) == 0, "smooth_scales: weight ", wi, " has ", w.size(),
             " elements, not a multiple of ", in, " input channels");
    const size_t rows = w.size() / size_t(in);
    for (size_t r = 0; r < rows; r++) {
      const float* row = w.data() + r * size_t(in);
      for (int64_t j = 0; j < in; j++) {
        float a = std::fabs(row[j]);
        if (!std::isfinite(a)) bad[size_t(j)] = true;
        else wmax[size_t(j)] = std::max(wmax[size_t(j)], a);
      }
    }
  }
  std::vector<float> s(size_t(in), 1.0f);
  for (int64_t j = 0; j < in; j++) {
    const double xm = act_absmax[size_t(j)], wm = wmax[size_t(j)];
    if (bad[size_t(j)] || !std::isfinite(xm) || !(xm > 0.0) || !(wm > 0.0)) continue;  // s_j = 1
    // In double: xm^α / wm^(1-α) can leave f32's range before the clamp brings it back.
    double v = std::pow(xm, alpha) / std::pow(wm, 1.0 - alpha);
    if (!std::isfinite(v) || !(v > 0.0)) continue;
    s[size_t(j)] = float(std::clamp(v, double(kSmoothScaleMin), double(kSmoothScaleMax)));
  }
  return s;
}

void scale_columns(float* W, int64_t rows, int64_t cols, std::span<const float> s) {
  SQ_CHECK(rows >= 0 && cols >= 0 && s.size() == size_t(cols), "scale_columns: ", s.size(), " scales for ", cols,
           " columns");
  for (int64_t r = 0; r < rows; r++) {
    float* row = W + size_t(r) * size_t(cols);
    for (int64_t j = 0; j < cols; j++) row[j] *= s[size_t(j)];
  }
}

void scale_rows(float* W, int64_t rows, int64_t cols, std::span<const float> s) {
  SQ_CHECK(rows >= 0 && cols >= 0 && s.size() == size_t(rows), "scale_rows: ", s.size(), " scales for ", rows,
           " rows");
  for (int64_t r = 0; r < rows; r++) {
    float* row = W + size_t(r) * size_t(cols);
    const float f = s[size_t(r)];
    for (int64_t j = 0; j < cols; j++) row[j] *= f;
  }
}

void divide_vector(float* v, std::span<const float> s) {
  for (size_t j = 0; j < s.size(); j++) v[j] /= s[j];
}

std::vector<float> reciprocal(std::span<const float> s) {
  std::vector<float> r(s.size());
  for (size_t j = 0; j < s.size(); j++) r[j] = 1.0f / s[j];
  return r;
}

}  // namespace sq
