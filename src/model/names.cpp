#include "model/names.h"

#include "core/error.h"
#include "io/safetensors.h"

namespace sq {

std::string TensorNames::layer_prefix(int64_t i) const {
  return root + arch->layers + "." + std::to_string(i) + ".";
}

std::string TensorNames::norm(int64_t i, int which) const {
  return layer_prefix(i) + (which == 0 ? arch->attn_norm : arch->mlp_norm);
}

std::string TensorNames::linear(int64_t i, Role r) const {
  const LinearDesc* l = arch->find(r);
  SQ_CHECK(l != nullptr, arch->model_type, " layers have no ", role_name(r), " linear");
  return layer_prefix(i) + l->name;
}

std::vector<std::string> TensorNames::linears(int64_t i) const {
  std::vector<std::string> v;
  for (const LinearDesc& l : arch->linears) v.push_back(layer_prefix(i) + l.name);
  return v;
}

TensorNames tensor_names(const ModelConfig& cfg, const std::string& root, bool tied_head) {
  const ArchDesc& a = *cfg.arch;
  TensorNames n;
  n.arch = &a;
  n.root = root;
  n.embed = root + a.embed + ".weight";
  if (a.pos == PosKind::kLearned) n.pos_embed = root + a.pos_embed + ".weight";
  n.final_norm = root + a.final_norm;
  n.head_is_embed = tied_head;
  n.head = tied_head ? n.embed : a.head + ".weight";
  return n;
}

TensorNames tensor_names(const ModelConfig& cfg, const Checkpoint& ckpt) {
  const ArchDesc& a = *cfg.arch;
  std::string root;
  for (const std::string& r : a.roots)
    if (ckpt.has(r + a.embed + ".weight")) {
      root = r;
      break;
    }
  if (root.empty())
    fail(ckpt.dir().string(), ": tensor '", a.roots[0], a.embed, ".weight' not found (is this a ", cfg.model_type,
         " checkpoint?)");
  // Layers past num_hidden_layers would be ignored without a word: a config that disagrees with its
  // checkpoint is more likely a mistake than a request to run the first layers only.
  const std::string layers = root + a.layers + ".";
  for (const std::string& name : ckpt.names()) {
    if (name.compare(0, layers.size(), layers) != 0) continue;
    const size_t dot = name.find('.', layers.size());
    const std::string digits = name.substr(layers.size(), dot == std::string::npos ? std::string::npos : dot - layers.size());
    if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    if (std::stol(digits) >= cfg.n_layers)
      fail(ckpt.dir().string(), ": the checkpoint has tensor '", name, "' but config.json num_hidden_layers is ",
           cfg.n_layers, " (layers 0..", cfg.n_layers - 1, ")");
  }
  // A quantized head (`quantize --head-bits`) stores lm_head.qcodes (lut) or lm_head.qweight (int4).
  const bool dense_head = ckpt.has(a.head + ".weight");
  const bool quantized_head = ckpt.has(a.head + ".qcodes") || ckpt.has(a.head + ".qweight");
  if (cfg.tie_embeddings) {
    // Hugging Face ties the head to the embedding and ignores a stored lm_head.weight; so does squeeze.
    // A quantized head with a tied config has no such reading (squeeze never writes one).
    if (quantized_head)
      fail(ckpt.dir().string(), ": config.json has tie_word_embeddings true but the checkpoint stores a quantized ",
           a.head, "; set tie_word_embeddings to false to use it");
    return tensor_names(cfg, root, true);
  }
  if (!dense_head && !quantized_head)
    fail(ckpt.dir().string(), ": tensor '", a.head, ".weight' not found and tie_word_embeddings is false");
  return tensor_names(cfg, root, false);
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

std::vector<TensorSpec> checkpoint_tensors(const ModelConfig& c, const TensorNames& n) {
  const ArchDesc& a = *c.arch;
  const int64_t H = c.hidden;
  std::vector<TensorSpec> t;
  t.push_back({n.embed, {c.vocab_size, H}, TensorKind::kEmbedding});
  if (a.pos == PosKind::kLearned) t.push_back({n.pos_embed, {c.max_pos + a.pos_offset, H}, TensorKind::kEmbedding});
  for (int64_t i = 0; i < c.n_layers; i++) {
    // In forward order: each norm right before the linears that read it.
    auto norm = [&](int which) {
      t.push_back({n.norm(i, which) + ".weight", {H}, TensorKind::kNormWeight});
      if (a.norm_bias()) t.push_back({n.norm(i, which) + ".bias", {H}, TensorKind::kNormBias});
    };
    norm(0);
    bool mlp_norm_done = false;
    for (const LinearDesc& l : a.linears) {
      if (!mlp_norm_done && (l.role == Role::kGate || l.role == Role::kUp || l.role == Role::kDown)) {
        norm(1);
        mlp_norm_done = true;
      }
      const std::string p = n.layer_prefix(i) + l.name;
      t.push_back({p + ".weight", {dim(c, l.out), dim(c, l.in)}, TensorKind::kLinearWeight});
      if (l.bias) t.push_back({p + ".bias", {dim(c, l.out)}, TensorKind::kLinearBias});
    }
  }
  t.push_back({n.final_norm + ".weight", {H}, TensorKind::kNormWeight});
  if (a.norm_bias()) t.push_back({n.final_norm + ".bias", {H}, TensorKind::kNormBias});
  if (!n.head_is_embed) t.push_back({n.head, {c.vocab_size, H}, TensorKind::kLinearWeight});
  return t;
}

}  // namespace sq
