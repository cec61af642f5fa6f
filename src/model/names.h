// Tensor names of a loaded checkpoint, resolved from its family's description (model/arch/arch.h):
// the engine, the calibration code, the quantizers and the test fixtures all address weights through
// these functions. For llama: model.embed_tokens, model.layers.{i}.{input_layernorm,
// self_attn.{q,k,v,o}_proj, post_attention_layernorm, mlp.{gate,up,down}_proj}, model.norm, lm_head.
#pragma once
#include <string>
#include <vector>

#include "io/config.h"
#include "model/arch/arch.h"

namespace sq {

class Checkpoint;

struct TensorNames {
  const ArchDesc* arch = nullptr;
  std::string root;  // the root the checkpoint uses ("model.", "model.decoder.", "decoder.")
  std::string embed, pos_embed /* kLearned only */, final_norm /* prefix, no ".weight" */;
  std::string head;  // full name of the head's weight; == embed when tied
  bool head_is_embed = false;

  std::string layer_prefix(int64_t i) const;  // "model.layers.3."
  std::string norm(int64_t i, int which) const;  // prefix of norm 0 (attention) or 1 (MLP) of layer i
  std::string attn_norm(int64_t i) const { return norm(i, 0); }
  std::string mlp_norm(int64_t i) const { return norm(i, 1); }
  std::string linear(int64_t i, Role r) const;  // prefix, e.g. "model.layers.3.mlp.up_proj"
  std::vector<std::string> linears(int64_t i) const;  // the layer's linears in the description's order
};

// The head's linear prefix ("lm_head"), or "" when the head is the tied embedding table.
std::string head_prefix(const TensorNames& names);

// Names for a checkpoint: the first root of the description under which the embedding exists (the
// checkpoint may be absent: the description's first root), and a tied head unless lm_head is stored.
TensorNames tensor_names(const ModelConfig& cfg, const Checkpoint& ckpt);
TensorNames tensor_names(const ModelConfig& cfg, const std::string& root, bool tied_head);

// All quantizable linear prefixes of the model, layer by layer.
std::vector<std::string> all_linears(const ModelConfig& cfg, const TensorNames& names);

// Every tensor a dense checkpoint of this configuration holds, from the description: for synth and the
// test fixtures' writers (and what Model::load expects).
enum class TensorKind { kEmbedding, kNormWeight, kNormBias, kLinearWeight, kLinearBias };
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  TensorKind kind;
};
std::vector<TensorSpec> checkpoint_tensors(const ModelConfig& cfg, const TensorNames& names);

}  // namespace sq
