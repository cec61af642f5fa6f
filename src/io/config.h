// Hugging Face config.json / generation_config.json, reduced to what the engine needs. Parsing
// validates: missing keys, wrong types and unsupported model types are errors naming the file and key.
// The keys every family shares are read here; the family's own (model/arch/) by its description.
#pragma once
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace sq {

struct ArchDesc;

struct ModelConfig {
  const ArchDesc* arch = nullptr;  // the family (model/arch/arch.h); never null after parse()
  std::string model_type;      // as written in config.json ("llama", "mistral", "opt")
  int64_t vocab_size = 0;
  int64_t hidden = 0;          // hidden_size
  int64_t intermediate = 0;    // the MLP's width (intermediate_size, or ffn_dim for opt)
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;      // = n_heads when the family or config has no grouped KV heads
  int64_t head_dim = 0;        // hidden / n_heads unless config says head_dim
  int64_t max_pos = 0;         // max_position_embeddings: the model's context
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;
  int64_t sliding_window = 0;  // 0 = none; else position i attends to j with i - window < j <= i
  bool tie_embeddings = false;
  int64_t bos_id = 1, eos_id = 2;
  nlohmann::json quant;        // "quantization_config" or null
  nlohmann::json raw;          // the whole config.json

  static ModelConfig load(const std::filesystem::path& model_dir);  // reads config.json (+ generation_config.json)
  static ModelConfig parse(const nlohmann::json& j, const std::string& file_name);
  // config.json for this configuration (synth): the shared keys and the family's own.
  nlohmann::json to_json() const;

  // A configuration of family `model_type` with these dimensions (synthetic checkpoints, test
  // fixtures), passed through config.json so that the family's own rules apply (OPT: no grouped KV
  // heads, a tied head). head_dim = hidden / heads; norm_eps 1e-5, rope_theta 1e4.
  struct Dims {
    int64_t vocab = 0, hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, max_pos = 0;
    int64_t sliding_window = 0;
    bool tied = false;
  };
  static ModelConfig make(const std::string& model_type, const Dims& d);
};

}  // namespace sq
