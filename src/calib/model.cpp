#include "calib/model.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "calib/gemm.h"
#include "calib/layer_ops.h"
#include "core/error.h"
#include "model/attention.h"
#include "model/forward.h"

namespace sq {

using calib::gemm;
using calib::row_major;
using calib::transposed;

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace

std::vector<LinearInfo> linear_infos(const ModelConfig& cfg, const TensorNames& names) {
  std::vector<LinearInfo> v;
  for (int64_t i = 0; i < cfg.n_layers; i++)
    for (const LinearDesc& l : cfg.arch->linears)
      v.push_back({names.layer_prefix(i) + l.name, dim(cfg, l.out), dim(cfg, l.in)});
  return v;
}

template <typename T>
struct CalibModel<T>::Impl {
  const ModelConfig cfg;
  const TensorNames names;
  const WeightSource& src;
  const ExecContext ctx;
  const BlockShape shape;
  const int64_t d, H, KV, hd, qd, kvd, I, V, n_layers;
  std::vector<LinearInfo> infos;
  std::vector<T> head, fnorm_w, fnorm_b;  // head [V, d]

  // The loaded layer's weights in T, by role.
  struct Layer {
    std::vector<T> nw[2], nb[2];
    std::vector<T> w[kRoles], b[kRoles];  // weights [rows, cols], biases [rows]
    const LinearInfo* info[kRoles] = {};
  };
  // One layer's internals for one sequence (reused; vectors only grow).
  struct Cache {
    std::vector<T> n1, s1, mu1, q, k, v, a, h, n2, s2, mu2, g, u, m, out;
  };
  Layer layer;
  Cache cache;
  RopeTable<T> rope;
  std::vector<int64_t> positions;  // 0 .. L-1
  // Attention scratch: one span per row (its own rows first_key .. i), per-thread scores.
  std::vector<kernels::KvSpanT<T>> spans;
  std::vector<int64_t> span_begin;
  std::vector<std::vector<T>> scores;
  std::vector<T*> score_ptrs;
  // Gradient scratch.
  std::vector<T> dh, dm, dg, du, dn2, da, dq, dk, dv, dn1, xf, dxf, logit_blk, xs, gin, gout;
  std::vector<T> head_grad;  // [V, d] when only the head's Fisher is asked for

  Impl(const ModelConfig& c, const TensorNames& n, const WeightSource& s, const ExecContext& x)
      : cfg(c), names(n), src(s), ctx{x.pool, resolve_isa(x.isa)}, shape(BlockShape::of(c)), d(c.hidden),
        H(c.n_heads), KV(c.n_kv_heads), hd(c.head_dim), qd(c.n_heads * c.head_dim), kvd(c.n_kv_heads * c.head_dim),
        I(c.intermediate), V(c.vocab_size), n_layers(c.n_layers) {
    infos = linear_infos(cfg, names);
    load(names.head, {V, d}, head);
    load(names.final_norm + ".weight", {d}, fnorm_w);
    if (cfg.arch->norm_bias()) load(names.final_norm + ".bias", {d}, fnorm_b);
  }

  ThreadPool* pool() const { return ctx.pool; }
  const ArchDesc& arch() const { return *cfg.arch; }

  // Reads tensor `name` (checked against `expect`) into out as T, row blocks spread over the pool.
  void load(const std::string& name, const std::vector<int64_t>& expect, std::vector<T>& out) {
    if (!src.has(name)) fail(src.describe(), ": tensor '", name, "' not found");
    auto shp = src.shape(name);
    if (shp != expect)
      fail(src.describe(), ": tensor '", name, "' has shape ", shape_str(shp), " but the config implies ",
           shape_str(expect));
    const int64_t rows = expect[0], cols = expect.size() > 1 ? expect[1] : 1;
    out.resize(size_t(rows * cols));
    const size_t grain = size_t(std::max<int64_t>(1, (1 << 16) / cols));
    auto body = [&](size_t b, size_t e, int) {
      if constexpr (std::is_same_v<T, float>) {
        src.read_rows(name, int64_t(b), int64_t(e - b), out.data() + b * cols);
      } else {
        std::vector<float> tmp((e - b) * cols);
        src.read_rows(name, int64_t(b), int64_t(e - b), tmp.data());
        std::copy(tmp.begin(), tmp.end(), out.begin() + b * cols);
      }
    };
    if (pool()) pool()->parallel_for(size_t(rows), grain, body);
    else body(0, size_t(rows), 0);
  }

  void load_layer(int64_t i) {
    Layer& Lw = layer;
    for (int which = 0; which < 2; which++) {
      const std::string nn = names.norm(i, which);
      load(nn + ".weight", {d}, Lw.nw[which]);
      if (arch().norm_bias()) load(nn + ".bias", {d}, Lw.nb[which]);
    }
    const size_t per_layer = arch().linears.size();
    for (size_t j = 0; j < per_layer; j++) {
      const LinearDesc& ld = arch().linears[j];
      const LinearInfo& li = infos[size_t(i) * per_layer + j];
      const int r = role_index(ld.role);
      Lw.info[r] = &li;
      load(li.prefix + ".weight", {li.rows, li.cols}, Lw.w[r]);
      if (ld.bias) load(li.prefix + ".bias", {li.rows}, Lw.b[r]);
    }
  }

  // The forward's policy (model/forward.h) for one sequence of positions 0 .. L-1.
  struct Exec {
    Impl& m;
    ActStats* stats;
    const T* norm_weight(int64_t, int which) const { return m.layer.nw[which].data(); }
    const T* norm_bias(int64_t, int which) const {
      return m.layer.nb[which].empty() ? nullptr : m.layer.nb[which].data();
    }
    // y[L, rows] = x[L, cols] · Wᵀ
    void linear(int64_t, Role r, const T* x, int64_t L, T* y) const {
      const LinearInfo& li = *m.layer.info[role_index(r)];
      gemm<T>(L, li.rows, li.cols, row_major(x, li.cols), transposed(m.layer.w[role_index(r)].data(), li.cols), y,
              li.rows, false, m.ctx.isa, m.pool());
    }
    const T* bias(int64_t, Role r) const {
      const auto& b = m.layer.b[role_index(r)];
      return b.empty() ? nullptr : b.data();
    }
    const int64_t* positions() const { return m.positions.data(); }
    const RopeTable<T>& rope() const { return m.rope; }
    // k, v stay in the cache's buffers: row i attends rows first_key(i) .. i of them.
    void attend(int64_t, const T* q, const T* k, const T* v, int64_t L, T* a) const {
      for (int64_t i = 0; i < L; i++) {
        const int64_t lo = m.shape.first_key(i);
        m.spans[size_t(i)] = {k + lo * m.kvd, v + lo * m.kvd, size_t(i - lo + 1)};
        m.span_begin[size_t(i)] = i;
      }
      m.span_begin[size_t(L)] = L;
      const auto ar = AttnRows<T>::of(m.shape, q, L, m.spans.data(), m.span_begin.data(), a);
      attention_rows(ar, m.score_ptrs.data(), m.ctx);
    }
    void observe(int64_t, const Role* roles, int n_roles, const T* x, int64_t L, int64_t cols) const {
      if (stats) m.add_stats(stats, roles, n_roles, x, L, cols);
    }
  };

  // dx[L, cols] (+)= dy[L, rows] · W
  void linear_bwd_x(Role r, const T* dy, int64_t L, T* dx, bool accumulate) {
    const LinearInfo& li = *layer.info[role_index(r)];
    gemm<T>(L, li.cols, li.rows, row_major(dy, li.rows), row_major(layer.w[role_index(r)].data(), li.cols), dx,
            li.cols, accumulate, ctx.isa, pool());
  }
  // dW[rows, cols] = dyᵀ · x, squared into the Fisher sum and/or stored.
  void linear_bwd_w(Role r, const T* dy, const T* x, int64_t L, const GradSinks<T>& sinks) {
    const LinearInfo& li = *layer.info[role_index(r)];
    auto f = sinks.fisher.find(li.prefix);
    if (f != sinks.fisher.end())
      calib::gemm_square_add<T>(li.rows, li.cols, L, transposed(dy, li.rows), row_major(x, li.cols), f->second,
                                li.cols, ctx.isa, pool());
    auto g = sinks.grad.find(li.prefix);
    if (g != sinks.grad.end())
      gemm<T>(li.rows, li.cols, L, transposed(dy, li.rows), row_major(x, li.cols), g->second, li.cols, false,
              ctx.isa, pool());
  }

  void add_stats(ActStats* st, const Role* roles, int n_roles, const T* x, int64_t L, int64_t cols) {
    std::vector<float> amax(size_t(cols), 0.f);
    std::vector<double> ss(size_t(cols), 0.0);
    for (int64_t t = 0; t < L; t++)
      for (int64_t c = 0; c < cols; c++) {
        const double v = double(x[t * cols + c]);
        amax[size_t(c)] = std::max(amax[size_t(c)], float(std::fabs(v)));
        ss[size_t(c)] += v * v;
      }
    for (int j = 0; j < n_roles; j++) {
      const std::string& p = layer.info[role_index(roles[j])]->prefix;
      auto& a = st->absmax[p];
      auto& s = st->sumsq[p];
      if (a.empty()) {
        a.assign(size_t(cols), 0.f);
        s.assign(size_t(cols), 0.0);
      }
      for (int64_t c = 0; c < cols; c++) {
        a[size_t(c)] = std::max(a[size_t(c)], amax[size_t(c)]);
        s[size_t(c)] += ss[size_t(c)];
      }
    }
  }

  void norm_bwd(const T* x, const T* mu, const T* s, const std::vector<T>& w, const T* dy, int64_t L, T* dx) {
    if (shape.norm == NormKind::kLayer) calib::layernorm_bwd(x, mu, s, w.data(), dy, L, d, dx);
    else calib::rmsnorm_bwd(x, s, w.data(), dy, L, d, dx);
  }

  // Runs the loaded layer on x [L, d] through the one forward, keeping its internals in the cache; out
  // [L, d] (a scratch when null: a recompute for the backward needs the internals, not the output).
  void layer_fwd(int64_t layer_index, const T* x, int64_t L, T* out, ActStats* stats) {
    Cache& c = cache;
    const size_t Ld = size_t(L * d);
    c.n1.resize(Ld), c.s1.resize(size_t(L)), c.mu1.resize(size_t(L));
    c.q.resize(size_t(L * qd)), c.k.resize(size_t(L * kvd)), c.v.resize(size_t(L * kvd));
    c.a.resize(size_t(L * qd)), c.h.resize(Ld);
    c.n2.resize(Ld), c.s2.resize(size_t(L)), c.mu2.resize(size_t(L));
    c.g.resize(size_t(L * I)), c.u.resize(size_t(L * I)), c.m.resize(size_t(L * I));
    if (!out) {
      c.out.resize(Ld);
      out = c.out.data();
    }
    BlockActs<T> a;
    a.x = const_cast<T*>(x);  // read only: out never aliases x here
    a.n1 = c.n1.data(), a.mu1 = c.mu1.data(), a.r1 = c.s1.data();
    a.q = c.q.data(), a.k = c.k.data(), a.v = c.v.data(), a.a = c.a.data(), a.h = c.h.data();
    a.n2 = c.n2.data(), a.mu2 = c.mu2.data(), a.r2 = c.s2.data();
    a.g = c.g.data(), a.u = c.u.data(), a.m = c.m.data(), a.out = out;
    Exec ex{*this, stats};
    decoder_block(shape, ex, layer_index, L, a);
  }

  // Backward through the loaded layer whose cache holds its internals for input x. dout [L, d] is
  // the gradient of the loss w.r.t. the layer output; dx (if not null) receives it w.r.t. x.
  void layer_bwd(const T* x, int64_t L, const T* dout, T* dx, const GradSinks<T>& sinks) {
    Cache& c = cache;
    const size_t Ld = size_t(L * d), LI = size_t(L * I);
    dm.resize(LI), dg.resize(LI), dn2.resize(Ld), dh.resize(Ld);
    da.resize(size_t(L * qd)), dq.resize(size_t(L * qd)), dk.resize(size_t(L * kvd)), dv.resize(size_t(L * kvd));

    // MLP: out = h + down(m)
    linear_bwd_w(Role::kDown, dout, c.m.data(), L, sinks);
    linear_bwd_x(Role::kDown, dout, L, dm.data(), false);
    if (shape.mlp == MlpKind::kPlain) {  // m = act(u): relu' = [u > 0]
      SQ_CHECK(shape.act == ActKind::kRelu, "calibration: the backward of a plain MLP needs relu");
      du.resize(LI);
      for (size_t e = 0; e < LI; e++) du[e] = c.u[e] > T(0) ? dm[e] : T(0);
      linear_bwd_w(Role::kUp, du.data(), c.n2.data(), L, sinks);
      linear_bwd_x(Role::kUp, du.data(), L, dn2.data(), false);
    } else {  // m = silu(g)·u, silu'(g) = σ(g)·(1 + g·(1 − σ(g)))
      SQ_CHECK(shape.act == ActKind::kSilu, "calibration: the backward of a gated MLP needs silu");
      du.resize(LI);
      for (size_t e = 0; e < LI; e++) {
        const T g = c.g[e], sg = T(1) / (T(1) + std::exp(-g));
        du[e] = dm[e] * g * sg;
        dg[e] = dm[e] * c.u[e] * sg * (T(1) + g * (T(1) - sg));
      }
      linear_bwd_w(Role::kGate, dg.data(), c.n2.data(), L, sinks);
      linear_bwd_w(Role::kUp, du.data(), c.n2.data(), L, sinks);
      linear_bwd_x(Role::kGate, dg.data(), L, dn2.data(), false);
      linear_bwd_x(Role::kUp, du.data(), L, dn2.data(), true);
    }
    std::copy(dout, dout + Ld, dh.begin());
    norm_bwd(c.h.data(), c.mu2.data(), c.s2.data(), layer.nw[1], dn2.data(), L, dh.data());

    // Attention: h = x + o(a)
    linear_bwd_w(Role::kO, dh.data(), c.a.data(), L, sinks);
    linear_bwd_x(Role::kO, dh.data(), L, da.data(), false);
    calib::attention_bwd<T>({L, H, KV, hd, shape.window, shape.attn_scale}, c.q.data(), c.k.data(), c.v.data(),
                            da.data(), dq.data(), dk.data(), dv.data(), ctx.isa, pool());
    if (shape.rope) {
      rope_rows(dq.data(), L, H, hd, positions.data(), rope, true);
      rope_rows(dk.data(), L, KV, hd, positions.data(), rope, true);
    }
    linear_bwd_w(Role::kQ, dq.data(), c.n1.data(), L, sinks);
    linear_bwd_w(Role::kK, dk.data(), c.n1.data(), L, sinks);
    linear_bwd_w(Role::kV, dv.data(), c.n1.data(), L, sinks);
    if (!dx) return;  // layer 0: nothing below needs a gradient
    dn1.resize(Ld);
    linear_bwd_x(Role::kQ, dq.data(), L, dn1.data(), false);
    linear_bwd_x(Role::kK, dk.data(), L, dn1.data(), true);
    linear_bwd_x(Role::kV, dv.data(), L, dn1.data(), true);
    std::copy(dh.begin(), dh.begin() + Ld, dx);
    norm_bwd(x, c.mu1.data(), c.s1.data(), layer.nw[0], dn1.data(), L, dx);
  }

  void check_ids(const std::vector<int32_t>& ids) {
    const int64_t L = int64_t(ids.size());
    if (L < 2) fail("calibration: a sequence needs at least 2 tokens (got ", L, ")");
    if (L > cfg.max_pos)
      fail("calibration: sequence of ", L, " tokens exceeds the model context of ", cfg.max_pos, " tokens");
    for (int32_t id : ids)
      if (id < 0 || id >= V) fail("calibration: token id ", id, " out of range for vocabulary of ", V);
    if (int64_t(positions.size()) != L) {
      positions.resize(size_t(L));
      std::iota(positions.begin(), positions.end(), int64_t(0));
      if (shape.rope) rope.build(L, hd, cfg.rope_theta);
      spans.resize(size_t(L));
      span_begin.resize(size_t(L + 1));
      scores.assign(size_t(pool() ? pool()->size() : 1), std::vector<T>(size_t(L)));
      score_ptrs.clear();
      for (auto& s : scores) score_ptrs.push_back(s.data());
    }
  }

  // x0 [L, d] = the embedding rows of ids (+ learned positions).
  void embed(const std::vector<int32_t>& ids, T* x0) {
    const int64_t L = int64_t(ids.size());
    if (!src.has(names.embed)) fail(src.describe(), ": tensor '", names.embed, "' not found");
    if (src.shape(names.embed) != std::vector<int64_t>{V, d})
      fail(src.describe(), ": tensor '", names.embed, "' has shape ", shape_str(src.shape(names.embed)),
           " but the config implies ", shape_str({V, d}));
    if (arch().pos == PosKind::kLearned) {
      if (!src.has(names.pos_embed)) fail(src.describe(), ": tensor '", names.pos_embed, "' not found");
      auto ps = src.shape(names.pos_embed);
      if (ps.size() != 2 || ps[1] != d || ps[0] < L + arch().pos_offset)
        fail(src.describe(), ": tensor '", names.pos_embed, "' has shape ", shape_str(ps), ", too small for ", L,
             " positions (+", arch().pos_offset, " offset) of width ", d);
    }
    std::vector<float> row(static_cast<size_t>(d)), prow(static_cast<size_t>(d));
    auto read = [&](int which, int64_t r, float* dst) { src.read_rows(which == 0 ? names.embed : names.pos_embed, r, 1, dst); };
    embed_rows(arch(), ids.data(), positions.data(), L, d, read, row.data(), prow.data(), x0);
  }

  // Final norm, head and mean cross-entropy of x [L, d]; if dx is given it receives ∂loss/∂x, and the
  // sinks of the head's prefix (an untied head only) its gradient dW = dlogitsᵀ · xf [V, d], summed over
  // the position blocks before it is squared into a Fisher sink (the Fisher is per sequence).
  // Logits are made one block of positions at a time ([block, vocab], about 16 MiB in f32).
  double head_loss(const T* x, const std::vector<int32_t>& ids, T* dx, std::vector<float>* logits,
                   const GradSinks<T>* sinks = nullptr) {
    const int64_t L = int64_t(ids.size());
    xf.resize(size_t(L * d));
    std::vector<T> mu(static_cast<size_t>(L)), s(static_cast<size_t>(L));
    apply_norm(shape, x, fnorm_w.data(), fnorm_b.empty() ? nullptr : fnorm_b.data(), L, xf.data(), mu.data(), s.data());
    if (dx) dxf.assign(size_t(L * d), T(0));
    if (logits) logits->resize(size_t(L * V));
    const int64_t PB = std::clamp<int64_t>((int64_t(1) << 22) / V, 16, 256);
    logit_blk.resize(size_t(std::min(PB, L) * V));
    std::vector<double> row_loss(size_t(L), 0.0);
    const T inv_n = T(1.0 / double(L - 1));
    T* head_g = nullptr;
    float* head_f = nullptr;
    if (dx && sinks && !names.head_is_embed) {
      const std::string hp = head_prefix(names);
      if (auto g = sinks->grad.find(hp); g != sinks->grad.end()) head_g = g->second;
      if (auto f = sinks->fisher.find(hp); f != sinks->fisher.end()) head_f = f->second;
      if (head_f && !head_g) {
        head_grad.resize(size_t(V * d));
        head_g = head_grad.data();
      }
    }
    for (int64_t b0 = 0; b0 < L; b0 += PB) {
      const int64_t nb = std::min(PB, L - b0);
      T* lg = logit_blk.data();
      gemm<T>(nb, V, d, row_major(xf.data() + b0 * d, d), transposed(head.data(), d), lg, V, false, ctx.isa, pool());
      if (logits)
        for (int64_t e = 0; e < nb * V; e++) (*logits)[size_t(b0 * V + e)] = float(lg[e]);
      auto rows = [&](size_t rb, size_t re, int) {
        for (size_t r = rb; r < re; r++) {
          const int64_t t = b0 + int64_t(r);
          T* l = lg + r * V;
          if (t + 1 >= L) {  // the last position predicts nothing
            if (dx) std::fill(l, l + V, T(0));
            continue;
          }
          const int32_t target = ids[size_t(t + 1)];
          const double lse = log_sum_exp(l, V);
          row_loss[size_t(t)] = lse - double(l[target]);
          if (dx) {  // d(mean CE)/dlogits = (softmax − onehot) / (L − 1)
            for (int64_t j = 0; j < V; j++) l[j] = T(std::exp(double(l[j]) - lse)) * inv_n;
            l[target] -= inv_n;
          }
        }
      };
      if (pool()) pool()->parallel_for(size_t(nb), 1, rows);
      else rows(0, size_t(nb), 0);
      if (dx)
        gemm<T>(nb, d, V, row_major<T>(lg, V), row_major(head.data(), d), dxf.data() + b0 * d, d, false, ctx.isa,
                pool());
      if (head_g)  // rows of positions that predict nothing are zero
        gemm<T>(V, d, nb, transposed<T>(lg, V), row_major(xf.data() + b0 * d, d), head_g, d, b0 > 0, ctx.isa,
                pool());
    }
    if (head_f) {
      auto sq = [&](size_t b, size_t e, int) {
        for (size_t i = b; i < e; i++) head_f[i] += float(head_g[i] * head_g[i]);
      };
      if (pool()) pool()->parallel_for(size_t(V * d), 4096, sq);
      else sq(0, size_t(V * d), 0);
    }
    double loss = 0;
    for (int64_t t = 0; t + 1 < L; t++) loss += row_loss[size_t(t)];
    loss /= double(L - 1);
    if (dx) {
      std::fill(dx, dx + L * d, T(0));
      norm_bwd(x, mu.data(), s.data(), fnorm_w, dxf.data(), L, dx);
    }
    return loss;
  }

  double forward(const std::vector<int32_t>& ids, std::vector<float>* logits, ActStats* stats) {
    check_ids(ids);
    const int64_t L = int64_t(ids.size());
    gin.resize(size_t(L * d));
    gout.resize(size_t(L * d));
    embed(ids, gin.data());
    for (int64_t i = 0; i < n_layers; i++) {
      load_layer(i);
      layer_fwd(i, gin.data(), L, gout.data(), stats);
      std::swap(gin, gout);
    }
    if (stats) stats->tokens += L;
    return head_loss(gin.data(), ids, nullptr, logits);
  }

  double forward_backward(const std::vector<int32_t>& ids, const GradSinks<T>& sinks, ActStats* stats) {
    check_ids(ids);
    const int64_t L = int64_t(ids.size());
    const size_t Ld = size_t(L * d);
    xs.resize(size_t(n_layers + 1) * Ld);  // xs[i] = input of layer i; xs[n_layers] = final hidden
    embed(ids, xs.data());
    for (int64_t i = 0; i < n_layers; i++) {
      load_layer(i);
      layer_fwd(i, xs.data() + i * Ld, L, xs.data() + (i + 1) * Ld, stats);
    }
    if (stats) stats->tokens += L;
    gout.resize(Ld);
    gin.resize(Ld);
    const double loss = head_loss(xs.data() + n_layers * Ld, ids, gout.data(), nullptr, &sinks);
    for (int64_t i = n_layers - 1; i >= 0; i--) {
      if (i != n_layers - 1) {  // the top layer's weights and internals are still loaded
        load_layer(i);
        layer_fwd(i, xs.data() + i * Ld, L, nullptr, nullptr);
      }
      layer_bwd(xs.data() + i * Ld, L, gout.data(), i > 0 ? gin.data() : nullptr, sinks);
      std::swap(gin, gout);
    }
    return loss;
  }
};

template <typename T>
CalibModel<T>::CalibModel(const ModelConfig& cfg, const TensorNames& names, const WeightSource& weights,
                          const ExecContext& ctx)
    : impl_(std::make_unique<Impl>(cfg, names, weights, ctx)) {}

template <typename T>
CalibModel<T>::~CalibModel() = default;

template <typename T>
double CalibModel<T>::forward(const std::vector<int32_t>& ids, std::vector<float>* logits, ActStats* stats) {
  return impl_->forward(ids, logits, stats);
}

template <typename T>
double CalibModel<T>::forward_backward(const std::vector<int32_t>& ids, const GradSinks<T>& sinks, ActStats* stats) {
  return impl_->forward_backward(ids, sinks, stats);
}

template <typename T>
const std::vector<LinearInfo>& CalibModel<T>::linears() const {
  return impl_->infos;
}

template class CalibModel<float>;
template class CalibModel<double>;

}  // namespace sq
