// Tensor names of the supported architectures, in one place: the engine, the calibration code and
// the quantizers all address weights through these functions.
//   llama/mistral: model.embed_tokens, model.layers.{i}.{input_layernorm, self_attn.{q,k,v,o}_proj,
//                  post_attention_layernorm, mlp.{gate,up,down}_proj}, model.norm, lm_head
//   opt:           [model.]decoder.{embed_tokens, embed_positions, final_layer_norm},
//                  [model.]decoder.layers.{i}.{self_attn_layer_norm, self_attn.{q,k,v,out}_proj,
//                  final_layer_norm, fc1, fc2}  (facebook/opt checkpoints have no "model." prefix)
#pragma once
#include <string>
#include <vector>

#include "io/config.h"

namespace sq {

class Checkpoint;

struct TensorNames {
  std::string embed, pos_embed /* opt only */, final_norm, head /* == embed when tied and absent */;
  bool head_is_embed = false;
  // Per layer i: the prefixes (no ".weight") of the norms and the linears, in the order of the forward.
  std::string layer_prefix(int64_t i) const;
  std::string attn_norm(int64_t i) const;
  std::string mlp_norm(int64_t i) const;
  std::vector<std::string> linears(int64_t i) const;  // llama: q k v o gate up down; opt: q k v out fc1 fc2
  Arch arch = Arch::kLlama;
  std::string root;  // "model." / "model.decoder." / "decoder."
};

// The head's linear prefix ("lm_head"), or "" when the head is the tied embedding table.
std::string head_prefix(const TensorNames& names);

// Resolves names against the checkpoint (prefix variants, tied head).
TensorNames tensor_names(const ModelConfig& cfg, const Checkpoint& ckpt);

// All quantizable linear prefixes of the model, layer by layer.
std::vector<std::string> all_linears(const ModelConfig& cfg, const TensorNames& names);

}  // namespace sq
