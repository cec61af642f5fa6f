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
#include "io/config.h"
#include "io/safetensors.h"
#include "model/names.h"
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

// The family's config and every tensor of its checkpoint come from its description (model/arch/):
// embeddings ~ 0.5·N(0,1), norm weights 1 + 0.2·N, biases 0.2·N, linears N / sqrt(in), the head 0.3·N.
inline void write_tiny_model(const std::filesystem::path& dir, const TinySpec& s, uint64_t seed) {
  std::filesystem::create_directories(dir);
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  const sq::ModelConfig c =
      sq::ModelConfig::make(s.type, {s.V, s.d, s.I, s.layers, s.H, s.KV, s.max_pos, s.window, s.tie});
  const nlohmann::json cfg_json = c.to_json();
  sq::SafetensorsWriter w;
  const sq::TensorNames names = sq::tensor_names(c, c.arch->roots[0], c.tie_embeddings);
  for (const sq::TensorSpec& t : sq::checkpoint_tensors(c, names)) {
    double scale = 0.2, offset = 0;
    switch (t.kind) {
      case sq::TensorKind::kEmbedding: scale = 0.5; break;
      case sq::TensorKind::kNormWeight: offset = 1.0; break;
      case sq::TensorKind::kNormBias: case sq::TensorKind::kLinearBias: break;
      case sq::TensorKind::kLinearWeight:
        scale = t.name == names.head ? 0.3 : 1.0 / std::sqrt(double(t.shape[1]));
        break;
    }
    int64_t n = 1;
    for (auto x : t.shape) n *= x;
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = grid(offset + scale * nd(rng));
    if (s.dtype == sq::DType::F32) {
      w.add_f32(t.name, t.shape, v.data());
    } else {
      std::vector<uint16_t> h(v.size());
      for (size_t i = 0; i < v.size(); i++)
        h[i] = s.dtype == sq::DType::F16 ? sq::f32_to_f16(v[i]) : sq::f32_to_bf16(v[i]);
      w.add(t.name, s.dtype, t.shape, h.data(), h.size() * 2);
    }
  }
  w.write(dir / "model.safetensors");
  sqtest::write_file(dir / "config.json", cfg_json.dump(2));
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
