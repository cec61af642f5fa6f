// OPT (model_type "opt"): pre-LayerNorm decoder with biases on every linear and norm, ReLU MLP,
// learned positions (row p + 2 of embed_positions: OPT reserves rows 0 and 1), head tied to the
// embedding. Tensor names with "model.decoder." (transformers) or "decoder." (facebook/opt-*).
//   x += out_proj(attn(q_proj(n), k_proj(n), v_proj(n)))   n = self_attn_layer_norm(x)
//   x += fc2(relu(fc1(n)))                                  n = final_layer_norm(x)  (of the layer)
#include "core/error.h"
#include "io/config.h"
#include "model/arch/arch.h"
#include "io/config_keys.h"

namespace sq {

namespace {

void parse_opt(const nlohmann::json& j, const std::string& file, ModelConfig& c) {
  c.intermediate = get_int(j, file, "ffn_dim");
  c.n_kv_heads = c.n_heads;
  c.norm_eps = 1e-5;
  c.tie_embeddings = get_bool_or(j, file, "tie_word_embeddings", true);
  if (!get_bool_or(j, file, "do_layer_norm_before", true))
    fail(file, ": OPT with do_layer_norm_before false (post-norm, as in opt-350m) is not supported");
  const int64_t proj = get_int_or(j, file, "word_embed_proj_dim", c.hidden);
  if (proj != c.hidden)
    fail(file, ": OPT with word_embed_proj_dim ", proj, " != hidden_size ", c.hidden,
         " (project_in/project_out, as in opt-350m) is not supported");
  const std::string act = j.value("activation_function", "relu");
  if (act != "relu") fail(file, ": OPT activation_function \"", act, "\" is not supported (only relu)");
  if (!get_bool_or(j, file, "enable_bias", true)) fail(file, ": OPT without biases (enable_bias false) is not supported");
  if (!get_bool_or(j, file, "layer_norm_elementwise_affine", true))
    fail(file, ": OPT without LayerNorm affine parameters is not supported");
}

void write_opt(const ModelConfig& c, nlohmann::json& j) {
  j["ffn_dim"] = c.intermediate;
  j["do_layer_norm_before"] = true;
  j["word_embed_proj_dim"] = c.hidden;
  j["activation_function"] = "relu";
  j["enable_bias"] = true;
}

}  // namespace

const ArchDesc& opt_arch() {
  static const ArchDesc d = [] {
    ArchDesc a;
    a.model_type = "opt";
    a.hf_architecture = "OPTForCausalLM";
    a.norm = NormKind::kLayer;
    a.mlp = MlpKind::kPlain;
    a.act = ActKind::kRelu;
    a.pos = PosKind::kLearned;
    a.pos_offset = 2;
    a.roots = {"model.decoder.", "decoder."};
    a.embed = "embed_tokens";
    a.pos_embed = "embed_positions";
    a.final_norm = "final_layer_norm";
    a.attn_norm = "self_attn_layer_norm";
    a.mlp_norm = "final_layer_norm";
    a.linears = {{Role::kQ, "self_attn.q_proj", Dim::kQ, Dim::kHidden, true},
                 {Role::kK, "self_attn.k_proj", Dim::kKV, Dim::kHidden, true},
                 {Role::kV, "self_attn.v_proj", Dim::kKV, Dim::kHidden, true},
                 {Role::kO, "self_attn.out_proj", Dim::kHidden, Dim::kQ, true},
                 {Role::kUp, "fc1", Dim::kInter, Dim::kHidden, true},
                 {Role::kDown, "fc2", Dim::kHidden, Dim::kInter, true}};
    // relu(fc1) is positively homogeneous in fc1's rows; attention output is a convex combination of v.
    a.smoothing = {{0, Role::kQ, {Role::kQ, Role::kK, Role::kV}, false, SmoothOption::kAlways},
                   {1, Role::kQ, {Role::kUp}, false, SmoothOption::kAlways},
                   {-1, Role::kUp, {Role::kDown}, false, SmoothOption::kUpDown},
                   {-1, Role::kV, {Role::kO}, true, SmoothOption::kVO}};
    a.default_bos = 2;
    a.default_eos = 2;
    a.parse = parse_opt;
    a.write = write_opt;
    return a;
  }();
  return d;
}

}  // namespace sq
