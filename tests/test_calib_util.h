// Helpers shared by the calibration tests: tiny random checkpoints of each architecture written in the
// Hugging Face layout, and a weight source that perturbs one element (finite differences).
#pragma once
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "calib/weights.h"
#include "core/dtype.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace calibtest {

struct TinySpec {
  std::string type = "llama";  // llama / mistral / opt
  int64_t d = 24, H = 4, KV = 2, I = 40, V = 50, layers = 2, max_pos = 64, window = 0;
  bool tie = false;
  sq::DType dtype = sq::DType::F32;
};

// Weights on a grid of 2^-22 with |w| < 2, so w ± 2^-14 is exact in f32 (finite differences through
// an f32 weight source stay exact).
inline float grid(double v) {
  v = std::max(-1.9, std::min(1.9, v));
  return float(std::ldexp(std::nearbyint(std::ldexp(v, 22)), -22));
}

inline void write_tiny_model(const std::filesystem::path& dir, const TinySpec& s, uint64_t seed) {
  std::filesystem::create_directories(dir);
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  sq::SafetensorsWriter w;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, double scale, double offset) {
    int64_t n = 1;
    for (auto x : shape) n *= x;
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = grid(offset + scale * nd(rng));
    if (s.dtype == sq::DType::F32) {
      w.add_f32(name, shape, v.data());
    } else {
      std::vector<uint16_t> h(v.size());
      for (size_t i = 0; i < v.size(); i++)
        h[i] = s.dtype == sq::DType::F16 ? sq::f32_to_f16(v[i]) : sq::f32_to_bf16(v[i]);
      w.add(name, s.dtype, shape, h.data(), h.size() * 2);
    }
  };
  const int64_t hd = s.d / s.H, qd = s.H * hd, kvd = s.KV * hd;
  nlohmann::json cfg;
  cfg["model_type"] = s.type;
  cfg["vocab_size"] = s.V;
  cfg["hidden_size"] = s.d;
  cfg["num_hidden_layers"] = s.layers;
  cfg["num_attention_heads"] = s.H;
  cfg["max_position_embeddings"] = s.max_pos;
  if (s.type == "opt") {
    cfg["ffn_dim"] = s.I;
    cfg["do_layer_norm_before"] = true;
    cfg["word_embed_proj_dim"] = s.d;
    const std::string r = "model.decoder.";
    add(r + "embed_tokens.weight", {s.V, s.d}, 0.5, 0);
    add(r + "embed_positions.weight", {s.max_pos + 2, s.d}, 0.5, 0);
    add(r + "final_layer_norm.weight", {s.d}, 0.2, 1.0);
    add(r + "final_layer_norm.bias", {s.d}, 0.2, 0);
    for (int64_t i = 0; i < s.layers; i++) {
      const std::string p = r + "layers." + std::to_string(i) + ".";
      for (const char* n : {"self_attn_layer_norm", "final_layer_norm"}) {
        add(p + n + ".weight", {s.d}, 0.2, 1.0);
        add(p + n + ".bias", {s.d}, 0.2, 0);
      }
      const std::pair<const char*, std::vector<int64_t>> lin[] = {
          {"self_attn.q_proj", {s.d, s.d}}, {"self_attn.k_proj", {s.d, s.d}}, {"self_attn.v_proj", {s.d, s.d}},
          {"self_attn.out_proj", {s.d, s.d}}, {"fc1", {s.I, s.d}}, {"fc2", {s.d, s.I}}};
      for (auto& [n, shp] : lin) {
        add(p + n + ".weight", shp, 1.0 / std::sqrt(double(shp[1])), 0);
        add(p + n + ".bias", {shp[0]}, 0.2, 0);
      }
    }
  } else {
    cfg["intermediate_size"] = s.I;
    cfg["num_key_value_heads"] = s.KV;
    cfg["rms_norm_eps"] = 1e-5;
    cfg["rope_theta"] = 10000.0;
    cfg["tie_word_embeddings"] = s.tie;
    if (s.type == "mistral") cfg["sliding_window"] = s.window;
    add("model.embed_tokens.weight", {s.V, s.d}, 0.5, 0);
    if (!s.tie) add("lm_head.weight", {s.V, s.d}, 0.3, 0);
    add("model.norm.weight", {s.d}, 0.2, 1.0);
    for (int64_t i = 0; i < s.layers; i++) {
      const std::string p = "model.layers." + std::to_string(i) + ".";
      add(p + "input_layernorm.weight", {s.d}, 0.2, 1.0);
      add(p + "post_attention_layernorm.weight", {s.d}, 0.2, 1.0);
      const std::pair<const char*, std::vector<int64_t>> lin[] = {
          {"self_attn.q_proj", {qd, s.d}}, {"self_attn.k_proj", {kvd, s.d}}, {"self_attn.v_proj", {kvd, s.d}},
          {"self_attn.o_proj", {s.d, qd}}, {"mlp.gate_proj", {s.I, s.d}}, {"mlp.up_proj", {s.I, s.d}},
          {"mlp.down_proj", {s.d, s.I}}};
      for (auto& [n, shp] : lin) add(p + n + ".weight", shp, 1.0 / std::sqrt(double(shp[1])), 0);
    }
  }
  w.write(dir / "model.safetensors");
  sqtest::write_file(dir / "config.json", cfg.dump(2));
}

// A weight source that adds `delta` to element `index` (row-major) of tensor `name`.
class PerturbedWeights : public sq::WeightSource {
 public:
  PerturbedWeights(const sq::WeightSource& base, std::string name, int64_t index, float delta)
      : base_(base), name_(std::move(name)), index_(index), delta_(delta) {}
  bool has(const std::string& n) const override { return base_.has(n); }
  std::vector<int64_t> shape(const std::string& n) const override { return base_.shape(n); }
  std::string describe() const override { return base_.describe(); }
  void read_rows(const std::string& n, int64_t row0, int64_t n_rows, float* out) const override {
    base_.read_rows(n, row0, n_rows, out);
    if (n != name_) return;
    auto shp = base_.shape(n);
    int64_t cols = 1;
    for (size_t i = 1; i < shp.size(); i++) cols *= shp[i];
    const int64_t r = index_ / cols;
    if (r >= row0 && r < row0 + n_rows) out[(r - row0) * cols + index_ % cols] += delta_;
  }

 private:
  const sq::WeightSource& base_;
  std::string name_;
  int64_t index_;
  float delta_;
};

// ‖a − b‖ / ‖b‖ (Frobenius).
inline double rel_frob(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    num += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
    den += double(b[i]) * double(b[i]);
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

}  // namespace calibtest
