// Synthetic checkpoints with the shapes of real models (LLaMA-7B/13B, Mistral-7B, OPT-6.7B) for speed
// benchmarks: speed does not depend on the values, but sparse extraction does, so the weights are
// heavy-tailed (Laplace) with rare large outliers, like trained LLM weights.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include "core/context.h"
#include "core/dtype.h"
#include "core/output_path.h"

namespace sq {

struct SynthOptions {
  std::string like = "llama-7b";  // llama-7b | llama-13b | mistral-7b | opt-6.7b
  int64_t layers = 0;             // 0 = all layers of the real model
  DType dtype = DType::F16;       // F16 or BF16 (F32 allowed for tests)
  uint64_t seed = 0;
  std::string tokenizer;          // optional tokenizer.model to copy in
  bool progress = true;
  // Overrides for small test models (0 = the real model's value).
  int64_t hidden = 0, intermediate = 0, heads = 0, vocab = 0;
};

// Writes config.json + model.safetensors (streamed, so memory stays small) into out_dir atomically.
// Returns the bytes of model.safetensors.
// `policy` (core/output_path.h): the tokenizer to copy is always among its inputs.
size_t write_synthetic_model(const SynthOptions& o, const std::filesystem::path& out_dir, const ExecContext& ctx,
                             const OutputPolicy& policy = {});

}  // namespace sq
