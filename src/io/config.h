// Hugging Face config.json / generation_config.json / tokenizer_config.json, reduced to what the
// engine needs. Parsing validates: missing keys, wrong types and unsupported model types are errors
// naming the file and key.
#pragma once
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace sq {

enum class Arch { kLlama, kMistral, kOpt };

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string model_type;      // as written in config.json ("llama", "mistral", "opt")
  int64_t vocab_size = 0;
  int64_t hidden = 0;          // hidden_size
  int64_t intermediate = 0;    // intermediate_size (llama/mistral) or ffn_dim (opt)
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;      // = n_heads when absent (and always for opt)
  int64_t head_dim = 0;        // hidden / n_heads unless config says head_dim
  int64_t max_pos = 0;         // max_position_embeddings: the model's context
  double norm_eps = 1e-5;      // rms_norm_eps (llama) / 1e-5 LayerNorm eps (opt)
  double rope_theta = 10000.0;
  int64_t sliding_window = 0;  // 0 = none; else position i attends to j with i - window < j <= i
  bool tie_embeddings = false;
  // opt only
  bool opt_pre_norm = true;    // do_layer_norm_before
  int64_t opt_word_embed_proj_dim = 0;
  int64_t bos_id = 1, eos_id = 2;
  nlohmann::json quant;        // "quantization_config" or null
  nlohmann::json raw;          // the whole config.json

  static ModelConfig load(const std::filesystem::path& model_dir);  // reads config.json (+ generation_config.json)
  static ModelConfig parse(const nlohmann::json& j, const std::string& file_name);
};

std::string arch_name(Arch a);

}  // namespace sq
