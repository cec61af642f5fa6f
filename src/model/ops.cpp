#include "model/ops.h"

#include <algorithm>

namespace sq {

template <typename T>
void rmsnorm_rows(const T* x, const T* w, int64_t n, int64_t d, double eps, T* y, T* inv) {
  for (int64_t t = 0; t < n; t++) {
    const T* xr = x + t * d;
    double ss = 0;
    for (int64_t j = 0; j < d; j++) ss += double(xr[j]) * double(xr[j]);
    const T r = T(1.0 / std::sqrt(ss / double(d) + eps));
    if (inv) inv[t] = r;
    T* yr = y + t * d;
    for (int64_t j = 0; j < d; j++) yr[j] = xr[j] * r * w[j];
  }
}

template <typename T>
void layernorm_rows(const T* x, const T* w, const T* b, int64_t n, int64_t d, double eps, T* y, T* mean, T* rstd) {
  for (int64_t t = 0; t < n; t++) {
    const T* xr = x + t * d;
    double s = 0;
    for (int64_t j = 0; j < d; j++) s += double(xr[j]);
    const double mu = s / double(d);
    double v = 0;
    for (int64_t j = 0; j < d; j++) v += (double(xr[j]) - mu) * (double(xr[j]) - mu);
    const T r = T(1.0 / std::sqrt(v / double(d) + eps));
    if (mean) mean[t] = T(mu);
    if (rstd) rstd[t] = r;
    T* yr = y + t * d;
    for (int64_t j = 0; j < d; j++) yr[j] = (xr[j] - T(mu)) * r * w[j] + b[j];
  }
}

template <typename T>
void RopeTable<T>::build(int64_t n_positions, int64_t head_dim, double theta) {
  positions = n_positions;
  half = head_dim / 2;
  cos.resize(size_t(positions * half));
  sin.resize(size_t(positions * half));
  for (int64_t i = 0; i < half; i++) {
    const double inv_freq = std::pow(theta, -2.0 * double(i) / double(head_dim));
    for (int64_t p = 0; p < positions; p++) {
      const double ang = double(p) * inv_freq;
      cos[size_t(p * half + i)] = T(std::cos(ang));
      sin[size_t(p * half + i)] = T(std::sin(ang));
    }
  }
}

template <typename T>
void rope_rows(T* x, int64_t n, int64_t n_heads, int64_t head_dim, const int64_t* pos, const RopeTable<T>& table,
               bool inverse) {
  const int64_t h2 = head_dim / 2;
  for (int64_t t = 0; t < n; t++) {
    const T* c = table.cos.data() + pos[t] * h2;
    const T* s = table.sin.data() + pos[t] * h2;
    for (int64_t h = 0; h < n_heads; h++) {
      T* p = x + (t * n_heads + h) * head_dim;
      for (int64_t i = 0; i < h2; i++) {
        const T a = p[i], b = p[i + h2];
        const T si = inverse ? -s[i] : s[i];
        p[i] = a * c[i] - b * si;
        p[i + h2] = b * c[i] + a * si;
      }
    }
  }
}

template <typename T>
void add_bias_rows(T* y, const T* b, int64_t n, int64_t dim) {
  for (int64_t t = 0; t < n; t++)
    for (int64_t i = 0; i < dim; i++) y[t * dim + i] += b[i];
}

namespace {
template <typename T>
double lse(const T* l, int64_t V) {
  double mx = double(l[0]);
  for (int64_t i = 1; i < V; i++) mx = std::max(mx, double(l[i]));
  double sum = 0;
  for (int64_t i = 0; i < V; i++) sum += std::exp(double(l[i]) - mx);
  return mx + std::log(sum);
}
}  // namespace

double log_sum_exp(const float* logits, int64_t vocab) { return lse(logits, vocab); }
double log_sum_exp(const double* logits, int64_t vocab) { return lse(logits, vocab); }

double token_nll(const float* logits, int64_t vocab, int32_t target) {
  return log_sum_exp(logits, vocab) - double(logits[target]);
}

#define SQ_INSTANTIATE(T)                                                                                    \
  template void rmsnorm_rows<T>(const T*, const T*, int64_t, int64_t, double, T*, T*);                       \
  template void layernorm_rows<T>(const T*, const T*, const T*, int64_t, int64_t, double, T*, T*, T*);       \
  template struct RopeTable<T>;                                                                              \
  template void rope_rows<T>(T*, int64_t, int64_t, int64_t, const int64_t*, const RopeTable<T>&, bool);      \
  template void add_bias_rows<T>(T*, const T*, int64_t, int64_t);
SQ_INSTANTIATE(float)
SQ_INSTANTIATE(double)
#undef SQ_INSTANTIATE

}  // namespace sq
