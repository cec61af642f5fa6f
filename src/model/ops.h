// Row-wise operations of the forward pass on f32 activations. Shapes: x [n, dim] row-major.
#pragma once
#include <cstdint>
#include <vector>

#include "core/context.h"

namespace sq {

// out[t] = x[t] / sqrt(mean(x[t]²) + eps) * w      (LLaMA RMSNorm; sums in double)
void rmsnorm(const float* x, const float* w, float* out, int64_t n, int64_t dim, double eps);
// out[t] = (x[t] - mean) / sqrt(var + eps) * w + b (biased variance, as torch.nn.LayerNorm)
void layernorm(const float* x, const float* w, const float* b, float* out, int64_t n, int64_t dim, double eps);
// Hugging Face rotate-half RoPE on x [n, n_heads * head_dim] for positions pos0 .. pos0+n-1:
// pairs (i, i + head_dim/2) rotate by pos * theta^(-2i/head_dim).
void rope(float* x, int64_t n, int64_t n_heads, int64_t head_dim, int64_t pos0, double theta);
void add_bias(float* y, const float* b, int64_t n, int64_t dim);
void silu_mul(float* g, const float* u, int64_t count);  // g = silu(g) * u
void relu(float* x, int64_t count);

// Causal attention of n new queries (positions pos0..pos0+n-1) over the KV cache rows 0..pos0+n-1.
// q [n, n_heads*hd], caches [ctx, n_kv*hd], out [n, n_heads*hd]. window > 0: query at p sees keys j with
// p - window < j <= p. scale multiplies q·k.
void attention(const float* q, const float* k_cache, const float* v_cache, float* out, int64_t n, int64_t pos0,
               int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t window, float scale,
               const ExecContext& ctx);

}  // namespace sq
