// Row-wise operations of the forward pass (model/forward.h), templated on the scalar type: float for
// the engine and calibration, double for calibration's finite-difference tests. One definition each;
// the backward (calib/layer_ops.h) differentiates these. Shapes: x [n, dim] row-major.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

namespace sq {

// y[t] = x[t] · inv[t] · w, inv[t] = 1 / sqrt(mean_j x[t,j]² + eps)   (RMSNorm; the sum in double).
// inv may be null (inference does not keep it).
template <typename T>
void rmsnorm_rows(const T* x, const T* w, int64_t n, int64_t dim, double eps, T* y, T* inv);
// y = (x − mean)·rstd·w + b, biased variance as torch.nn.LayerNorm (sums in double). mean, rstd may be null.
template <typename T>
void layernorm_rows(const T* x, const T* w, const T* b, int64_t n, int64_t dim, double eps, T* y, T* mean, T* rstd);

// cos / sin of RoPE's angles for positions [0, positions): angle(p, i) = p · theta^(−2i/head_dim),
// i < head_dim / 2, computed in double. Built once (per engine, per calibration length).
template <typename T>
struct RopeTable {
  int64_t positions = 0, half = 0;
  std::vector<T> cos, sin;  // [positions, half]
  void build(int64_t n_positions, int64_t head_dim, double theta);
};
// Hugging Face rotate-half RoPE on x [n, n_heads·head_dim], row t at position pos[t] (< table
// positions): pairs (i, i + hd/2) rotate (a, b) -> (a·c − b·s, b·c + a·s). inverse rotates by −angle
// (the transpose: the backward of the forward rotation).
template <typename T>
void rope_rows(T* x, int64_t n, int64_t n_heads, int64_t head_dim, const int64_t* pos, const RopeTable<T>& table,
               bool inverse);

// The first key position a query at position p attends: p − window + 1 with a sliding window (> 0),
// else 0 (causal attention over positions first .. p).
inline int64_t attn_first_key(int64_t p, int64_t window) { return window > 0 && p - window + 1 > 0 ? p - window + 1 : 0; }

// y[t] += b for each of n rows of width dim.
template <typename T>
void add_bias_rows(T* y, const T* b, int64_t n, int64_t dim);

template <typename T>
inline T silu(T g) {
  return g / (T(1) + std::exp(-g));
}
template <typename T>
inline T relu(T g) {
  return g > T(0) ? g : T(0);
}

// log Σ_j exp(logits[j]) in double (max-shifted): the normaliser of log-softmax, shared by eval's NLL
// and calibration's loss.
double log_sum_exp(const float* logits, int64_t vocab);
double log_sum_exp(const double* logits, int64_t vocab);
// −log softmax(logits)[target] in double.
double token_nll(const float* logits, int64_t vocab, int32_t target);

}  // namespace sq
