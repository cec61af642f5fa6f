// LLaMA / Llama 2 / Vicuna / XGen / Mistral decoder block:
//   x += o_proj(attn(rope(q), rope(k), v))  with q,k,v = proj(rmsnorm(x))   (GQA, optional sliding window)
//   x += down_proj(silu(gate_proj(n)) * up_proj(n))                          with n = rmsnorm(x)
#include <cmath>
#include <cstring>

#include "model/ops.h"
#include "model/session.h"

namespace sq {

void llama_block(const Model& m, int64_t layer, Scratch& s, int64_t n, int64_t pos0, float* k_cache,
                 float* v_cache, const ExecContext& ctx) {
  const ModelConfig& c = m.cfg;
  const LayerWeights& L = m.layers[layer];
  const int64_t H = c.hidden, hd = c.head_dim, kvd = c.n_kv_heads * hd, I = c.intermediate;

  rmsnorm(s.x.data(), L.attn_norm_w.data(), s.xn.data(), n, H, c.norm_eps);
  L.q->matmul(s.xn.data(), n, s.q.data(), ctx);
  L.k->matmul(s.xn.data(), n, s.k.data(), ctx);
  L.v->matmul(s.xn.data(), n, s.v.data(), ctx);
  rope(s.q.data(), n, c.n_heads, hd, pos0, c.rope_theta);
  rope(s.k.data(), n, c.n_kv_heads, hd, pos0, c.rope_theta);
  std::memcpy(k_cache + pos0 * kvd, s.k.data(), sizeof(float) * n * kvd);
  std::memcpy(v_cache + pos0 * kvd, s.v.data(), sizeof(float) * n * kvd);
  attention(s.q.data(), k_cache, v_cache, s.att.data(), n, pos0, c.n_heads, c.n_kv_heads, hd, c.sliding_window,
            float(1.0 / std::sqrt(double(hd))), ctx);
  L.o->matmul(s.att.data(), n, s.o.data(), ctx);
  for (int64_t i = 0; i < n * H; i++) s.x[i] += s.o[i];

  rmsnorm(s.x.data(), L.mlp_norm_w.data(), s.xn.data(), n, H, c.norm_eps);
  L.gate->matmul(s.xn.data(), n, s.g.data(), ctx);
  L.up->matmul(s.xn.data(), n, s.u.data(), ctx);
  silu_mul(s.g.data(), s.u.data(), n * I);
  L.down->matmul(s.g.data(), n, s.o.data(), ctx);
  for (int64_t i = 0; i < n * H; i++) s.x[i] += s.o[i];
}

}  // namespace sq
