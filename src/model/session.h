// An inference session over a loaded model: KV cache plus scratch activations. Tokens go in through
// forward(), in chunks of any size; decoding is forward() of one token at a time. f32 activations.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/context.h"
#include "model/model.h"

namespace sq {

// Activations of one chunk of n tokens, sized for the chunk limit. Shapes in comments are [n, dim].
struct Scratch {
  std::vector<float> x, xn;     // [n, hidden] residual stream / normed
  std::vector<float> q, k, v;   // [n, n_heads*hd], [n, n_kv*hd] x2
  std::vector<float> att, o;    // [n, n_heads*hd], [n, hidden]
  std::vector<float> g, u;      // [n, intermediate]
};

class Session {
 public:
  // max_ctx <= 0: the model's max_position_embeddings.
  Session(const Model& model, const ExecContext& ctx, int64_t max_ctx = 0);

  // Feeds n tokens at positions pos() .. pos()+n-1. If all_logits, logits becomes [n, vocab];
  // else [vocab] for the last token. Throws if the context would overflow.
  void forward(const int32_t* ids, int64_t n, std::vector<float>* logits, bool all_logits);
  int64_t pos() const { return pos_; }
  int64_t max_ctx() const { return max_ctx_; }
  void reset() { pos_ = 0; }
  const Model& model() const { return model_; }

 private:
  void forward_chunk(const int32_t* ids, int64_t n, float* logits, bool all_logits);
  const Model& model_;
  ExecContext ctx_;
  int64_t max_ctx_, pos_ = 0;
  static constexpr int64_t kChunk = 128;  // tokens per forward chunk: bounds scratch memory
  // KV cache per layer, [max_ctx, n_kv*hd]. Allocated uninitialised so untouched positions cost no RSS.
  std::vector<std::unique_ptr<float[]>> k_cache_, v_cache_;
  Scratch s_;
};

// Per-architecture blocks (model/llama.cpp, model/opt.cpp). They read s.x [n, hidden] and update it.
void llama_block(const Model& m, int64_t layer, Scratch& s, int64_t n, int64_t pos0, float* k_cache,
                 float* v_cache, const ExecContext& ctx);
void opt_block(const Model& m, int64_t layer, Scratch& s, int64_t n, int64_t pos0, float* k_cache,
               float* v_cache, const ExecContext& ctx);

}  // namespace sq
