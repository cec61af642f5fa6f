// LLaMA / Llama 2 / Vicuna / XGen (model_type "llama"): pre-RMSNorm decoder, rotate-half RoPE,
// SwiGLU MLP, grouped KV heads, no biases, a separate or tied head.
//   x += o_proj(attn(rope(q_proj(n)), rope(k_proj(n)), v_proj(n)))   n = input_layernorm(x)
//   x += down_proj(silu(gate_proj(n)) * up_proj(n))                  n = post_attention_layernorm(x)
#include "core/error.h"
#include "io/config.h"
#include "model/arch/arch.h"
#include "io/config_keys.h"

namespace sq {

namespace {

void parse_llama(const nlohmann::json& j, const std::string& file, ModelConfig& c) {
  c.intermediate = get_int(j, file, "intermediate_size");
  c.n_kv_heads = get_int_or(j, file, "num_key_value_heads", c.n_heads);
  c.norm_eps = get_num_or(j, file, "rms_norm_eps", 1e-6);
  c.rope_theta = get_num_or(j, file, "rope_theta", 10000.0);
  c.tie_embeddings = get_bool_or(j, file, "tie_word_embeddings", false);
  const std::string act = j.value("hidden_act", "silu");
  if (act != "silu") fail(file, ": hidden_act \"", act, "\" is not supported (only silu)");
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) fail(file, ": rope_scaling is not supported");
}

void write_llama(const ModelConfig& c, nlohmann::json& j) {
  j["intermediate_size"] = c.intermediate;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["rms_norm_eps"] = c.norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = c.tie_embeddings;
}

}  // namespace

ArchDesc llama_like_desc(const std::string& model_type, const std::string& hf_architecture) {
  ArchDesc d;
  d.model_type = model_type;
  d.hf_architecture = hf_architecture;
  d.norm = NormKind::kRms;
  d.mlp = MlpKind::kGated;
  d.act = ActKind::kSilu;
  d.pos = PosKind::kRope;
  d.roots = {"model."};
  d.embed = "embed_tokens";
  d.final_norm = "norm";
  d.attn_norm = "input_layernorm";
  d.mlp_norm = "post_attention_layernorm";
  d.linears = {{Role::kQ, "self_attn.q_proj", Dim::kQ, Dim::kHidden, false},
               {Role::kK, "self_attn.k_proj", Dim::kKV, Dim::kHidden, false},
               {Role::kV, "self_attn.v_proj", Dim::kKV, Dim::kHidden, false},
               {Role::kO, "self_attn.o_proj", Dim::kHidden, Dim::kQ, false},
               {Role::kGate, "mlp.gate_proj", Dim::kInter, Dim::kHidden, false},
               {Role::kUp, "mlp.up_proj", Dim::kInter, Dim::kHidden, false},
               {Role::kDown, "mlp.down_proj", Dim::kHidden, Dim::kInter, false}};
  // down's input silu(gate)·up is linear in up's rows; attention output is a convex combination of v.
  d.smoothing = {{0, Role::kQ, {Role::kQ, Role::kK, Role::kV}, false, SmoothOption::kAlways},
                 {1, Role::kQ, {Role::kGate, Role::kUp}, false, SmoothOption::kAlways},
                 {-1, Role::kUp, {Role::kDown}, false, SmoothOption::kUpDown},
                 {-1, Role::kV, {Role::kO}, true, SmoothOption::kVO}};
  d.default_bos = 1;
  d.default_eos = 2;
  d.parse = parse_llama;
  d.write = write_llama;
  return d;
}

const ArchDesc& llama_arch() {
  static const ArchDesc d = llama_like_desc("llama", "LlamaForCausalLM");
  return d;
}

}  // namespace sq
