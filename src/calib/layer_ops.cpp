#include "calib/layer_ops.h"

#include <algorithm>
#include <cmath>

#include "calib/gemm.h"
#include "kernels/attn.h"
#include "model/ops.h"

namespace sq::calib {

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

// Per query head h (group g = h / (H/KV)): P_h = masked softmax(scale · Q_h K_gᵀ) recomputed, then
// dP = dA_h V_gᵀ, dV_g += P_hᵀ dA_h, dS = P ∘ (dP − rowsum(P ∘ dP)) · scale, dQ_h = dS K_g,
// dK_g += dSᵀ Q_h. KV heads are independent tasks, so the group's dK/dV sums need no locking.
template <typename T>
void attention_bwd(const AttnShape& s, const T* q, const T* k, const T* v, const T* da, T* dq, T* dk, T* dv, Isa isa,
                   ThreadPool* pool) {
  const int64_t L = s.L, H = s.n_heads, KV = s.n_kv_heads, hd = s.head_dim;
  const int64_t qd = H * hd, kvd = KV * hd, group = H / KV;
  const int n_threads = pool ? pool->size() : 1;
  std::vector<std::vector<T>> Pb(size_t(n_threads), std::vector<T>(size_t(L * L)));
  std::vector<std::vector<T>> dS(size_t(n_threads), std::vector<T>(size_t(L * L)));
  for (int64_t t = 0; t < L; t++)
    for (int64_t j = 0; j < kvd; j++) dk[t * kvd + j] = dv[t * kvd + j] = 0;
  auto run_group = [&](size_t g, int th) {
    T* P = Pb[size_t(th)].data();
    T* ds = dS[size_t(th)].data();
    for (int64_t h = int64_t(g) * group; h < (int64_t(g) + 1) * group; h++) {
      gemm<T>(L, L, hd, row_major(q + h * hd, qd), transposed(k + g * hd, kvd), P, L, false, isa, nullptr);
      for (int64_t i = 0; i < L; i++) {
        T* row = P + i * L;
        const int64_t lo = attn_first_key(i, s.window);
        for (int64_t j = lo; j <= i; j++) row[j] *= T(s.scale);
        kernels::softmax_row(row + lo, size_t(i - lo + 1));
        std::fill(row, row + lo, T(0));
        std::fill(row + i + 1, row + L, T(0));
      }
      gemm<T>(L, L, hd, row_major(da + h * hd, qd), transposed(v + g * hd, kvd), ds, L, false, isa, nullptr);
      gemm<T>(L, hd, L, transposed<T>(P, L), row_major(da + h * hd, qd), dv + g * hd, kvd, true, isa, nullptr);
      for (int64_t i = 0; i < L; i++) {
        const T* pr = P + i * L;
        T* r = ds + i * L;
        const int64_t lo = attn_first_key(i, s.window);
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
  template void rmsnorm_bwd<T>(const T*, const T*, const T*, const T*, int64_t, int64_t, T*);                 \
  template void layernorm_bwd<T>(const T*, const T*, const T*, const T*, const T*, int64_t, int64_t, T*);     \
  template void attention_bwd<T>(const AttnShape&, const T*, const T*, const T*, const T*, T*, T*, T*, Isa,  \
                                 ThreadPool*);
SQ_INSTANTIATE(float)
SQ_INSTANTIATE(double)
#undef SQ_INSTANTIATE

}  // namespace sq::calib
