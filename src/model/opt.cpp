// OPT decoder block (pre-LayerNorm, biases everywhere, ReLU MLP, learned positions added at the embedding):
//   x += out_proj(attn(q * hd^-0.5, k, v))  with q,k,v = proj(LN1(x)) + bias
//   x += fc2(relu(fc1(LN2(x))))
#include <cmath>
#include <cstring>

#include "model/ops.h"
#include "model/session.h"

namespace sq {

void opt_block(const Model& m, int64_t layer, Scratch& s, int64_t n, int64_t pos0, float* k_cache, float* v_cache,
               const ExecContext& ctx) {
  const ModelConfig& c = m.cfg;
  const LayerWeights& L = m.layers[layer];
  const int64_t H = c.hidden, hd = c.head_dim, qd = c.n_heads * hd, I = c.intermediate;

  layernorm(s.x.data(), L.attn_norm_w.data(), L.attn_norm_b.data(), s.xn.data(), n, H, c.norm_eps);
  L.q->matmul(s.xn.data(), n, s.q.data(), ctx);
  L.k->matmul(s.xn.data(), n, s.k.data(), ctx);
  L.v->matmul(s.xn.data(), n, s.v.data(), ctx);
  add_bias(s.q.data(), L.bq.data(), n, qd);
  add_bias(s.k.data(), L.bk.data(), n, qd);
  add_bias(s.v.data(), L.bv.data(), n, qd);
  std::memcpy(k_cache + pos0 * qd, s.k.data(), sizeof(float) * n * qd);
  std::memcpy(v_cache + pos0 * qd, s.v.data(), sizeof(float) * n * qd);
  // OPT scales q (after its bias) by hd^-0.5; scaling the scores instead is the same product.
  attention(s.q.data(), k_cache, v_cache, s.att.data(), n, pos0, c.n_heads, c.n_heads, hd, 0,
            float(1.0 / std::sqrt(double(hd))), ctx);
  L.o->matmul(s.att.data(), n, s.o.data(), ctx);
  add_bias(s.o.data(), L.bo.data(), n, H);
  for (int64_t i = 0; i < n * H; i++) s.x[i] += s.o[i];

  layernorm(s.x.data(), L.mlp_norm_w.data(), L.mlp_norm_b.data(), s.xn.data(), n, H, c.norm_eps);
  L.up->matmul(s.xn.data(), n, s.g.data(), ctx);
  add_bias(s.g.data(), L.bup.data(), n, I);
  relu(s.g.data(), n * I);
  L.down->matmul(s.g.data(), n, s.o.data(), ctx);
  add_bias(s.o.data(), L.bdown.data(), n, H);
  for (int64_t i = 0; i < n * H; i++) s.x[i] += s.o[i];
}

}  // namespace sq
