// What a model family looks like, in one place per family (llama.cpp, mistral.cpp, opt.cpp beside this
// file): tensor names, the linears of a layer with their shapes and biases, the norm, MLP, activation
// and position kinds, the SmoothQuant+ smoothing groups, and the family's config.json keys. Loading,
// the forward (model/forward.h), calibration, synth, SmoothQuant+, model patching, inspect and the test
// fixtures all read it; nothing else names a family. docs/ENGINE.md says how to add one.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace sq {

struct ModelConfig;

// What a linear does in the decoder block (model/forward.h).
enum class Role { kQ, kK, kV, kO, kGate, kUp, kDown };
inline constexpr int kRoles = 7;
inline int role_index(Role r) { return int(r); }
const char* role_name(Role r);  // "q", "k", "v", "o", "gate", "up", "down"

// A dimension of a linear, resolved by dim(cfg, d).
enum class Dim { kHidden, kQ /* n_heads·head_dim */, kKV /* n_kv_heads·head_dim */, kInter };
int64_t dim(const ModelConfig& cfg, Dim d);

enum class NormKind { kRms /* RMSNorm, weight only */, kLayer /* LayerNorm, weight and bias */ };
enum class MlpKind { kGated /* down(act(gate(x)) ∘ up(x)) */, kPlain /* down(act(up(x))) */ };
enum class ActKind { kSilu, kRelu };
enum class PosKind { kRope /* rotate-half RoPE on q, k */, kLearned /* a position table added at the embedding */ };

struct LinearDesc {
  Role role;
  std::string name;  // under the layer prefix, e.g. "self_attn.q_proj"
  Dim out, in;       // weight [out, in]
  bool bias;
};

// SmoothQuant+ smoothing: per input channel c of the linears `to` (which all read the same input),
// W[:, c] *= s[c], and the producer of that input divides it out: norm `norm` (0: attention norm,
// 1: MLP norm; its weight and bias) or, with norm == -1, the output rows (and bias) of linear `rows`.
// head_shared: the input of `to` is per query head and the producer's rows are per KV head (v -> o):
// s is per KV channel and shared by the query heads of its group. A group is exact when the function
// between producer and consumer is positively homogeneous (norm weights, v through attention, up
// through act(gate)·up or relu(up)); the family's description only lists groups for which it is.
enum class SmoothOption { kAlways, kUpDown /* QuantizeOptions::smooth_up_down */, kVO /* smooth_v_o */ };
struct SmoothGroup {
  int norm = -1;
  Role rows = Role::kQ;
  std::vector<Role> to;
  bool head_shared = false;
  SmoothOption option = SmoothOption::kAlways;
};

struct ArchDesc {
  std::string model_type;       // config.json "model_type"
  std::string hf_architecture;  // config.json "architectures"[0], written by synth
  NormKind norm = NormKind::kRms;
  MlpKind mlp = MlpKind::kGated;
  ActKind act = ActKind::kSilu;
  PosKind pos = PosKind::kRope;
  int64_t pos_offset = 0;  // kLearned: position p reads row p + pos_offset of the table
  // Tensor names. roots are tried in order: the first under which `embed` exists is the checkpoint's.
  std::vector<std::string> roots;
  std::string embed, pos_embed, final_norm, layers = "layers", attn_norm, mlp_norm;
  std::string head = "lm_head";  // outside any root; absent when tied to the embedding
  std::vector<LinearDesc> linears;  // of each layer, in forward order
  std::vector<SmoothGroup> smoothing;
  int64_t default_bos = 1, default_eos = 2;
  // Reads the family's own config.json keys into cfg (after the common ones: vocab_size, hidden_size,
  // num_hidden_layers, num_attention_heads, max_position_embeddings): intermediate, n_kv_heads,
  // norm_eps, rope_theta, sliding_window, tie_embeddings; rejects what the family does not support.
  void (*parse)(const nlohmann::json& j, const std::string& file, ModelConfig& cfg) = nullptr;
  // Writes those keys back for cfg (synth).
  void (*write)(const ModelConfig& cfg, nlohmann::json& j) = nullptr;

  bool norm_bias() const { return norm == NormKind::kLayer; }
  const LinearDesc* find(Role r) const;  // null when the family has no such linear
  bool has(Role r) const { return find(r) != nullptr; }
};

// The description for config.json's model_type; sq::Error "unsupported model_type ..." naming the file
// and the supported types otherwise.
const ArchDesc& arch_for(const std::string& model_type, const std::string& file);
// Every family, in the order of the list in arch.cpp.
std::vector<const ArchDesc*> all_archs();

// The families, one file each (a new family adds its file and one line to all_archs()).
const ArchDesc& llama_arch();    // llama.cpp: LLaMA, Llama 2, Vicuna, XGen
const ArchDesc& mistral_arch();  // mistral.cpp: llama's block with a sliding window
const ArchDesc& opt_arch();      // opt.cpp
// llama.cpp's description under another model_type, for families that share its block.
ArchDesc llama_like_desc(const std::string& model_type, const std::string& hf_architecture);

}  // namespace sq
