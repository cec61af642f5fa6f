#include "model/session.h"

#include <algorithm>

#include "core/error.h"
#include "model/ops.h"

namespace sq {

Session::Session(const Model& model, const ExecContext& ctx, int64_t max_ctx) : model_(model), ctx_(ctx) {
  const ModelConfig& c = model.cfg;
  max_ctx_ = max_ctx > 0 ? std::min(max_ctx, c.max_pos) : c.max_pos;
  const size_t kv = size_t(max_ctx_) * size_t(c.n_kv_heads * c.head_dim);
  for (int64_t l = 0; l < c.n_layers; l++) {
    k_cache_.emplace_back(new float[kv]);
    v_cache_.emplace_back(new float[kv]);
  }
  const size_t n = kChunk;
  s_.x.resize(n * c.hidden);
  s_.xn.resize(n * c.hidden);
  s_.q.resize(n * c.n_heads * c.head_dim);
  s_.att.resize(n * c.n_heads * c.head_dim);
  s_.k.resize(n * c.n_kv_heads * c.head_dim);
  s_.v.resize(n * c.n_kv_heads * c.head_dim);
  s_.o.resize(n * c.hidden);
  s_.g.resize(n * c.intermediate);
  s_.u.resize(n * c.intermediate);
}

void Session::forward(const int32_t* ids, int64_t n, std::vector<float>* logits, bool all_logits) {
  const int64_t V = model_.cfg.vocab_size;
  if (pos_ + n > max_ctx_)
    fail("context overflow: ", pos_, " + ", n, " tokens exceeds the context of ", max_ctx_, " tokens");
  for (int64_t i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= V) fail("token id ", ids[i], " is outside the vocabulary (", V, ")");
  logits->resize(size_t(all_logits ? n : 1) * V);
  for (int64_t b = 0; b < n; b += kChunk) {
    int64_t m = std::min(kChunk, n - b);
    bool last_chunk = b + m == n;
    float* out = all_logits ? logits->data() + b * V : (last_chunk ? logits->data() : nullptr);
    forward_chunk(ids + b, m, out, all_logits);
  }
}

void Session::forward_chunk(const int32_t* ids, int64_t n, float* logits, bool all_logits) {
  const Model& m = model_;
  const ModelConfig& c = m.cfg;
  const int64_t H = c.hidden;
  // Embedding rows, converted from the stored dtype.
  const size_t row_bytes = size_t(H) * dtype_size(m.embed->dtype);
  for (int64_t t = 0; t < n; t++)
    convert_to_f32(static_cast<const uint8_t*>(m.embed->data) + size_t(ids[t]) * row_bytes, m.embed->dtype,
                   s_.x.data() + t * H, H);
  if (c.arch == Arch::kOpt) {  // learned positions, offset 2 (rows 0 and 1 are reserved in OPT)
    std::vector<float> pe(H);
    const size_t pos_row_bytes = size_t(H) * dtype_size(m.pos_embed->dtype);
    for (int64_t t = 0; t < n; t++) {
      convert_to_f32(static_cast<const uint8_t*>(m.pos_embed->data) + size_t(pos_ + t + 2) * pos_row_bytes,
                     m.pos_embed->dtype, pe.data(), H);
      for (int64_t i = 0; i < H; i++) s_.x[t * H + i] += pe[i];
    }
  }
  for (int64_t l = 0; l < c.n_layers; l++) {
    if (c.arch == Arch::kOpt) opt_block(m, l, s_, n, pos_, k_cache_[l].get(), v_cache_[l].get(), ctx_);
    else llama_block(m, l, s_, n, pos_, k_cache_[l].get(), v_cache_[l].get(), ctx_);
  }
  pos_ += n;
  if (!logits) return;
  // Final norm and head: all rows, or only the last one when decoding.
  const int64_t first = all_logits ? 0 : n - 1, rows = n - first;
  const float* x = s_.x.data() + first * H;
  if (c.arch == Arch::kOpt) layernorm(x, m.final_norm_w.data(), m.final_norm_b.data(), s_.xn.data(), rows, H, c.norm_eps);
  else rmsnorm(x, m.final_norm_w.data(), s_.xn.data(), rows, H, c.norm_eps);
  m.head->matmul(s_.xn.data(), rows, logits, ctx_);
}

}  // namespace sq
