#include "calib/model.h"

#include <algorithm>
#include <cmath>

#include "calib/gemm.h"
#include "calib/layer_ops.h"
#include "core/error.h"

namespace sq {

using calib::gemm;
using calib::row_major;
using calib::transposed;

namespace {

// Index of each linear inside a layer (llama: q k v o gate up down; opt: q k v out fc1 fc2).
enum { kQ = 0, kK = 1, kV = 2, kO = 3, kGate = 4, kUp = 5, kDown = 6, kFc1 = 4, kFc2 = 5 };

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace

std::vector<LinearInfo> linear_infos(const ModelConfig& cfg, const TensorNames& names) {
  const int64_t d = cfg.hidden, qd = cfg.n_heads * cfg.head_dim, kvd = cfg.n_kv_heads * cfg.head_dim,
                I = cfg.intermediate;
  std::vector<LinearInfo> v;
  for (int64_t i = 0; i < cfg.n_layers; i++) {
    auto lin = names.linears(i);
    if (cfg.arch == Arch::kOpt) {
      const int64_t shp[6][2] = {{qd, d}, {kvd, d}, {kvd, d}, {d, qd}, {I, d}, {d, I}};
      for (int j = 0; j < 6; j++) v.push_back({lin[j], shp[j][0], shp[j][1]});
    } else {
      const int64_t shp[7][2] = {{qd, d}, {kvd, d}, {kvd, d}, {d, qd}, {I, d}, {I, d}, {d, I}};
      for (int j = 0; j < 7; j++) v.push_back({lin[j], shp[j][0], shp[j][1]});
    }
  }
  return v;
}

template <typename T>
struct CalibModel<T>::Impl {
  const ModelConfig cfg;
  const TensorNames names;
  const WeightSource& src;
  const ExecContext ctx;
  const bool opt;
  const int64_t d, H, KV, hd, qd, kvd, I, V, n_layers;
  std::vector<LinearInfo> infos;
  std::vector<T> head, fnorm_w, fnorm_b;  // head [V, d]

  struct Layer {
    std::vector<T> n1w, n1b, n2w, n2b;
    std::vector<T> w[7], b[7];  // weights [rows, cols], biases [rows] (opt)
    const LinearInfo* info[7] = {};
    int n_lin = 0;
  };
  // One layer's internals for one sequence (reused; vectors only grow).
  struct Cache {
    std::vector<T> n1, s1, mu1, q, k, v, P, a, h, n2, s2, mu2, g, u, m;
  };
  Layer layer;
  Cache cache;
  std::vector<T> rope_cos, rope_sin;
  int64_t rope_len = -1;
  // Gradient scratch.
  std::vector<T> dh, dm, dg, du, dn2, da, dq, dk, dv, dn1, xf, dxf, logit_blk, xs, gin, gout, tmp_out;
  std::vector<T> head_grad;  // [V, d] when only the head's Fisher is asked for

  Impl(const ModelConfig& c, const TensorNames& n, const WeightSource& s, const ExecContext& x)
      : cfg(c), names(n), src(s), ctx{x.pool, resolve_isa(x.isa)}, opt(c.arch == Arch::kOpt), d(c.hidden), H(c.n_heads), KV(c.n_kv_heads),
        hd(c.head_dim), qd(c.n_heads * c.head_dim), kvd(c.n_kv_heads * c.head_dim), I(c.intermediate),
        V(c.vocab_size), n_layers(c.n_layers) {
    if (opt && !cfg.opt_pre_norm)
      fail(src.describe(), ": OPT with do_layer_norm_before = false (post-norm) is not supported by calibration");
    infos = linear_infos(cfg, names);
    load(names.head, {V, d}, head);
    load(names.final_norm + ".weight", {d}, fnorm_w);
    if (opt) load(names.final_norm + ".bias", {d}, fnorm_b);
  }

  ThreadPool* pool() const { return ctx.pool; }

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
    const std::string n1 = names.attn_norm(i), n2 = names.mlp_norm(i);
    load(n1 + ".weight", {d}, Lw.n1w);
    load(n2 + ".weight", {d}, Lw.n2w);
    if (opt) {
      load(n1 + ".bias", {d}, Lw.n1b);
      load(n2 + ".bias", {d}, Lw.n2b);
    }
    Lw.n_lin = opt ? 6 : 7;
    for (int j = 0; j < Lw.n_lin; j++) {
      const LinearInfo& li = infos[size_t(i * Lw.n_lin + j)];
      Lw.info[j] = &li;
      load(li.prefix + ".weight", {li.rows, li.cols}, Lw.w[j]);
      if (opt) load(li.prefix + ".bias", {li.rows}, Lw.b[j]);
    }
  }

  // y[L, rows] = x[L, cols] · Wᵀ (+ b)
  void linear_fwd(int j, const T* x, int64_t L, T* y, bool accumulate = false) {
    const LinearInfo& li = *layer.info[j];
    gemm<T>(L, li.rows, li.cols, row_major(x, li.cols), transposed(layer.w[j].data(), li.cols), y, li.rows,
            accumulate, ctx.isa, pool());
    if (opt) {
      const T* b = layer.b[j].data();
      for (int64_t t = 0; t < L; t++)
        for (int64_t r = 0; r < li.rows; r++) y[t * li.rows + r] += b[r];
    }
  }
  // dx[L, cols] (+)= dy[L, rows] · W
  void linear_bwd_x(int j, const T* dy, int64_t L, T* dx, bool accumulate) {
    const LinearInfo& li = *layer.info[j];
    gemm<T>(L, li.cols, li.rows, row_major(dy, li.rows), row_major(layer.w[j].data(), li.cols), dx, li.cols,
            accumulate, ctx.isa, pool());
  }
  // dW[rows, cols] = dyᵀ · x, squared into the Fisher sum and/or stored.
  void linear_bwd_w(int j, const T* dy, const T* x, int64_t L, const GradSinks<T>& sinks) {
    const LinearInfo& li = *layer.info[j];
    auto f = sinks.fisher.find(li.prefix);
    if (f != sinks.fisher.end())
      calib::gemm_square_add<T>(li.rows, li.cols, L, transposed(dy, li.rows), row_major(x, li.cols), f->second,
                                li.cols, ctx.isa, pool());
    auto g = sinks.grad.find(li.prefix);
    if (g != sinks.grad.end())
      gemm<T>(li.rows, li.cols, L, transposed(dy, li.rows), row_major(x, li.cols), g->second, li.cols, false,
              ctx.isa, pool());
  }

  void add_stats(ActStats* st, std::initializer_list<int> lins, const T* x, int64_t L, int64_t cols) {
    std::vector<float> amax(size_t(cols), 0.f);
    std::vector<double> ss(size_t(cols), 0.0);
    for (int64_t t = 0; t < L; t++)
      for (int64_t c = 0; c < cols; c++) {
        const double v = double(x[t * cols + c]);
        amax[size_t(c)] = std::max(amax[size_t(c)], float(std::fabs(v)));
        ss[size_t(c)] += v * v;
      }
    for (int j : lins) {
      const std::string& p = layer.info[j]->prefix;
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

  calib::AttnShape attn_shape(int64_t L) const {
    return {L, H, KV, hd, cfg.sliding_window, 1.0 / std::sqrt(double(hd))};
  }

  void norm_fwd(const T* x, const std::vector<T>& w, const std::vector<T>& b, int64_t L, T* y, T* mu, T* s) {
    if (opt) calib::layernorm_fwd(x, w.data(), b.data(), L, d, cfg.norm_eps, y, mu, s);
    else calib::rmsnorm_fwd(x, w.data(), L, d, cfg.norm_eps, y, s);
  }
  void norm_bwd(const T* x, const T* mu, const T* s, const std::vector<T>& w, const T* dy, int64_t L, T* dx) {
    if (opt) calib::layernorm_bwd(x, mu, s, w.data(), dy, L, d, dx);
    else calib::rmsnorm_bwd(x, s, w.data(), dy, L, d, dx);
  }

  // Runs the loaded layer on x [L, d]: fills the cache; out [L, d] (skipped when null: a recompute
  // for the backward needs the internals, not the output).
  void layer_fwd(const T* x, int64_t L, T* out, ActStats* stats) {
    Cache& c = cache;
    const size_t Ld = size_t(L * d);
    c.n1.resize(Ld), c.s1.resize(size_t(L)), c.mu1.resize(size_t(L));
    c.q.resize(size_t(L * qd)), c.k.resize(size_t(L * kvd)), c.v.resize(size_t(L * kvd));
    c.P.resize(size_t(H * L * L)), c.a.resize(size_t(L * qd)), c.h.resize(Ld);
    c.n2.resize(Ld), c.s2.resize(size_t(L)), c.mu2.resize(size_t(L));
    c.g.resize(size_t(L * I)), c.m.resize(size_t(L * I));
    if (!opt) c.u.resize(size_t(L * I));

    norm_fwd(x, layer.n1w, layer.n1b, L, c.n1.data(), c.mu1.data(), c.s1.data());
    linear_fwd(kQ, c.n1.data(), L, c.q.data());
    linear_fwd(kK, c.n1.data(), L, c.k.data());
    linear_fwd(kV, c.n1.data(), L, c.v.data());
    if (!opt) {
      calib::rope_apply(c.q.data(), L, H, hd, rope_cos.data(), rope_sin.data(), false);
      calib::rope_apply(c.k.data(), L, KV, hd, rope_cos.data(), rope_sin.data(), false);
    }
    calib::attention_fwd(attn_shape(L), c.q.data(), c.k.data(), c.v.data(), c.P.data(), c.a.data(), ctx.isa, pool());
    std::copy(x, x + Ld, c.h.begin());
    linear_fwd(kO, c.a.data(), L, c.h.data(), /*accumulate=*/true);  // h = x + o_proj(a)
    norm_fwd(c.h.data(), layer.n2w, layer.n2b, L, c.n2.data(), c.mu2.data(), c.s2.data());
    const int down = opt ? kFc2 : kDown;
    if (opt) {
      linear_fwd(kFc1, c.n2.data(), L, c.g.data());
      for (size_t e = 0; e < size_t(L * I); e++) c.m[e] = c.g[e] > T(0) ? c.g[e] : T(0);
    } else {
      linear_fwd(kGate, c.n2.data(), L, c.g.data());
      linear_fwd(kUp, c.n2.data(), L, c.u.data());
      for (size_t e = 0; e < size_t(L * I); e++) {
        const T g = c.g[e];
        c.m[e] = g / (T(1) + std::exp(-g)) * c.u[e];  // silu(gate) * up
      }
    }
    if (out) {
      std::copy(c.h.begin(), c.h.begin() + Ld, out);
      linear_fwd(down, c.m.data(), L, out, /*accumulate=*/true);  // out = h + down(m)
    }
    if (stats) {
      add_stats(stats, {kQ, kK, kV}, c.n1.data(), L, d);
      add_stats(stats, {kO}, c.a.data(), L, qd);
      if (opt) add_stats(stats, {kFc1}, c.n2.data(), L, d);
      else add_stats(stats, {kGate, kUp}, c.n2.data(), L, d);
      add_stats(stats, {down}, c.m.data(), L, I);
    }
  }

  // Backward through the loaded layer whose cache holds its internals for input x. dout [L, d] is
  // the gradient of the loss w.r.t. the layer output; dx (if not null) receives it w.r.t. x.
  void layer_bwd(const T* x, int64_t L, const T* dout, T* dx, const GradSinks<T>& sinks) {
    Cache& c = cache;
    const size_t Ld = size_t(L * d), LI = size_t(L * I);
    dm.resize(LI), dg.resize(LI), dn2.resize(Ld), dh.resize(Ld);
    da.resize(size_t(L * qd)), dq.resize(size_t(L * qd)), dk.resize(size_t(L * kvd)), dv.resize(size_t(L * kvd));

    // MLP: out = h + down(m)
    const int down = opt ? kFc2 : kDown;
    linear_bwd_w(down, dout, c.m.data(), L, sinks);
    linear_bwd_x(down, dout, L, dm.data(), false);
    if (opt) {  // m = relu(g)
      for (size_t e = 0; e < LI; e++) dg[e] = c.g[e] > T(0) ? dm[e] : T(0);
      linear_bwd_w(kFc1, dg.data(), c.n2.data(), L, sinks);
      linear_bwd_x(kFc1, dg.data(), L, dn2.data(), false);
    } else {  // m = silu(g)·u, silu'(g) = σ(g)·(1 + g·(1 − σ(g)))
      du.resize(LI);
      for (size_t e = 0; e < LI; e++) {
        const T g = c.g[e], sg = T(1) / (T(1) + std::exp(-g));
        du[e] = dm[e] * g * sg;
        dg[e] = dm[e] * c.u[e] * sg * (T(1) + g * (T(1) - sg));
      }
      linear_bwd_w(kGate, dg.data(), c.n2.data(), L, sinks);
      linear_bwd_w(kUp, du.data(), c.n2.data(), L, sinks);
      linear_bwd_x(kGate, dg.data(), L, dn2.data(), false);
      linear_bwd_x(kUp, du.data(), L, dn2.data(), true);
    }
    std::copy(dout, dout + Ld, dh.begin());
    norm_bwd(c.h.data(), c.mu2.data(), c.s2.data(), layer.n2w, dn2.data(), L, dh.data());

    // Attention: h = x + o(a)
    linear_bwd_w(kO, dh.data(), c.a.data(), L, sinks);
    linear_bwd_x(kO, dh.data(), L, da.data(), false);
    calib::attention_bwd(attn_shape(L), c.q.data(), c.k.data(), c.v.data(), c.P.data(), da.data(), dq.data(),
                         dk.data(), dv.data(), ctx.isa, pool());
    if (!opt) {
      calib::rope_apply(dq.data(), L, H, hd, rope_cos.data(), rope_sin.data(), true);
      calib::rope_apply(dk.data(), L, KV, hd, rope_cos.data(), rope_sin.data(), true);
    }
    linear_bwd_w(kQ, dq.data(), c.n1.data(), L, sinks);
    linear_bwd_w(kK, dk.data(), c.n1.data(), L, sinks);
    linear_bwd_w(kV, dv.data(), c.n1.data(), L, sinks);
    if (!dx) return;  // layer 0: nothing below needs a gradient
    dn1.resize(Ld);
    linear_bwd_x(kQ, dq.data(), L, dn1.data(), false);
    linear_bwd_x(kK, dk.data(), L, dn1.data(), true);
    linear_bwd_x(kV, dv.data(), L, dn1.data(), true);
    std::copy(dh.begin(), dh.begin() + Ld, dx);
    norm_bwd(x, c.mu1.data(), c.s1.data(), layer.n1w, dn1.data(), L, dx);
  }

  void check_ids(const std::vector<int32_t>& ids) {
    const int64_t L = int64_t(ids.size());
    if (L < 2) fail("calibration: a sequence needs at least 2 tokens (got ", L, ")");
    if (L > cfg.max_pos)
      fail("calibration: sequence of ", L, " tokens exceeds the model context of ", cfg.max_pos, " tokens");
    for (int32_t id : ids)
      if (id < 0 || id >= V) fail("calibration: token id ", id, " out of range for vocabulary of ", V);
    if (!opt && rope_len != L) {
      calib::rope_tables(L, hd, cfg.rope_theta, &rope_cos, &rope_sin);
      rope_len = L;
    }
  }

  // x0 [L, d] = embed[ids] (+ pos_embed[t + 2] for OPT).
  void embed(const std::vector<int32_t>& ids, T* x0) {
    const int64_t L = int64_t(ids.size());
    if (!src.has(names.embed)) fail(src.describe(), ": tensor '", names.embed, "' not found");
    if (src.shape(names.embed) != std::vector<int64_t>{V, d})
      fail(src.describe(), ": tensor '", names.embed, "' has shape ", shape_str(src.shape(names.embed)),
           " but the config implies ", shape_str({V, d}));
    std::vector<float> row(static_cast<size_t>(d)), prow(static_cast<size_t>(d));
    if (opt) {
      if (!src.has(names.pos_embed)) fail(src.describe(), ": tensor '", names.pos_embed, "' not found");
      auto ps = src.shape(names.pos_embed);
      if (ps.size() != 2 || ps[1] != d || ps[0] < L + 2)
        fail(src.describe(), ": tensor '", names.pos_embed, "' has shape ", shape_str(ps), ", too small for ", L,
             " positions (+2 offset) of width ", d);
    }
    for (int64_t t = 0; t < L; t++) {
      src.read_rows(names.embed, ids[size_t(t)], 1, row.data());
      if (opt) {
        src.read_rows(names.pos_embed, t + 2, 1, prow.data());
        for (int64_t j = 0; j < d; j++) row[size_t(j)] += prow[size_t(j)];
      }
      for (int64_t j = 0; j < d; j++) x0[t * d + j] = T(row[size_t(j)]);
    }
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
    norm_fwd(x, fnorm_w, fnorm_b, L, xf.data(), mu.data(), s.data());
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
          T mx = l[0];
          for (int64_t j = 1; j < V; j++) mx = std::max(mx, l[j]);
          double se = 0;
          for (int64_t j = 0; j < V; j++) se += std::exp(double(l[j] - mx));
          const double lse = double(mx) + std::log(se);
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
      layer_fwd(gin.data(), L, gout.data(), stats);
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
      layer_fwd(xs.data() + i * Ld, L, xs.data() + (i + 1) * Ld, stats);
    }
    if (stats) stats->tokens += L;
    gout.resize(Ld);
    gin.resize(Ld);
    const double loss = head_loss(xs.data() + n_layers * Ld, ids, gout.data(), nullptr, &sinks);
    for (int64_t i = n_layers - 1; i >= 0; i--) {
      if (i != n_layers - 1) {  // the top layer's weights and internals are still loaded
        load_layer(i);
        layer_fwd(xs.data() + i * Ld, L, nullptr, nullptr);
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
