#include "engine/engine.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "model/attention.h"

namespace sq {

// The forward's policy for inference (model/forward.h): LinearWeight matmuls, the paged KV cache.
struct Engine::Exec {
  Engine& e;
  const BatchRow* rows;

  const LayerWeights& L(int64_t l) const { return e.model_.layers[size_t(l)]; }
  const float* norm_weight(int64_t l, int which) const { return L(l).norm_w[which].data(); }
  const float* norm_bias(int64_t l, int which) const {
    return L(l).norm_b[which].empty() ? nullptr : L(l).norm_b[which].data();
  }
  void linear(int64_t l, Role r, const float* x, int64_t n, float* y) const { L(l).linear(r)->matmul(x, n, y, e.ctx_); }
  const float* bias(int64_t l, Role r) const { return L(l).bias_of(r); }
  const int64_t* positions() const { return e.pos_.data(); }
  const RopeTable<float>& rope() const { return e.rope_; }
  void observe(int64_t, const Role*, int, const float*, int64_t, int64_t) const {}

  // Stores each row's k, v at (sequence, position), then attends each row over its sequence's blocks.
  void attend(int64_t l, const float* q, const float* k, const float* v, int64_t n, float* a) const {
    const int64_t kvd = e.shape_.kv_dim, B = KvCache::kBlockTokens;
    KvCache& kv = e.kv_;
    for (int64_t i = 0; i < n; i++) {
      const Sequence& s = e.seqs_[size_t(rows[i].seq)];
      const int64_t p = rows[i].pos;
      const int32_t b = s.blocks[size_t(p / B)];
      std::memcpy(kv.k(b, l) + (p % B) * kvd, k + i * kvd, sizeof(float) * size_t(kvd));
      std::memcpy(kv.v(b, l) + (p % B) * kvd, v + i * kvd, sizeof(float) * size_t(kvd));
    }
    int64_t ns = 0;
    for (int64_t i = 0; i < n; i++) {
      const Sequence& s = e.seqs_[size_t(rows[i].seq)];
      const int64_t p = rows[i].pos, lo = e.shape_.first_key(p);
      e.span_begin_[size_t(i)] = ns;
      for (int64_t blk = lo / B; blk <= p / B; blk++) {
        const int32_t b = s.blocks[size_t(blk)];
        const int64_t first = blk == lo / B ? lo % B : 0, end = blk == p / B ? p % B + 1 : B;
        e.spans_[size_t(ns++)] = {kv.k(b, l) + first * kvd, kv.v(b, l) + first * kvd, size_t(end - first)};
      }
    }
    e.span_begin_[size_t(n)] = ns;
    const auto ar = AttnRows<float>::of(e.shape_, q, n, e.spans_.data(), e.span_begin_.data(), a);
    attention_rows(ar, e.score_ptrs_.data(), e.ctx_);
  }
};

namespace {

int64_t pool_blocks(const Model& m, const EngineOptions& o) {
  const ModelConfig& c = m.cfg;
  const int64_t B = KvCache::kBlockTokens;
  SQ_CHECK(o.kv_tokens >= 0, "--ctx must be positive, got ", o.kv_tokens);
  SQ_CHECK(o.kv_bytes >= 0, "--kv-memory must be positive, got ", o.kv_bytes);
  SQ_CHECK(o.max_batch >= 1, "the engine's batch limit must be at least 1, got ", o.max_batch);
  const int64_t tokens = o.kv_tokens > 0 ? o.kv_tokens : c.max_pos;
  int64_t blocks = (tokens + B - 1) / B;
  if (o.kv_bytes > 0) {
    const int64_t per_block = 2 * c.n_layers * B * c.n_kv_heads * c.head_dim * int64_t(sizeof(float));
    if (o.kv_bytes < per_block)
      fail("--kv-memory ", o.kv_bytes, " bytes is less than one KV block of ", B, " positions (", per_block,
           " bytes for this model)");
    blocks = std::min(blocks, o.kv_bytes / per_block);
  }
  return blocks;
}

}  // namespace

Engine::Engine(const Model& model, const ExecContext& ctx, const EngineOptions& opts)
    : model_(model), ctx_(ctx), opts_(opts), shape_(BlockShape::of(model.cfg)),
      kv_(model.cfg.n_layers, model.cfg.n_kv_heads * model.cfg.head_dim, pool_blocks(model, opts)) {
  SQ_CHECK(ctx_.pool != nullptr, "engine: no thread pool");
  const ModelConfig& c = model.cfg;
  const int64_t B = KvCache::kBlockTokens;
  seq_ctx_ = std::min(c.max_pos, kv_.capacity() * B);
  max_blocks_per_seq_ = (seq_ctx_ + B - 1) / B;
  if (shape_.rope) rope_.build(seq_ctx_, c.head_dim, c.rope_theta);
  const size_t nb = size_t(opts_.max_batch), H = size_t(c.hidden);
  x_.resize(nb * H);
  n1_.resize(nb * H);
  h_.resize(nb * H);
  xf_.resize(nb * H);
  q_.resize(nb * size_t(shape_.q_dim));
  att_.resize(nb * size_t(shape_.q_dim));
  k_.resize(nb * size_t(shape_.kv_dim));
  v_.resize(nb * size_t(shape_.kv_dim));
  g_.resize(nb * size_t(c.intermediate));
  u_.resize(nb * size_t(c.intermediate));
  emb_row_.resize(H);
  pos_row_.resize(H);
  ids_.resize(nb);
  pos_.resize(nb);
  spans_.resize(nb * size_t(max_blocks_per_seq_ + 1));
  span_begin_.resize(nb + 1);
  scores_.assign(size_t(ctx_.pool->size()), std::vector<float>(size_t(seq_ctx_)));
  for (auto& s : scores_) score_ptrs_.push_back(s.data());
  logit_rows_.resize(nb);
  logits_.resize(nb * size_t(c.vocab_size));
}

Engine::~Engine() = default;

Engine::Sequence& Engine::live_sequence(int32_t seq, const char* what) {
  if (seq < 0 || size_t(seq) >= seqs_.size() || !seqs_[size_t(seq)].live)
    fail(what, ": sequence ", seq, " does not exist");
  return seqs_[size_t(seq)];
}

int32_t Engine::add_sequence() {
  int32_t id;
  if (!free_ids_.empty()) {
    id = free_ids_.back();
    free_ids_.pop_back();
  } else {
    id = int32_t(seqs_.size());
    seqs_.emplace_back();
    seqs_.back().blocks.reserve(size_t(max_blocks_per_seq_));
  }
  Sequence& s = seqs_[size_t(id)];
  s.live = true;
  s.len = 0;
  s.stamp = 0;
  return id;
}

void Engine::clear_sequence(int32_t seq) {
  Sequence& s = live_sequence(seq, "clear_sequence");
  for (int32_t b : s.blocks) kv_.give(b);
  s.blocks.clear();
  s.len = 0;
}

void Engine::free_sequence(int32_t seq) {
  clear_sequence(seq);
  seqs_[size_t(seq)].live = false;
  free_ids_.push_back(seq);
}

int64_t Engine::length(int32_t seq) const {
  if (seq < 0 || size_t(seq) >= seqs_.size() || !seqs_[size_t(seq)].live) fail("length: sequence ", seq, " does not exist");
  return seqs_[size_t(seq)].len;
}

void Engine::step(std::span<const BatchRow> rows) {
  const int64_t V = model_.cfg.vocab_size, B = KvCache::kBlockTokens;
  step_++;
  int64_t want = 0;
  for (const BatchRow& r : rows) {
    Sequence& s = live_sequence(r.seq, "step");
    if (r.token < 0 || r.token >= V) fail("token id ", r.token, " is outside the vocabulary (", V, ")");
    if (s.stamp != step_) {
      s.stamp = step_;
      s.pending = s.len;
    }
    if (r.pos != s.pending)
      fail("step: a row of sequence ", r.seq, " is at position ", r.pos, ", expected ", s.pending,
           " (rows of a sequence continue it in order)");
    if (r.pos >= seq_ctx_)
      fail("context overflow: position ", r.pos, " of sequence ", r.seq, " is past the context of ", seq_ctx_,
           " tokens");
    s.pending++;
    want += r.logits ? 1 : 0;
  }
  // Blocks for the new positions, all or none.
  int64_t need = 0;
  for (const BatchRow& r : rows) {
    Sequence& s = seqs_[size_t(r.seq)];
    if (r.pos + 1 == s.pending) need += (s.pending + B - 1) / B - int64_t(s.blocks.size());
  }
  if (need > kv_.free_blocks())
    fail("KV cache full: this step needs ", need, " more blocks of ", B, " positions, ", kv_.free_blocks(), " of ",
         kv_.capacity(), " are free (raise --ctx or --kv-memory, or run fewer sequences)");
  for (const BatchRow& r : rows) {
    Sequence& s = seqs_[size_t(r.seq)];
    if (r.pos + 1 != s.pending) continue;
    while (int64_t(s.blocks.size()) * B < s.pending) s.blocks.push_back(kv_.take());
    s.len = s.pending;
  }
  n_logits_ = want;
  if (logits_.size() < size_t(want * V)) logits_.resize(size_t(want * V));
  int64_t done_logits = 0;
  for (size_t c = 0; c < rows.size(); c += size_t(opts_.max_batch)) {
    const int64_t n = std::min<int64_t>(opts_.max_batch, int64_t(rows.size() - c));
    run_chunk(rows.data() + c, n, logits_.data() + done_logits * V);
    for (int64_t i = 0; i < n; i++) done_logits += rows[c + size_t(i)].logits ? 1 : 0;
  }
}

void Engine::run_chunk(const BatchRow* rows, int64_t n, float* logits_out) {
  const Model& m = model_;
  const ModelConfig& c = m.cfg;
  const int64_t H = c.hidden;
  for (int64_t i = 0; i < n; i++) {
    ids_[size_t(i)] = rows[i].token;
    pos_[size_t(i)] = rows[i].pos;
  }
  auto read = [&](int which, int64_t row, float* dst) {
    const TensorView& t = which == 0 ? *m.embed : *m.pos_embed;
    const size_t row_bytes = size_t(H) * dtype_size(t.dtype);
    convert_to_f32(static_cast<const uint8_t*>(t.data) + size_t(row) * row_bytes, t.dtype, dst, size_t(H));
  };
  embed_rows(m.arch(), ids_.data(), pos_.data(), n, H, read, emb_row_.data(), pos_row_.data(), x_.data());
  BlockActs<float> a;
  a.x = x_.data();
  a.n1 = n1_.data();
  a.q = q_.data();
  a.k = k_.data();
  a.v = v_.data();
  a.a = att_.data();
  a.h = h_.data();
  a.n2 = n1_.data();
  a.g = g_.data();
  a.u = u_.data();
  a.m = g_.data();
  a.out = x_.data();
  Exec ex{*this, rows};
  for (int64_t l = 0; l < c.n_layers; l++) decoder_block(shape_, ex, l, n, a);

  // Final norm and head for the rows that want logits, in row order.
  int64_t k = 0;
  for (int64_t i = 0; i < n; i++)
    if (rows[i].logits)
      std::memcpy(xf_.data() + k++ * H, x_.data() + i * H, sizeof(float) * size_t(H));
  if (k == 0) return;
  apply_norm(shape_, xf_.data(), m.final_norm_w.data(), m.final_norm_b.empty() ? nullptr : m.final_norm_b.data(), k,
             n1_.data(), static_cast<float*>(nullptr), static_cast<float*>(nullptr));
  m.head->matmul(n1_.data(), k, logits_out, ctx_);
}

const float* Engine::logits(int64_t i) const {
  SQ_CHECK(i >= 0 && i < n_logits_, "logits: row ", i, " of ", n_logits_, " with logits");
  return logits_.data() + size_t(i) * size_t(model_.cfg.vocab_size);
}

void Engine::feed(int32_t seq, const int32_t* ids, int64_t n, bool all_logits) {
  const int64_t start = length(seq);
  feed_rows_.resize(size_t(n));
  for (int64_t i = 0; i < n; i++) feed_rows_[size_t(i)] = {ids[i], start + i, seq, all_logits || i + 1 == n};
  step(std::span<const BatchRow>(feed_rows_.data(), size_t(n)));
}

KvUsage Engine::kv_usage() const {
  KvUsage u;
  u.blocks_total = kv_.capacity();
  u.blocks_used = kv_.used();
  u.blocks_allocated = kv_.allocated();
  u.bytes_per_position = kv_.bytes_per_position();
  u.bytes_allocated = kv_.bytes_allocated();
  u.bytes_capacity = size_t(kv_.capacity()) * kv_.bytes_per_block();
  return u;
}

std::vector<float> sequence_logits(const Model& model, const std::vector<int32_t>& ids, const ExecContext& ctx) {
  EngineOptions o;
  o.kv_tokens = std::max<int64_t>(1, int64_t(ids.size()));
  Engine e(model, ctx, o);
  e.feed(e.add_sequence(), ids.data(), int64_t(ids.size()), true);
  return std::vector<float>(e.logits(0), e.logits(0) + ids.size() * size_t(model.cfg.vocab_size));
}

}  // namespace sq
