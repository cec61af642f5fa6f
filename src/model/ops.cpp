#include "model/ops.h"

#include <algorithm>
#include <cmath>

#include "kernels/attn.h"

namespace sq {

void rmsnorm(const float* x, const float* w, float* out, int64_t n, int64_t dim, double eps) {
  for (int64_t t = 0; t < n; t++) {
    const float* xr = x + t * dim;
    double ss = 0;
    for (int64_t i = 0; i < dim; i++) ss += double(xr[i]) * xr[i];
    float inv = float(1.0 / std::sqrt(ss / double(dim) + eps));
    for (int64_t i = 0; i < dim; i++) out[t * dim + i] = xr[i] * inv * w[i];
  }
}

void layernorm(const float* x, const float* w, const float* b, float* out, int64_t n, int64_t dim, double eps) {
  for (int64_t t = 0; t < n; t++) {
    const float* xr = x + t * dim;
    double mean = 0, var = 0;
    for (int64_t i = 0; i < dim; i++) mean += xr[i];
    mean /= double(dim);
    for (int64_t i = 0; i < dim; i++) var += (xr[i] - mean) * (xr[i] - mean);
    var /= double(dim);
    double inv = 1.0 / std::sqrt(var + eps);
    for (int64_t i = 0; i < dim; i++) out[t * dim + i] = float((xr[i] - mean) * inv) * w[i] + b[i];
  }
}

void rope(float* x, int64_t n, int64_t n_heads, int64_t head_dim, int64_t pos0, double theta) {
  const int64_t half = head_dim / 2;
  std::vector<float> cs(half), sn(half);
  for (int64_t t = 0; t < n; t++) {
    double pos = double(pos0 + t);
    for (int64_t i = 0; i < half; i++) {
      double a = pos * std::pow(theta, -2.0 * double(i) / double(head_dim));
      cs[i] = float(std::cos(a));
      sn[i] = float(std::sin(a));
    }
    for (int64_t h = 0; h < n_heads; h++) {
      float* v = x + (t * n_heads + h) * head_dim;
      for (int64_t i = 0; i < half; i++) {
        float a = v[i], b = v[i + half];
        v[i] = a * cs[i] - b * sn[i];
        v[i + half] = b * cs[i] + a * sn[i];
      }
    }
  }
}

void add_bias(float* y, const float* b, int64_t n, int64_t dim) {
  for (int64_t t = 0; t < n; t++)
    for (int64_t i = 0; i < dim; i++) y[t * dim + i] += b[i];
}

void silu_mul(float* g, const float* u, int64_t count) {
  for (int64_t i = 0; i < count; i++) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void relu(float* x, int64_t count) {
  for (int64_t i = 0; i < count; i++) x[i] = std::max(x[i], 0.0f);
}

void attention(const float* q, const float* k_cache, const float* v_cache, float* out, int64_t n, int64_t pos0,
               int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t window, float scale,
               const ExecContext& ctx) {
  const int64_t group = n_heads / n_kv_heads, kv_stride = n_kv_heads * head_dim;
  const int64_t q_stride = n_heads * head_dim;
  const kernels::AttnHeadFn head = kernels::attn_head_fn(resolve_isa(ctx.isa));
  // One task per (query, head); each thread reuses one score buffer as long as the longest context.
  std::vector<std::vector<float>> scores(size_t(ctx.pool->size()), std::vector<float>(size_t(pos0 + n)));
  ctx.pool->run(size_t(n * n_heads), [&](size_t task, int thread) {
    const int64_t t = int64_t(task) / n_heads, h = int64_t(task) % n_heads, kvh = h / group;
    const int64_t p = pos0 + t;
    const int64_t lo = window > 0 ? std::max<int64_t>(0, p - window + 1) : 0;
    head(q + t * q_stride + h * head_dim, k_cache + lo * kv_stride + kvh * head_dim,
         v_cache + lo * kv_stride + kvh * head_dim, size_t(kv_stride), size_t(p - lo + 1), size_t(head_dim), scale,
         scores[size_t(thread)].data(), out + t * q_stride + h * head_dim);
  });
}

}  // namespace sq
