// The backward passes of the non-linear pieces of a decoder layer, templated on the scalar type (float
// for calibration, double for the finite-difference tests). Their forwards are model/ops.h and
// model/attention.h (the one forward of model/forward.h). Every function works on one sequence of L
// positions, activations row-major [L, width].
// Backward functions ADD into their input-gradient outputs (dx += ...), so residual branches
// accumulate without extra copies.
#pragma once
#include <cstdint>
#include <vector>

#include "core/context.h"

namespace sq::calib {

// RMSNorm y[t] = x[t] · inv[t] · w:  dx[t] += inv·(w∘dy) − x · inv³ · Σ_j (w∘dy∘x)_j / d
template <typename T>
void rmsnorm_bwd(const T* x, const T* inv, const T* w, const T* dy, int64_t L, int64_t d, T* dx);

// LayerNorm y = (x − mean)·rstd·w + b:  dx += rstd · (g − mean(g) − x̂ · mean(g∘x̂)), g = w∘dy,
// x̂ = (x − mean)·rstd.
template <typename T>
void layernorm_bwd(const T* x, const T* mean, const T* rstd, const T* w, const T* dy, int64_t L, int64_t d, T* dx);

// Causal multi-head attention with grouped KV heads and an optional sliding window, as the forward
// computes it (model/attention.h: position i attends j in [first_key(i), i]).
struct AttnShape {
  int64_t L, n_heads, n_kv_heads, head_dim;
  int64_t window;  // 0 = none; else position i attends to j with i − window < j <= i
  double scale;    // 1/sqrt(head_dim)
};
// From da [L, H·hd] and the forward's q [L, H·hd] (after RoPE), k, v [L, KV·hd]: dq (overwritten)
// [L, H·hd], dk, dv (overwritten) [L, KV·hd]. The softmax probabilities are recomputed per head from q
// and k (S = scale · Q_h K_gᵀ by GEMM, then kernels::softmax_row over each row's keys) rather than
// stored by the forward. Work is split over KV heads.
template <typename T>
void attention_bwd(const AttnShape& s, const T* q, const T* k, const T* v, const T* da, T* dq, T* dk, T* dv, Isa isa,
                   ThreadPool* pool);

}  // namespace sq::calib
