// The inference engine: one forward step over a batch of rows from many sequences, with a paged KV
// cache (docs/ENGINE.md). A row is (token, position, sequence, want_logits); rows of a sequence come in
// order and continue it. Each linear runs once per chunk of up to max_batch rows, so a weight byte read
// from memory serves every row of the chunk; attention runs per (row, head) over the row's sequence.
// Prompt chunks of some sequences and decode tokens of others can share a step.
//
// Not thread-safe: one thread at a time calls an engine (the server's engine thread). All scratch is
// allocated when the engine is made; a step allocates nothing unless it asks for more logits rows than
// max_batch (the logits buffer then grows once).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/context.h"
#include "engine/kv_cache.h"
#include "kernels/attn.h"
#include "model/forward.h"
#include "model/model.h"

namespace sq {

struct EngineOptions {
  int64_t kv_tokens = 0;  // KV pool capacity in positions, over all sequences; 0 = one full context
  int64_t kv_bytes = 0;   // or in bytes (the smaller of the two when both are given)
  int64_t max_batch = 128;  // rows per internal chunk of a step (bounds the scratch memory)
};

struct BatchRow {
  int32_t token = 0;
  int64_t pos = 0;
  int32_t seq = 0;
  bool logits = false;
};

struct KvUsage {
  int64_t block_tokens = KvCache::kBlockTokens;
  int64_t blocks_total = 0, blocks_used = 0, blocks_allocated = 0;
  size_t bytes_per_position = 0, bytes_allocated = 0, bytes_capacity = 0;
};

class Engine {
 public:
  // The model must outlive the engine; ctx.pool is used for every kernel (and must not be shared with
  // another engine that runs at the same time).
  Engine(const Model& model, const ExecContext& ctx, const EngineOptions& opts = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  int32_t add_sequence();             // a new empty sequence
  void free_sequence(int32_t seq);    // its blocks go back to the pool; the id may be reused
  void clear_sequence(int32_t seq);   // back to length 0, blocks returned
  int64_t length(int32_t seq) const;  // positions held
  // The most positions a sequence may hold: the model's context, or the pool's when smaller.
  int64_t max_length() const { return seq_ctx_; }

  // Runs the rows. Throws sq::Error before changing anything for: an unknown or freed sequence, a token
  // outside the vocabulary, a row whose position is not its sequence's next, a position past
  // max_length(), or a KV pool without enough free blocks.
  void step(std::span<const BatchRow> rows);
  // Logits [vocab] of the i-th row (in row order) of the last step that asked for logits.
  const float* logits(int64_t i) const;
  int64_t n_logits() const { return n_logits_; }

  // Convenience for one sequence: rows at its next positions; all_logits: every row's logits (else only
  // the last row's).
  void feed(int32_t seq, const int32_t* ids, int64_t n, bool all_logits);

  KvUsage kv_usage() const;
  const Model& model() const { return model_; }
  const ExecContext& context() const { return ctx_; }

 private:
  struct Sequence {
    bool live = false;
    int64_t len = 0;
    int64_t pending = 0;          // length after the rows of the step being validated
    uint64_t stamp = 0;           // the step that last touched it (pending is valid when == step_)
    std::vector<int32_t> blocks;  // block ids in position order; capacity reserved at creation
  };
  struct Exec;
  void run_chunk(const BatchRow* rows, int64_t n, float* logits_out);
  Sequence& live_sequence(int32_t seq, const char* what);

  const Model& model_;
  ExecContext ctx_;
  EngineOptions opts_;
  BlockShape shape_;
  int64_t seq_ctx_ = 0, max_blocks_per_seq_ = 0;
  KvCache kv_;
  std::vector<Sequence> seqs_;
  std::vector<int32_t> free_ids_;
  RopeTable<float> rope_;
  // Scratch for max_batch rows.
  std::vector<float> x_, n1_, q_, k_, v_, att_, h_, g_, u_, xf_, emb_row_, pos_row_;
  std::vector<int32_t> ids_;
  std::vector<int64_t> pos_;
  std::vector<kernels::KvSpan> spans_;
  std::vector<int64_t> span_begin_;
  std::vector<std::vector<float>> scores_;
  std::vector<float*> score_ptrs_;
  std::vector<int64_t> logit_rows_;
  std::vector<float> logits_;
  int64_t n_logits_ = 0;
  uint64_t step_ = 0;
  std::vector<BatchRow> feed_rows_;
};

// Logits [n, vocab] of every position of one sequence, in a fresh engine (tests, quality checks).
std::vector<float> sequence_logits(const Model& model, const std::vector<int32_t>& ids, const ExecContext& ctx);

}  // namespace sq
