#include "calib/layer_ops.h"

#include <algorithm>
#include <cmath>

#include "calib/gemm.h"

namespace sq::calib {

template <typename T>
void rmsnorm_fwd(const T* x, const T* w, int64_t L, int64_t d, double eps, T* y, T* inv) {
  for (int64_t t = 0; t < L; t++) {
    const T* xr = x + t * d;
    double ss = 0;
    for (int64_t j = 0; j < d; j++) ss += double(xr[j]) * double(xr[j]);
    const T r = T(1.0 / std::sqrt(ss / double(d) + eps));
    inv[t] = r;
    T* yr = y + t * d;
    for (int64_t j = 0; j < d; j++) yr[j] = xr[j] * r * w[j];
  }
}

template <typename T>
void rmsnorm_bwd(const T* x, const T* inv, const T* w, const T* dy, int64_t L, int64_t d, T* dx) {
  for (int64_t t = 0; t < L; t++) {
    const T* xr = x + t * d;
    const T* gr = dy + t * d;
    double dot = 0;  // Σ_j w_j dy_j x_j
    for (int64_t j = 0; j < d; j++) dot += double(w[j]) * double(gr[j]) * double(xr[j]);
    const T r = inv[t];
    const T c = T(dot / double(d)) * r * r * r;
    T* o = dx + t * d;
    for (int64_t j = 0; j < d; j++) o[j] += r * w[j] * gr[j] - xr[j] * c;
  }
}

template <typename T>
void layernorm_fwd(const T* x, const T* w, const T* b, int64_t L, int64_t d, double eps, T* y, T* mean, T* rstd) {
  for (int64_t t = 0; t < L; t++) {
    const T* xr = x + t * d;
    double s = 0;
    for (int64_t j = 0; j < d; j++) s += double(xr[j]);
    const double mu = s / double(d);
    double v = 0;
    for (int64_t j = 0; j < d; j++) v += (double(xr[j]) - mu) * (double(xr[j]) - mu);
    const T r = T(1.0 / std::sqrt(v / double(d) + eps));
    mean[t] = T(mu);
    rstd[t] = r;
    T* yr = y + t * d;
    for (int64_t j = 0; j < d; j++) yr[j] = (xr[j] - T(mu)) * r * w[j] + b[j];
  }
}

template <typename T>
void layernorm_bwd(const T* x, const T* mean, const T* rstd, const T* w, const T* dy, int64_t L, int64_t d, T* dx) {
  for (int64_t t = 0; t < L; t++) {
    const T* xr = x + t * d;
    const T* gr = dy + t * d;
    const T mu = mean[t], r = rstd[t];
    double sg = 0, sgx = 0;  // Σ g, Σ g·x̂
    for (int64_t j = 0; j < d; j++) {
      const double g = double(w[j]) * double(gr[j]);
      sg += g;
      sgx += g * double((xr[j] - mu) * r);
    }
    const T mg = T(sg / double(d)), mgx = T(sgx / double(d));
    T* o = dx + t * d;
    for (int64_t j = 0; j < d; j++) o[j] += r * (w[j] * gr[j] - mg - (xr[j] - mu) * r * mgx);
  }
}

template <typename T>
void rope_tables(int64_t L, int64_t head_dim, double theta, std::vector<T>* cos, std::vector<T>* sin) {
  const int64_t h2 = head_dim / 2;
  cos->resize(size_t(L * h2));
  sin->resize(size_t(L * h2));
  for (int64_t i = 0; i < h2; i++) {
    const double inv_freq = std::pow(theta, -2.0 * double(i) / double(head_dim));
    for (int64_t t = 0; t < L; t++) {
      const double ang = double(t) * inv_freq;
      (*cos)[t * h2 + i] = T(std::cos(ang));
      (*sin)[t * h2 + i] = T(std::sin(ang));
    }
  }
}

template <typename T>
void rope_apply(T* x, int64_t L, int64_t n_heads, int64_t head_dim, const T* cos, const T* sin, bool inverse) {
  const int64_t h2 = head_dim / 2;
  for (int64_t t = 0; t < L; t++) {
    const T* c = cos + t * h2;
    const T* s = sin + t * h2;
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

namespace {
// First key position query i may attend to.
inline int64_t first_key(int64_t i, int64_t window) { return window > 0 ? std::max<int64_t>(0, i - window + 1) : 0; }
}  // namespace

// Per query head h (group g = h / (H/KV)):  S = scale · Q_h K_gᵀ [L, L] (full product; the masked
// half is wasted work, cheaper than a triangular loop outside the packed GEMM), P = masked softmax(S),
// A_h = P V_g.
template <typename T>
void attention_fwd(const AttnShape& s, const T* q, const T* k, const T* v, T* P, T* a, Isa isa, ThreadPool* pool) {
  const int64_t L = s.L, H = s.n_heads, KV = s.n_kv_heads, hd = s.head_dim;
  const int64_t qd = H * hd, kvd = KV * hd, group = H / KV;
  auto run_group = [&](size_t g, int) {
    for (int64_t h = int64_t(g) * group; h < (int64_t(g) + 1) * group; h++) {
      T* Ph = P + h * L * L;
      gemm<T>(L, L, hd, row_major(q + h * hd, qd), transposed(k + g * hd, kvd), Ph, L, false, isa, nullptr);
      for (int64_t i = 0; i < L; i++) {
        T* row = Ph + i * L;
        const int64_t lo = first_key(i, s.window);
        T mx = -INFINITY;
        for (int64_t j = lo; j <= i; j++) mx = std::max(mx, row[j] * T(s.scale));
        T sum = 0;
        for (int64_t j = lo; j <= i; j++) {
          row[j] = std::exp(row[j] * T(s.scale) - mx);
          sum += row[j];
        }
        const T inv = T(1) / sum;
        for (int64_t j = 0; j < lo; j++) row[j] = 0;
        for (int64_t j = lo; j <= i; j++) row[j] *= inv;
        for (int64_t j = i + 1; j < L; j++) row[j] = 0;
      }
      gemm<T>(L, hd, L, row_major<T>(Ph, L), row_major(v + g * hd, kvd), a + h * hd, qd, false, isa, nullptr);
    }
  };
  if (pool) pool->run(size_t(KV), run_group);
  else for (int64_t g = 0; g < KV; g++) run_group(size_t(g), 0);
}

// dP = dA_h V_gᵀ, dV_g += P_hᵀ dA_h, dS = P ∘ (dP − rowsum(P ∘ dP)) · scale, dQ_h = dS K_g,
// dK_g += dSᵀ Q_h. KV heads are independent tasks, so the group's dK/dV sums need no locking.
template <typename T>
void attention_bwd(const AttnShape& s, const T* q, const T* k, const T* v, const T* P, const T* da, T* dq, T* dk,
                   T* dv, Isa isa, ThreadPool* pool) {
  const int64_t L = s.L, H = s.n_heads, KV = s.n_kv_heads, hd = s.head_dim;
  const int64_t qd = H * hd, kvd = KV * hd, group = H / KV;
  const int n_threads = pool ? pool->size() : 1;
  std::vector<std::vector<T>> dS(size_t(n_threads), std::vector<T>(size_t(L * L)));
  for (int64_t t = 0; t < L; t++)
    for (int64_t j = 0; j < kvd; j++) dk[t * kvd + j] = dv[t * kvd + j] = 0;
  auto run_group = [&](size_t g, int th) {
    T* ds = dS[size_t(th)].data();
    for (int64_t h = int64_t(g) * group; h < (int64_t(g) + 1) * group; h++) {
      const T* Ph = P + h * L * L;
      gemm<T>(L, L, hd, row_major(da + h * hd, qd), transposed(v + g * hd, kvd), ds, L, false, isa, nullptr);
      gemm<T>(L, hd, L, transposed(Ph, L), row_major(da + h * hd, qd), dv + g * hd, kvd, true, isa, nullptr);
      for (int64_t i = 0; i < L; i++) {
        const T* pr = Ph + i * L;
        T* r = ds + i * L;
        const int64_t lo = first_key(i, s.window);
        T dot = 0;
        for (int64_t j = lo; j <= i; j++) dot += pr[j] * r[j];
        for (int64_t j = 0; j < L; j++) r[j] = (j >= lo && j <= i) ? pr[j] * (r[j] - dot) * T(s.scale) : T(0);
      }
      gemm<T>(L, hd, L, row_major<T>(ds, L), row_major(k + g * hd, kvd), dq + h * hd, qd, false, isa, nullptr);
      gemm<T>(L, hd, L, transposed<T>(ds, L), row_major(q + h * hd, qd), dk + g * hd, kvd, true, isa, nullptr);
    }
  };
  if (pool) pool->run(size_t(KV), run_group);
  else for (int64_t g = 0; g < KV; g++) run_group(size_t(g), 0);
}

#define SQ_INSTANTIATE(T)                                                                                     \
  template void rmsnorm_fwd<T>(const T*, const T*, int64_t, int64_t, double, T*, T*);                         \
  template void rmsnorm_bwd<T>(const T*, const T*, const T*, const T*, int64_t, int64_t, T*);                 \
  template void layernorm_fwd<T>(const T*, const T*, const T*, int64_t, int64_t, double, T*, T*, T*);         \
  template void layernorm_bwd<T>(const T*, const T*, const T*, const T*, const T*, int64_t, int64_t, T*);     \
  template void rope_tables<T>(int64_t, int64_t, double, std::vector<T>*, std::vector<T>*);                   \
  template void rope_apply<T>(T*, int64_t, int64_t, int64_t, const T*, const T*, bool);                       \
  template void attention_fwd<T>(const AttnShape&, const T*, const T*, const T*, T*, T*, Isa, ThreadPool*); \
  template void attention_bwd<T>(const AttnShape&, const T*, const T*, const T*, const T*, const T*, T*, T*, \
                                 T*, Isa, ThreadPool*);
SQ_INSTANTIATE(float)
SQ_INSTANTIATE(double)
#undef SQ_INSTANTIATE

}  // namespace sq::calib
