#include "io/config.h"

#include "core/atomic_file.h"
#include "core/error.h"

namespace sq {

using json = nlohmann::json;

std::string arch_name(Arch a) {
  switch (a) {
    case Arch::kLlama: return "llama";
    case Arch::kMistral: return "mistral";
    case Arch::kOpt: return "opt";
  }
  return "?";
}

namespace {

int64_t get_int(const json& j, const std::string& file, const char* key) {
  if (!j.contains(key)) fail(file, ": missing key \"", key, "\"");
  const auto& v = j[key];
  if (!v.is_number_integer()) fail(file, ": key \"", key, "\" must be an integer, got ", v.dump());
  int64_t x = v.get<int64_t>();
  if (x <= 0) fail(file, ": key \"", key, "\" must be positive, got ", x);
  return x;
}

int64_t get_int_or(const json& j, const std::string& file, const char* key, int64_t dflt) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_number_integer()) fail(file, ": key \"", key, "\" must be an integer, got ", j[key].dump());
  return j[key].get<int64_t>();
}

double get_num_or(const json& j, const std::string& file, const char* key, double dflt) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_number()) fail(file, ": key \"", key, "\" must be a number, got ", j[key].dump());
  return j[key].get<double>();
}

bool get_bool_or(const json& j, const std::string& file, const char* key, bool dflt) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (!j[key].is_boolean()) fail(file, ": key \"", key, "\" must be true or false, got ", j[key].dump());
  return j[key].get<bool>();
}

}  // namespace

ModelConfig ModelConfig::parse(const json& j, const std::string& file) {
  if (!j.is_object()) fail(file, ": not a JSON object");
  ModelConfig c;
  c.raw = j;
  if (!j.contains("model_type") || !j["model_type"].is_string()) fail(file, ": missing key \"model_type\"");
  c.model_type = j["model_type"].get<std::string>();
  if (c.model_type == "llama") c.arch = Arch::kLlama;
  else if (c.model_type == "mistral") c.arch = Arch::kMistral;
  else if (c.model_type == "opt") c.arch = Arch::kOpt;
  else fail(file, ": unsupported model_type \"", c.model_type, "\" (supported: llama, mistral, opt)");

  c.vocab_size = get_int(j, file, "vocab_size");
  c.hidden = get_int(j, file, "hidden_size");
  c.n_layers = get_int(j, file, "num_hidden_layers");
  c.n_heads = get_int(j, file, "num_attention_heads");
  c.max_pos = get_int(j, file, "max_position_embeddings");
  if (c.arch == Arch::kOpt) {
    c.intermediate = get_int(j, file, "ffn_dim");
    c.n_kv_heads = c.n_heads;
    c.norm_eps = 1e-5;
    c.tie_embeddings = get_bool_or(j, file, "tie_word_embeddings", true);
    c.opt_pre_norm = get_bool_or(j, file, "do_layer_norm_before", true);
    if (!c.opt_pre_norm) fail(file, ": OPT with do_layer_norm_before false (post-norm, as in opt-350m) is not supported");
    c.opt_word_embed_proj_dim = get_int_or(j, file, "word_embed_proj_dim", c.hidden);
    if (c.opt_word_embed_proj_dim != c.hidden)
      fail(file, ": OPT with word_embed_proj_dim ", c.opt_word_embed_proj_dim, " != hidden_size ", c.hidden,
           " (project_in/project_out, as in opt-350m) is not supported");
    std::string act = j.value("activation_function", "relu");
    if (act != "relu") fail(file, ": OPT activation_function \"", act, "\" is not supported (only relu)");
    if (!get_bool_or(j, file, "enable_bias", true)) fail(file, ": OPT without biases (enable_bias false) is not supported");
    if (!get_bool_or(j, file, "layer_norm_elementwise_affine", true))
      fail(file, ": OPT without LayerNorm affine parameters is not supported");
  } else {
    c.intermediate = get_int(j, file, "intermediate_size");
    c.n_kv_heads = get_int_or(j, file, "num_key_value_heads", c.n_heads);
    c.norm_eps = get_num_or(j, file, "rms_norm_eps", 1e-6);
    c.rope_theta = get_num_or(j, file, "rope_theta", 10000.0);
    c.tie_embeddings = get_bool_or(j, file, "tie_word_embeddings", false);
    std::string act = j.value("hidden_act", "silu");
    if (act != "silu") fail(file, ": hidden_act \"", act, "\" is not supported (only silu)");
    if (j.contains("rope_scaling") && !j["rope_scaling"].is_null())
      fail(file, ": rope_scaling is not supported");
    if (c.arch == Arch::kMistral) {
      int64_t w = get_int_or(j, file, "sliding_window", 0);
      if (w < 0) fail(file, ": key \"sliding_window\" must be positive or null");
      c.sliding_window = w;
    }
  }
  c.head_dim = get_int_or(j, file, "head_dim", c.hidden / c.n_heads);
  if (c.head_dim * c.n_heads != c.hidden && !j.contains("head_dim"))
    fail(file, ": hidden_size ", c.hidden, " is not divisible by num_attention_heads ", c.n_heads);
  if (c.n_kv_heads <= 0 || c.n_heads % c.n_kv_heads != 0)
    fail(file, ": num_attention_heads ", c.n_heads, " is not a multiple of num_key_value_heads ", c.n_kv_heads);
  if (c.arch != Arch::kOpt && c.head_dim % 2 != 0) fail(file, ": head_dim ", c.head_dim, " must be even for RoPE");
  c.bos_id = get_int_or(j, file, "bos_token_id", c.arch == Arch::kOpt ? 2 : 1);
  c.eos_id = get_int_or(j, file, "eos_token_id", 2);
  if (j.contains("quantization_config")) c.quant = j["quantization_config"];
  return c;
}

ModelConfig ModelConfig::load(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) fail(dir.string(), ": model directory not found");
  auto path = dir / "config.json";
  json j;
  try {
    j = json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    fail(path.string(), ": not valid JSON");
  }
  ModelConfig c = parse(j, path.string());
  auto gen = dir / "generation_config.json";
  if (std::filesystem::exists(gen, ec)) {
    json g;
    try {
      g = json::parse(read_text_file(gen));
    } catch (const json::exception&) {
      fail(gen.string(), ": not valid JSON");
    }
    if (g.contains("bos_token_id") && g["bos_token_id"].is_number_integer()) c.bos_id = g["bos_token_id"];
    if (g.contains("eos_token_id") && g["eos_token_id"].is_number_integer()) c.eos_id = g["eos_token_id"];
  }
  return c;
}

}  // namespace sq
