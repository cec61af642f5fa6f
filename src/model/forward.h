// The forward pass, written once: the token embedding, the decoder block and the final norm of every
// family (model/arch/), templated on the scalar type T and on a policy `Exec` that supplies what
// differs between callers (docs/ENGINE.md): the engine (src/engine/) runs it over a batch of rows of
// many sequences with a paged KV cache; calibration (calib/model.cpp) over one sequence, keeping every
// internal for its backward and observing every linear's input.
//
// Exec, for layer l:
//   const T* norm_weight(l, which), norm_bias(l, which)  which 0 = attention norm, 1 = MLP norm; bias null
//                                                         unless the family's norm has one
//   void linear(l, Role r, const T* x, int64_t n, T* y)  y [n, rows] = x [n, cols] · Wᵀ (no bias)
//   const T* bias(l, Role r)                              [rows] or null
//   const int64_t* positions()                            [n] position of each row
//   const RopeTable<T>& rope()                            covers every position
//   void attend(l, const T* q, const T* k, const T* v, int64_t n, T* a)
//       stores k, v [n, n_kv_heads·hd] at the rows' positions, then a [n, n_heads·hd] = causal
//       attention of each row over its sequence (attention_rows of model/attention.h)
//   void observe(l, const Role* roles, int n_roles, const T* x, int64_t n, int64_t cols)
//       x [n, cols] is the input of the linears `roles` (activation statistics; a no-op for inference)
#pragma once
#include <cmath>
#include <cstdint>

#include "io/config.h"
#include "model/arch/arch.h"
#include "model/ops.h"

namespace sq {

// What the block needs from the config and the description.
struct BlockShape {
  int64_t hidden = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, inter = 0;
  int64_t q_dim = 0, kv_dim = 0;  // n_heads·hd, n_kv_heads·hd
  double eps = 0;
  NormKind norm = NormKind::kRms;
  MlpKind mlp = MlpKind::kGated;
  ActKind act = ActKind::kSilu;
  bool rope = true;
  int64_t window = 0;              // sliding window (0 = none)
  double attn_scale = 1;           // multiplies q·k
  static BlockShape of(const ModelConfig& c) {
    const ArchDesc& a = *c.arch;
    BlockShape s;
    s.hidden = c.hidden;
    s.n_heads = c.n_heads;
    s.n_kv_heads = c.n_kv_heads;
    s.head_dim = c.head_dim;
    s.inter = c.intermediate;
    s.q_dim = c.n_heads * c.head_dim;
    s.kv_dim = c.n_kv_heads * c.head_dim;
    s.eps = c.norm_eps;
    s.norm = a.norm;
    s.mlp = a.mlp;
    s.act = a.act;
    s.rope = a.pos == PosKind::kRope;
    s.window = c.sliding_window;
    s.attn_scale = 1.0 / std::sqrt(double(c.head_dim));
    return s;
  }
  // First position a query at position p attends (the sliding window, else 0).
  int64_t first_key(int64_t p) const { return attn_first_key(p, window); }
};

// The activations of n rows through one block. Any buffer may alias another whose value is no longer
// needed (the engine lets out = x, n2 = n1, m = g); calibration keeps them apart for its backward.
template <typename T>
struct BlockActs {
  T* x = nullptr;                                 // [n, hidden] input (the residual stream)
  T* n1 = nullptr; T* mu1 = nullptr; T* r1 = nullptr;  // attention norm: output [n, hidden]; mean, 1/rms|std [n]
  T* q = nullptr; T* k = nullptr; T* v = nullptr;  // [n, q_dim], [n, kv_dim] x2, after bias and RoPE
  T* a = nullptr;                                 // [n, q_dim] attention output
  T* h = nullptr;                                 // [n, hidden] x + o(a)
  T* n2 = nullptr; T* mu2 = nullptr; T* r2 = nullptr;  // MLP norm
  T* g = nullptr;                                 // [n, inter] gate pre-activation (gated MLP)
  T* u = nullptr;                                 // [n, inter] up pre-activation
  T* m = nullptr;                                 // [n, inter] down's input
  T* out = nullptr;                               // [n, hidden] h + down(m)
};

// y = norm(x) by the family's norm kind; mu / r (each [n]) receive the statistics when not null.
template <typename T>
void apply_norm(const BlockShape& s, const T* x, const T* w, const T* b, int64_t n, T* y, T* mu, T* r) {
  if (s.norm == NormKind::kLayer) layernorm_rows(x, w, b, n, s.hidden, s.eps, y, mu, r);
  else rmsnorm_rows(x, w, n, s.hidden, s.eps, y, r);
}

template <typename T>
inline T activate(ActKind a, T g) {
  return a == ActKind::kSilu ? silu(g) : relu(g);
}

// y = x·Wᵀ + b for the linear of role r.
template <typename T, class Exec>
void project(Exec& ex, int64_t l, Role r, const T* x, int64_t n, T* y, int64_t rows) {
  ex.linear(l, r, x, n, y);
  if (const T* b = ex.bias(l, r)) add_bias_rows(y, b, n, rows);
}

template <typename T, class Exec>
void decoder_block(const BlockShape& s, Exec& ex, int64_t l, int64_t n, const BlockActs<T>& a) {
  const int64_t H = s.hidden, I = s.inter, nH = n * s.hidden, nI = n * s.inter;
  // Attention: q, k, v from the attention norm; RoPE at each row's position.
  apply_norm(s, a.x, ex.norm_weight(l, 0), ex.norm_bias(l, 0), n, a.n1, a.mu1, a.r1);
  static constexpr Role kQkv[] = {Role::kQ, Role::kK, Role::kV};
  ex.observe(l, kQkv, 3, a.n1, n, H);
  project(ex, l, Role::kQ, a.n1, n, a.q, s.q_dim);
  project(ex, l, Role::kK, a.n1, n, a.k, s.kv_dim);
  project(ex, l, Role::kV, a.n1, n, a.v, s.kv_dim);
  if (s.rope) {
    rope_rows(a.q, n, s.n_heads, s.head_dim, ex.positions(), ex.rope(), false);
    rope_rows(a.k, n, s.n_kv_heads, s.head_dim, ex.positions(), ex.rope(), false);
  }
  ex.attend(l, a.q, a.k, a.v, n, a.a);
  static constexpr Role kO[] = {Role::kO};
  ex.observe(l, kO, 1, a.a, n, s.q_dim);
  project(ex, l, Role::kO, a.a, n, a.h, H);
  for (int64_t i = 0; i < nH; i++) a.h[i] += a.x[i];  // h = x + o(a)

  // MLP from the MLP norm.
  apply_norm(s, a.h, ex.norm_weight(l, 1), ex.norm_bias(l, 1), n, a.n2, a.mu2, a.r2);
  if (s.mlp == MlpKind::kGated) {
    static constexpr Role kGateUp[] = {Role::kGate, Role::kUp};
    ex.observe(l, kGateUp, 2, a.n2, n, H);
    project(ex, l, Role::kGate, a.n2, n, a.g, I);
    project(ex, l, Role::kUp, a.n2, n, a.u, I);
    for (int64_t i = 0; i < nI; i++) a.m[i] = activate(s.act, a.g[i]) * a.u[i];
  } else {
    static constexpr Role kUp[] = {Role::kUp};
    ex.observe(l, kUp, 1, a.n2, n, H);
    project(ex, l, Role::kUp, a.n2, n, a.u, I);
    for (int64_t i = 0; i < nI; i++) a.m[i] = activate(s.act, a.u[i]);
  }
  static constexpr Role kDown[] = {Role::kDown};
  ex.observe(l, kDown, 1, a.m, n, I);
  project(ex, l, Role::kDown, a.m, n, a.out, H);
  for (int64_t i = 0; i < nH; i++) a.out[i] += a.h[i];  // out = h + down(m)
}

// x [n, hidden] = the token rows of the embedding (+ the learned position rows, at pos + pos_offset).
// read(which, row, float* dst) copies row `row` of the token table (which 0) or the position table
// (which 1) as f32; the caller has checked ids and positions against the tables.
template <typename T, class ReadRow>
void embed_rows(const ArchDesc& a, const int32_t* ids, const int64_t* pos, int64_t n, int64_t hidden,
                const ReadRow& read, float* row, float* prow, T* x) {
  for (int64_t t = 0; t < n; t++) {
    read(0, int64_t(ids[t]), row);
    if (a.pos == PosKind::kLearned) {
      read(1, pos[t] + a.pos_offset, prow);
      for (int64_t j = 0; j < hidden; j++) row[j] += prow[j];
    }
    for (int64_t j = 0; j < hidden; j++) x[t * hidden + j] = T(row[j]);
  }
}

}  // namespace sq
