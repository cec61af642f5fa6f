// The non-linear pieces of a decoder layer with their exact backward passes, templated on the scalar
// type (float for calibration, double for the finite-difference tests). Every function works on one
// sequence of L positions, activations row-major [L, width].
// Backward functions ADD into their input-gradient outputs (dx += ...), so residual branches
// accumulate without extra copies.
#pragma once
#include <cstdint>
#include <vector>

#include "core/context.h"

namespace sq::calib {

// RMSNorm (LLaMA): y[t] = x[t] * inv[t] * w, inv[t] = 1 / sqrt(mean_j x[t,j]² + eps).
template <typename T>
void rmsnorm_fwd(const T* x, const T* w, int64_t L, int64_t d, double eps, T* y, T* inv);
// dx[t] += inv·(w∘dy) − x · inv³ · Σ_j (w∘dy∘x)_j / d
template <typename T>
void rmsnorm_bwd(const T* x, const T* inv, const T* w, const T* dy, int64_t L, int64_t d, T* dx);

// LayerNorm (OPT): y = (x − mean)·rstd·w + b, biased variance.
template <typename T>
void layernorm_fwd(const T* x, const T* w, const T* b, int64_t L, int64_t d, double eps, T* y, T* mean, T* rstd);
// dx += rstd · (g − mean(g) − x̂ · mean(g∘x̂)), g = w∘dy, x̂ = (x − mean)·rstd.
template <typename T>
void layernorm_bwd(const T* x, const T* mean, const T* rstd, const T* w, const T* dy, int64_t L, int64_t d, T* dx);

// RoPE tables [L, head_dim/2]: angle(t, i) = t · theta^(−2i/head_dim), computed in double.
template <typename T>
void rope_tables(int64_t L, int64_t head_dim, double theta, std::vector<T>* cos, std::vector<T>* sin);
// Hugging Face rotate-half layout on x [L, n_heads·head_dim]: pairs (i, i + hd/2) rotate by the
// angle: (a, b) -> (a·c − b·s, b·c + a·s). inverse = true rotates by −angle, which is the transpose,
// i.e. the backward of the forward rotation.
template <typename T>
void rope_apply(T* x, int64_t L, int64_t n_heads, int64_t head_dim, const T* cos, const T* sin, bool inverse);

// Causal multi-head attention with grouped KV heads and an optional sliding window.
struct AttnShape {
  int64_t L, n_heads, n_kv_heads, head_dim;
  int64_t window;  // 0 = none; else position i attends to j with i − window < j <= i
  double scale;    // 1/sqrt(head_dim)
};
// q [L, H·hd], k, v [L, KV·hd] -> P [H, L, L] (softmax probabilities, zero where masked),
// a [L, H·hd]. Query head h uses KV head h / (H / KV). Work is split over KV heads.
template <typename T>
void attention_fwd(const AttnShape& s, const T* q, const T* k, const T* v, T* P, T* a, Isa isa, ThreadPool* pool);
// From da [L, H·hd]: dq = (overwritten) [L, H·hd], dk, dv (overwritten) [L, KV·hd].
template <typename T>
void attention_bwd(const AttnShape& s, const T* q, const T* k, const T* v, const T* P, const T* da, T* dq, T* dk,
                   T* dv, Isa isa, ThreadPool* pool);

}  // namespace sq::calib
