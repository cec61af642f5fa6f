// squeeze's public C++ API: load a model (dense or quantized checkpoint in the Hugging Face layout),
// tokenize, run many sequences through one batched engine with a paged KV cache, sample.
//
//   auto model = squeeze::Model::load("models/stories260K");
//   auto tok = squeeze::Tokenizer::load(*model);
//   squeeze::Engine engine(model, {.threads = 2});
//   squeeze::SeqId s = engine.add_sequence();
//   std::vector<int32_t> ids = tok->encode("Once upon a time", true);
//   std::vector<squeeze::Token> batch;
//   for (size_t i = 0; i < ids.size(); i++) batch.push_back({ids[i], int64_t(i), s, i + 1 == ids.size()});
//   engine.step(batch);                                  // prompt
//   squeeze::Sampler sampler({.temperature = 0});
//   int32_t next = sampler.sample(engine.logits(0));     // then {next, ids.size(), s, true}, ...
//
// Every failure the caller can cause (a bad directory or file, a bad batch, an exhausted KV pool) is a
// squeeze::Error with a one-line message. Objects are not thread-safe: use an engine from one thread at
// a time (a server runs one engine thread); a Model and a Tokenizer may be shared read-only.
// docs/ENGINE.md describes the engine behind this API.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "squeeze/error.h"

namespace squeeze {

struct ModelInfo {
  std::string path;
  std::string architecture;   // config.json model_type: "llama", "mistral", "opt"
  std::string format;         // the linear layers' format: "F16", "lut3 +0.45% sparse", "int4 g128", ...
  int64_t vocab_size = 0, context_length = 0, hidden_size = 0, layers = 0;
  int32_t bos_id = -1, eos_id = -1;
  int64_t parameters = 0;
  uint64_t bytes_on_disk = 0;
};

class Model {
 public:
  // Loads config.json, the weights (safetensors, single or sharded; F32/F16/BF16, squeeze lookup
  // tables, GPTQ int4) and validates them.
  static std::shared_ptr<Model> load(const std::string& dir);
  ~Model();
  const ModelInfo& info() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Tokenizer {
 public:
  // The model directory's tokenizer (tokenizer.model, tokenizer.json or vocab.json + merges.txt).
  static std::unique_ptr<Tokenizer> load(const Model& model);
  ~Tokenizer();
  // Never turns text such as "</s>" into a special token. add_bos: prepend BOS when the model's
  // tokenizer expects it (as Hugging Face's add_special_tokens).
  std::vector<int32_t> encode(std::string_view text, bool add_bos) const;
  // Skips BOS, EOS and control tokens; always valid UTF-8.
  std::string decode(std::span<const int32_t> ids) const;
  int32_t bos_id() const;
  int32_t eos_id() const;
  int64_t vocab_size() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Ids in, text out, one id at a time: the concatenation of every push() and the final flush() equals
// decode() of all ids (a character split over byte tokens is held back until it is complete). prefix:
// ids already shown as text (a prompt), so the first generated token's leading space is kept.
class TextStream {
 public:
  explicit TextStream(const Tokenizer& tok, std::span<const int32_t> prefix = {});
  ~TextStream();
  std::string push(int32_t id);
  std::string flush();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

using SeqId = int32_t;

// One row of a batch: token `id` at position `pos` of sequence `seq`; logits: return this row's logits.
// Rows of one sequence come in order and continue it (the first at its current length).
struct Token {
  int32_t id = 0;
  int64_t pos = 0;
  SeqId seq = 0;
  bool logits = false;
};

struct EngineOptions {
  int64_t kv_tokens = 0;    // KV pool capacity in positions over all sequences (0: one model context)
  int64_t kv_bytes = 0;     // or in bytes; the smaller when both are given
  int64_t max_batch = 128;  // rows per internal chunk (bounds scratch memory; longer steps are chunked)
  int threads = 0;          // 0: every core
  std::string isa;          // "" (SQUEEZE_ISA or the best), "scalar", "avx2", "avx512", "avx512vnni"
};

struct KvStats {
  int64_t block_tokens = 0;      // positions per block
  int64_t blocks_total = 0;      // the pool's capacity
  int64_t blocks_used = 0;       // held by sequences
  int64_t blocks_allocated = 0;  // whose memory exists (memory follows the most blocks used at once)
  size_t bytes_per_position = 0, bytes_allocated = 0, bytes_capacity = 0;
};

class Engine {
 public:
  Engine(std::shared_ptr<const Model> model, const EngineOptions& options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  SeqId add_sequence();
  void remove_sequence(SeqId seq);   // its KV blocks go back to the pool
  void clear_sequence(SeqId seq);    // back to length 0
  int64_t sequence_length(SeqId seq) const;
  int64_t max_sequence_length() const;  // the model's context, or the pool's when smaller

  // Runs one forward step over every row: each linear once for all rows, attention per row over its
  // sequence. Validates everything before changing anything.
  void step(std::span<const Token> batch);
  // Logits [vocab] of the i-th row that asked for them in the last step.
  std::span<const float> logits(size_t i) const;
  size_t n_logits() const;

  KvStats kv_stats() const;
  const Model& model() const;
  std::string isa() const;  // the instruction set the kernels run
  int threads() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct SamplerOptions {
  double temperature = 0.8;  // 0: greedy (argmax, lowest id on ties)
  int64_t top_k = 40;        // 0: off
  double top_p = 0.95;       // 1: off
  uint64_t seed = 0;         // the same seed gives the same tokens on every machine
};

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& options = {});
  ~Sampler();
  int32_t sample(std::span<const float> logits);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace squeeze
