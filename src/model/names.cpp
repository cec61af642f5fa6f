#include "model/names.h"

#include "core/error.h"
#include "io/safetensors.h"

namespace sq {

std::string TensorNames::layer_prefix(int64_t i) const { return root + "layers." + std::to_string(i) + "."; }

std::string TensorNames::attn_norm(int64_t i) const {
  return layer_prefix(i) + (arch == Arch::kOpt ? "self_attn_layer_norm" : "input_layernorm");
}

std::string TensorNames::mlp_norm(int64_t i) const {
  return layer_prefix(i) + (arch == Arch::kOpt ? "final_layer_norm" : "post_attention_layernorm");
}

std::vector<std::string> TensorNames::linears(int64_t i) const {
  std::string p = layer_prefix(i);
  if (arch == Arch::kOpt)
    return {p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.v_proj", p + "self_attn.out_proj",
            p + "fc1", p + "fc2"};
  return {p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.v_proj", p + "self_attn.o_proj",
          p + "mlp.gate_proj", p + "mlp.up_proj", p + "mlp.down_proj"};
}

TensorNames tensor_names(const ModelConfig& cfg, const Checkpoint& ckpt) {
  TensorNames n;
  n.arch = cfg.arch;
  if (cfg.arch == Arch::kOpt) {
    n.root = ckpt.has("model.decoder.embed_tokens.weight") ? "model.decoder." : "decoder.";
    n.embed = n.root + "embed_tokens.weight";
    n.pos_embed = n.root + "embed_positions.weight";
    n.final_norm = n.root + "final_layer_norm";
  } else {
    n.root = "model.";
    n.embed = "model.embed_tokens.weight";
    n.final_norm = "model.norm";
  }
  if (!ckpt.has(n.embed)) fail(ckpt.dir().string(), ": tensor '", n.embed, "' not found (is this a ", cfg.model_type, " checkpoint?)");
  // A quantized head (`quantize --head-bits`) stores lm_head.qcodes (lut) or lm_head.qweight (int4).
  if (ckpt.has("lm_head.weight") || ckpt.has("lm_head.qcodes") || ckpt.has("lm_head.qweight")) {
    n.head = "lm_head.weight";
  } else if (cfg.tie_embeddings || cfg.arch == Arch::kOpt) {
    n.head = n.embed;
    n.head_is_embed = true;
  } else {
    fail(ckpt.dir().string(), ": tensor 'lm_head.weight' not found and tie_word_embeddings is false");
  }
  return n;
}

std::string head_prefix(const TensorNames& names) {
  return names.head_is_embed ? std::string() : names.head.substr(0, names.head.size() - 7);  // minus ".weight"
}

std::vector<std::string> all_linears(const ModelConfig& cfg, const TensorNames& names) {
  std::vector<std::string> v;
  for (int64_t i = 0; i < cfg.n_layers; i++)
    for (auto& l : names.linears(i)) v.push_back(l);
  return v;
}

}  // namespace sq
