// A loaded model: config, tensor names, and weights in their stored formats. Linear weights are
// LinearWeight objects (dense views into the mmapped checkpoint, or quantized formats); norms and
// biases are small f32 copies. What a layer holds is given by the family's description
// (model/arch/arch.h): the linears by role, norm biases for LayerNorm families, linear biases where the
// description says so. Members are public so quantization pipelines can swap in in-memory quantized
// layers or smoothed norms and evaluate the result without writing it out.
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
  std::vector<float> norm_w[2], norm_b[2];    // [hidden]: 0 = attention norm, 1 = MLP norm; _b when LayerNorm
  std::unique_ptr<LinearWeight> lin[kRoles];  // by role_index; null for roles the family lacks
  std::vector<float> bias[kRoles];            // [rows] where the description has a bias, else empty

  LinearWeight* linear(Role r) const { return lin[role_index(r)].get(); }
  const float* bias_of(Role r) const { return bias[role_index(r)].empty() ? nullptr : bias[role_index(r)].data(); }
  // The linears with their checkpoint prefixes, in the description's order (quantizers, inspect).
  std::vector<std::pair<std::string, std::unique_ptr<LinearWeight>*>> linears(const TensorNames& n, int64_t i);
};

struct Model {
  std::filesystem::path dir;
  ModelConfig cfg;
  std::unique_ptr<Checkpoint> ckpt;
  TensorNames names;
  const TensorView* embed = nullptr;      // [vocab, hidden], stored dtype
  const TensorView* pos_embed = nullptr;  // learned positions: [max_pos + pos_offset, hidden]
  std::vector<float> final_norm_w, final_norm_b;
  std::unique_ptr<LinearWeight> head;     // [vocab, hidden]
  std::vector<LayerWeights> layers;

  const ArchDesc& arch() const { return *cfg.arch; }

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
