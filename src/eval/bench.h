// llama-bench-style speed measurement: prompt processing (one forward over N prompt tokens) and
// generation (M single-token decode steps), repeated; medians and spread; the machine's streaming read
// bandwidth measured in the same run, and the fraction of it that decoding achieves.
#pragma once
#include <cstdint>
#include <vector>
#include <nlohmann/json.hpp>

#include "core/context.h"
#include "model/model.h"

namespace sq {

struct BenchOptions {
  int64_t prompt = 512, gen = 128;
  int repeat = 5;
  bool measure_bandwidth = true;
  uint64_t seed = 0;
  // Batched decode: for each B, B sequences decode `gen` tokens each in lockstep, one engine step of B
  // rows per token (each starting from one token, as the plain generation test does).
  std::vector<int64_t> batches;
};

// Returns a JSON object: prompt_tok_s, gen_tok_s (medians), *_min, *_max, model_bytes,
// weight_bytes_per_token, read_bandwidth_gbs, gen_bandwidth_fraction, peak_rss_bytes, threads, isa,
// kv_bytes_per_position, kv_pool_positions, and with batches "batches": one object per batch size with
// batch, aggregate_gen_tok_s and per_seq_gen_tok_s (medians; _min, _max), ...
nlohmann::json run_bench(const Model& model, const BenchOptions& o, const ExecContext& ctx);

// Several models measured interleaved: each repetition runs the prompt and generation test of every
// model in turn, then the bandwidth probe, so all models see the same drift of a shared machine.
// Returns one object per model as run_bench's, plus paired ratios to the first model taken within each
// repetition (prompt_vs_first, gen_vs_first: median, min, max) and gen_bandwidth_fraction as the
// median over repetitions of that repetition's decode bandwidth over its own probe; each batch object
// also gets aggregate_vs_batch1 (its aggregate over the same model's batch-1 rate, paired within
// repetitions) when 1 is among the batches.
// peak_rss_bytes is the whole process's (all models loaded); measure one model alone for its RSS.
std::vector<nlohmann::json> run_bench_interleaved(const std::vector<const Model*>& models, const BenchOptions& o,
                                                  const ExecContext& ctx);

size_t peak_rss_bytes();  // VmHWM of this process

}  // namespace sq
