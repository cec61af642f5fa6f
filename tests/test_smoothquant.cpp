// SmoothQuant+ smoothing math: the formula on hand-picked numbers, the invariance of norm -> linear
// and linear -> linear compositions under smoothing, and the guards.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"
#include "quant/smoothquant.h"

namespace {

std::vector<float> randn(size_t n, uint32_t seed, float amp = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, amp);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// y[t, r] = Σ_j W[r, j] x[t, j]  (double accumulation).
std::vector<double> linear(const std::vector<float>& W, int64_t rows, int64_t cols, const std::vector<double>& x,
                           int64_t n) {
  std::vector<double> y(size_t(n * rows), 0.0);
  for (int64_t t = 0; t < n; t++)
    for (int64_t r = 0; r < rows; r++)
      for (int64_t j = 0; j < cols; j++) y[size_t(t * rows + r)] += double(W[size_t(r * cols + j)]) * x[size_t(t * cols + j)];
  return y;
}

// RMSNorm (llama): g ⊙ x / sqrt(mean x² + eps). LayerNorm (opt): g ⊙ (x - μ)/σ + b.
std::vector<double> norm(const std::vector<float>& x, int64_t n, int64_t d, const std::vector<float>& g,
                         const std::vector<float>* b) {
  std::vector<double> out(size_t(n * d));
  for (int64_t t = 0; t < n; t++) {
    const float* xt = x.data() + t * d;
    double mu = 0, ms = 0;
    if (b) {
      for (int64_t j = 0; j < d; j++) mu += xt[j];
      mu /= double(d);
    }
    for (int64_t j = 0; j < d; j++) ms += (xt[j] - mu) * (xt[j] - mu);
    double inv = 1.0 / std::sqrt(ms / double(d) + 1e-5);
    for (int64_t j = 0; j < d; j++)
      out[size_t(t * d + j)] = double(g[size_t(j)]) * (xt[j] - mu) * inv + (b ? double((*b)[size_t(j)]) : 0.0);
  }
  return out;
}

void expect_rel_close(const std::vector<double>& a, const std::vector<double>& b, double rel) {
  ASSERT_EQ(a.size(), b.size());
  double scale = 0;
  for (double v : a) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < a.size(); i++) EXPECT_NEAR(a[i], b[i], rel * scale) << "element " << i;
}

std::vector<float> col_absmax(const std::vector<double>& x, int64_t n, int64_t d) {
  std::vector<float> m(size_t(d), 0.0f);
  for (int64_t t = 0; t < n; t++)
    for (int64_t j = 0; j < d; j++) m[size_t(j)] = std::max(m[size_t(j)], float(std::fabs(x[size_t(t * d + j)])));
  return m;
}

TEST(SmoothQuant, FormulaOnHandPickedNumbers) {
  // Two weights sharing the input: column maxima are taken over both ({1, 4} after the max).
  const std::vector<float> xmax = {4.0f, 9.0f};
  const std::vector<float> w1 = {0.5f, -4.0f, 1.0f, 2.0f};  // [2, 2]
  const std::vector<float> w2 = {-0.25f, 3.0f};             // [1, 2]
  std::vector<std::span<const float>> ws = {w1, w2};
  auto s = sq::smooth_scales(xmax, ws, 2, 0.5);
  EXPECT_FLOAT_EQ(s[0], 2.0f);  // sqrt(4) / sqrt(1)
  EXPECT_FLOAT_EQ(s[1], 1.5f);  // sqrt(9) / sqrt(4)
  s = sq::smooth_scales(xmax, ws, 2, 1.0);
  EXPECT_FLOAT_EQ(s[0], 4.0f);  // alpha 1: s = max|X|
  EXPECT_FLOAT_EQ(s[1], 9.0f);
  s = sq::smooth_scales(xmax, ws, 2, 0.0);
  EXPECT_FLOAT_EQ(s[0], 1.0f);  // alpha 0: s = 1 / max|W|
  EXPECT_FLOAT_EQ(s[1], 0.25f);
  s = sq::smooth_scales(xmax, ws, 2, 0.75);
  EXPECT_NEAR(s[1], std::pow(9.0, 0.75) / std::pow(4.0, 0.25), 1e-5);
}

TEST(SmoothQuant, BalancesActivationAndWeightMaxima) {
  // alpha 0.5: after smoothing, max|X_j / s_j| == max|W_:,j · s_j| for every channel.
  const int64_t in = 32, rows = 12;
  auto W = randn(size_t(rows * in), 1, 0.05f);
  auto xm = randn(size_t(in), 2, 3.0f);
  for (auto& v : xm) v = std::fabs(v) + 0.01f;
  xm[7] = 80.0f;  // an outlier channel
  auto s = sq::smooth_scales(xm, {W}, in, 0.5);
  auto Ws = W;
  sq::scale_columns(Ws.data(), rows, in, s);
  for (int64_t j = 0; j < in; j++) {
    float wm = 0;
    for (int64_t r = 0; r < rows; r++) wm = std::max(wm, std::fabs(Ws[size_t(r * in + j)]));
    EXPECT_NEAR(xm[size_t(j)] / s[size_t(j)], wm, 1e-5 * wm) << j;
  }
  EXPECT_GT(s[7], 5.0f);  // the outlier channel is scaled down in X (up in W)
}

TEST(SmoothQuant, RmsNormThenLinearsUnchanged) {
  const int64_t d = 24, n = 6;
  auto x = randn(size_t(n * d), 3);
  for (int64_t t = 0; t < n; t++) x[size_t(t * d + 4)] *= 40.0f;  // outlier channel in the residual
  auto g = randn(size_t(d), 4, 0.5f);
  for (auto& v : g) v += 1.0f;
  // q [16, d], k [8, d], v [8, d] all read the normed input.
  auto Wq = randn(size_t(16 * d), 5, 0.1f), Wk = randn(size_t(8 * d), 6, 0.1f), Wv = randn(size_t(8 * d), 7, 0.1f);
  auto h = norm(x, n, d, g, nullptr);
  auto yq = linear(Wq, 16, d, h, n), yk = linear(Wk, 8, d, h, n), yv = linear(Wv, 8, d, h, n);

  for (double alpha : {0.3, 0.5, 0.8}) {
    SCOPED_TRACE(alpha);
    auto s = sq::smooth_scales(col_absmax(h, n, d), {Wq, Wk, Wv}, d, alpha);
    auto g2 = g;
    sq::divide_vector(g2.data(), s);
    auto Wq2 = Wq, Wk2 = Wk, Wv2 = Wv;
    sq::scale_columns(Wq2.data(), 16, d, s);
    sq::scale_columns(Wk2.data(), 8, d, s);
    sq::scale_columns(Wv2.data(), 8, d, s);
    auto h2 = norm(x, n, d, g2, nullptr);
    expect_rel_close(yq, linear(Wq2, 16, d, h2, n), 1e-5);
    expect_rel_close(yk, linear(Wk2, 8, d, h2, n), 1e-5);
    expect_rel_close(yv, linear(Wv2, 8, d, h2, n), 1e-5);
    // And the smoothed activations really are flatter across channels.
    auto m1 = col_absmax(h, n, d), m2 = col_absmax(h2, n, d);
    float r1 = *std::max_element(m1.begin(), m1.end()) / *std::min_element(m1.begin(), m1.end());
    float r2 = *std::max_element(m2.begin(), m2.end()) / *std::min_element(m2.begin(), m2.end());
    EXPECT_LT(r2, r1);
  }
}

TEST(SmoothQuant, LayerNormWithBiasThenLinearUnchanged) {
  const int64_t d = 16, n = 5, out = 10;
  auto x = randn(size_t(n * d), 8);
  for (int64_t t = 0; t < n; t++) x[size_t(t * d + 9)] = 25.0f + float(t);
  auto g = randn(size_t(d), 9, 0.3f), b = randn(size_t(d), 10, 0.2f);
  for (auto& v : g) v += 1.0f;
  auto W = randn(size_t(out * d), 11, 0.2f);
  auto y = linear(W, out, d, norm(x, n, d, g, &b), n);
  auto s = sq::smooth_scales(col_absmax(norm(x, n, d, g, &b), n, d), {W}, d, 0.5);
  auto g2 = g, b2 = b;
  sq::divide_vector(g2.data(), s);
  sq::divide_vector(b2.data(), s);
  auto W2 = W;
  sq::scale_columns(W2.data(), out, d, s);
  expect_rel_close(y, linear(W2, out, d, norm(x, n, d, g2, &b2), n), 1e-5);
}

TEST(SmoothQuant, FoldIntoPreviousLinearUnchanged) {
  // o_proj reads v_proj's output (attention mixes tokens, but per channel linearly): Wo (Wv x).
  const int64_t d = 20, hv = 12, n = 4;
  auto x = randn(size_t(n * d), 12);
  std::vector<double> xd(x.begin(), x.end());
  auto Wv = randn(size_t(hv * d), 13, 0.3f), Wo = randn(size_t(d * hv), 14, 0.3f);
  for (int64_t j = 0; j < d; j++) Wv[size_t(3 * d + j)] *= 30.0f;  // channel 3 of v is an outlier
  auto v = linear(Wv, hv, d, xd, n);
  auto y = linear(Wo, d, hv, v, n);
  auto s = sq::smooth_scales(col_absmax(v, n, hv), {Wo}, hv, 0.5);
  auto Wv2 = Wv, Wo2 = Wo;
  sq::scale_rows(Wv2.data(), hv, d, sq::reciprocal(s));
  sq::scale_columns(Wo2.data(), d, hv, s);
  expect_rel_close(y, linear(Wo2, d, hv, linear(Wv2, hv, d, xd, n), n), 1e-5);
}

TEST(SmoothQuant, GuardsAndClamp) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> W = {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 0.0f, 1.0f, nan,   // row 0
                                2.0f, 2.0f, 2.0f, 2.0f, 2.0f, 0.0f, 2.0f, 2.0f};  // row 1
  const std::vector<float> xm = {0.0f, inf, nan, -3.0f, 16.0f, 16.0f, 1e30f, 4.0f};
  auto s = sq::smooth_scales(xm, {W}, 8, 0.5);
  EXPECT_EQ(s[0], 1.0f);  // activation never fired
  EXPECT_EQ(s[1], 1.0f);  // infinite activation max
  EXPECT_EQ(s[2], 1.0f);  // NaN activation max
  EXPECT_EQ(s[3], 1.0f);  // negative (invalid) max
  EXPECT_FLOAT_EQ(s[4], 4.0f / std::sqrt(2.0f));  // sqrt(16) / sqrt(max(1, 2))
  EXPECT_EQ(s[5], 1.0f);  // all-zero weight column
  EXPECT_EQ(s[6], sq::kSmoothScaleMax);  // sqrt(1e30) / sqrt(2) clamped
  EXPECT_EQ(s[7], 1.0f);  // NaN weight in the column
  const std::vector<float> tiny_x = {1e-30f}, big_w = {1e20f};
  EXPECT_EQ(sq::smooth_scales(tiny_x, {big_w}, 1, 0.5)[0], sq::kSmoothScaleMin);
  for (float v : s) EXPECT_TRUE(std::isfinite(v) && v > 0.0f);
}

TEST(SmoothQuant, BadArguments) {
  const std::vector<float> W(8, 1.0f), xm(4, 1.0f);
  EXPECT_THROW(sq::smooth_scales(xm, {W}, 4, 1.5), sq::Error);
  EXPECT_THROW(sq::smooth_scales(xm, {W}, 4, -0.1), sq::Error);
  EXPECT_THROW(sq::smooth_scales(xm, {W}, 3, 0.5), sq::Error);  // absmax length != in
  const std::vector<float> W7(7, 1.0f);
  EXPECT_THROW(sq::smooth_scales(xm, {W7}, 4, 0.5), sq::Error);  // not [rows, 4]
  EXPECT_THROW(sq::smooth_scales(xm, {}, 4, 0.5), sq::Error);
  std::vector<float> M(8, 1.0f);
  EXPECT_THROW(sq::scale_columns(M.data(), 2, 4, std::vector<float>(3, 1.0f)), sq::Error);
  EXPECT_THROW(sq::scale_rows(M.data(), 2, 4, std::vector<float>(4, 1.0f)), sq::Error);
  // scale_rows / scale_columns / divide_vector do what they say on a known matrix.
  std::vector<float> A = {1, 2, 3, 4, 5, 6};  // [2, 3]
  sq::scale_columns(A.data(), 2, 3, std::vector<float>{1, 10, 100});
  EXPECT_EQ(A, (std::vector<float>{1, 20, 300, 4, 50, 600}));
  sq::scale_rows(A.data(), 2, 3, std::vector<float>{2, 0.5f});
  EXPECT_EQ(A, (std::vector<float>{2, 40, 600, 2, 25, 300}));
  std::vector<float> v = {2, 40, 600};
  sq::divide_vector(v.data(), std::vector<float>{2, 4, 6});
  EXPECT_EQ(v, (std::vector<float>{1, 10, 100}));
}

}  // namespace
