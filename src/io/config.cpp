#include "io/config.h"

#include <cmath>

#include "core/atomic_file.h"
#include "core/error.h"
#include "io/config_keys.h"
#include "model/arch/arch.h"

namespace sq {

using json = nlohmann::json;

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

ModelConfig ModelConfig::parse(const json& j, const std::string& file) {
  if (!j.is_object()) fail(file, ": not a JSON object");
  ModelConfig c;
  c.raw = j;
  if (!j.contains("model_type") || !j["model_type"].is_string()) fail(file, ": missing key \"model_type\"");
  c.model_type = j["model_type"].get<std::string>();
  c.arch = &arch_for(c.model_type, file);

  c.vocab_size = get_int(j, file, "vocab_size");
  c.hidden = get_int(j, file, "hidden_size");
  c.n_layers = get_int(j, file, "num_hidden_layers");
  c.n_heads = get_int(j, file, "num_attention_heads");
  c.max_pos = get_int(j, file, "max_position_embeddings");
  c.arch->parse(j, file, c);
  c.head_dim = get_int_or(j, file, "head_dim", c.hidden / c.n_heads);
  // Bounds far past any released model, so that products of dimensions (tensor sizes, KV bytes per
  // position, a full context's KV) cannot overflow int64 and a typo is not an allocation of petabytes.
  auto bound = [&](const char* key, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi) fail(file, ": key \"", key, "\" is ", v, ", outside ", lo, " .. ", hi);
  };
  bound("vocab_size", c.vocab_size, 1, int64_t(1) << 24);
  bound("hidden_size", c.hidden, 1, int64_t(1) << 18);
  bound(c.arch->mlp == MlpKind::kGated ? "intermediate_size" : "ffn_dim", c.intermediate, 1, int64_t(1) << 20);
  bound("num_hidden_layers", c.n_layers, 1, 4096);
  bound("num_attention_heads", c.n_heads, 1, 4096);
  bound("num_key_value_heads", c.n_kv_heads, 1, 4096);
  bound("head_dim", c.head_dim, 1, 4096);
  bound("max_position_embeddings", c.max_pos, 1, int64_t(1) << 24);
  if (!(std::isfinite(c.norm_eps) && c.norm_eps > 0 && c.norm_eps < 1))
    fail(file, ": the norm epsilon must be a number in (0, 1), got ", c.norm_eps);
  if (c.arch->pos == PosKind::kRope && !(std::isfinite(c.rope_theta) && c.rope_theta > 1))
    fail(file, ": key \"rope_theta\" must be a finite number above 1, got ", c.rope_theta);
  if (c.head_dim * c.n_heads != c.hidden && !j.contains("head_dim"))
    fail(file, ": hidden_size ", c.hidden, " is not divisible by num_attention_heads ", c.n_heads);
  if (c.n_kv_heads <= 0 || c.n_heads % c.n_kv_heads != 0)
    fail(file, ": num_attention_heads ", c.n_heads, " is not a multiple of num_key_value_heads ", c.n_kv_heads);
  if (c.arch->pos == PosKind::kRope && c.head_dim % 2 != 0)
    fail(file, ": head_dim ", c.head_dim, " must be even for RoPE");
  c.bos_id = get_int_or(j, file, "bos_token_id", c.arch->default_bos);
  c.eos_id = get_int_or(j, file, "eos_token_id", c.arch->default_eos);
  if (j.contains("quantization_config")) c.quant = j["quantization_config"];
  return c;
}

json ModelConfig::to_json() const {
  json j = {{"model_type", model_type},
            {"architectures", {arch->hf_architecture}},
            {"vocab_size", vocab_size},
            {"hidden_size", hidden},
            {"num_hidden_layers", n_layers},
            {"num_attention_heads", n_heads},
            {"max_position_embeddings", max_pos},
            {"bos_token_id", bos_id},
            {"eos_token_id", eos_id}};
  if (head_dim * n_heads != hidden) j["head_dim"] = head_dim;
  arch->write(*this, j);
  return j;
}

ModelConfig ModelConfig::make(const std::string& model_type, const Dims& d) {
  ModelConfig c;
  c.arch = &arch_for(model_type, "config");
  c.model_type = model_type;
  c.vocab_size = d.vocab;
  c.hidden = d.hidden;
  c.intermediate = d.intermediate;
  c.n_layers = d.layers;
  c.n_heads = d.heads;
  c.n_kv_heads = d.kv_heads;
  c.head_dim = d.heads > 0 ? d.hidden / d.heads : 0;
  c.max_pos = d.max_pos;
  c.sliding_window = d.sliding_window;
  c.tie_embeddings = d.tied;
  c.norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.bos_id = c.arch->default_bos;
  c.eos_id = c.arch->default_eos;
  return parse(c.to_json(), "config of " + model_type);
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
