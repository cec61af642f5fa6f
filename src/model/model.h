// A loaded model: config, tensor names, and weights in their stored formats. Linear weights are
// LinearWeight objects (dense views into the mmapped checkpoint, or quantized formats); norms and
// biases are small f32 copies. Members are public so quantization pipelines can swap in
// in-memory quantized layers or smoothed norms and evaluate the result without writing it out.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/context.h"
#include "formats/linear.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "model/names.h"

namespace sq {

struct LayerWeights {
  std::vector<float> attn_norm_w, attn_norm_b;  // [hidden]; _b only for opt (LayerNorm)
  std::vector<float> mlp_norm_w, mlp_norm_b;
  // llama/mistral: q k v o gate up down. opt: q k v o(out_proj) up(fc1) down(fc2), gate null.
  std::unique_ptr<LinearWeight> q, k, v, o, gate, up, down;
  std::vector<float> bq, bk, bv, bo, bup, bdown;  // opt biases (empty for llama)

  // The linears with their checkpoint prefixes, in forward order (for quantizers and inspect).
  std::vector<std::pair<std::string, std::unique_ptr<LinearWeight>*>> linears(const TensorNames& n, int64_t i);
};

struct Model {
  std::filesystem::path dir;
  ModelConfig cfg;
  std::unique_ptr<Checkpoint> ckpt;
  TensorNames names;
  const TensorView* embed = nullptr;      // [vocab, hidden], stored dtype
  const TensorView* pos_embed = nullptr;  // opt: [max_pos + 2, hidden]
  std::vector<float> final_norm_w, final_norm_b;
  std::unique_ptr<LinearWeight> head;     // [vocab, hidden]
  std::vector<LayerWeights> layers;

  // Loads config.json, the safetensors (single or sharded) and every weight, validating names,
  // shapes and dtypes against the config. Throws sq::Error naming the file and problem.
  static std::unique_ptr<Model> load(const std::filesystem::path& dir);

  int64_t n_params() const;        // parameters of the unquantized model (from shapes)
  size_t weight_bytes() const;     // bytes of all linears + head + embedding rows as stored
  size_t bytes_per_token() const;  // weight bytes a decode step reads (linears + head + one embedding row)
};

// Reads a 1-D tensor of any float dtype into f32, checking its length.
std::vector<float> load_vector(const Checkpoint& ckpt, const std::string& name, int64_t n);

}  // namespace sq
