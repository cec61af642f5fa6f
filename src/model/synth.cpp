#include "model/synth.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "io/config.h"
#include "model/names.h"

namespace sq {

namespace {

// The real models' shapes, by family (model/arch/).
struct Preset {
  const char* name;
  const char* type;
  ModelConfig::Dims dims;  // vocab, hidden, intermediate, layers, heads, kv_heads, max_pos, window, tied
};
const Preset& preset(const std::string& like) {
  static const Preset kPresets[] = {{"llama-7b", "llama", {32000, 4096, 11008, 32, 32, 32, 4096, 0, false}},
                                    {"llama-13b", "llama", {32000, 5120, 13824, 40, 40, 40, 4096, 0, false}},
                                    {"mistral-7b", "mistral", {32000, 4096, 14336, 32, 32, 8, 32768, 4096, false}},
                                    {"opt-6.7b", "opt", {50272, 4096, 16384, 32, 32, 32, 2048, 0, true}}};
  for (const Preset& p : kPresets)
    if (like == p.name) return p;
  fail("--like '", like, "' is not one of llama-7b, llama-13b, mistral-7b, opt-6.7b");
}

uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

size_t write_synthetic_model(const SynthOptions& o, const std::filesystem::path& out_dir, const ExecContext& ctx,
                             const OutputPolicy& policy) {
  namespace fs = std::filesystem;
  const Preset& p = preset(o.like);
  ModelConfig::Dims d = p.dims;
  if (o.layers > 0) d.layers = o.layers;
  if (o.hidden > 0) d.hidden = o.hidden;
  if (o.intermediate > 0) d.intermediate = o.intermediate;
  if (o.heads > 0) {  // keeps the real model's query heads per KV head (GQA), at least one KV head
    const int64_t per_kv = d.heads / d.kv_heads;
    d.heads = o.heads;
    d.kv_heads = std::max<int64_t>(1, o.heads / per_kv);
    SQ_CHECK(d.heads % d.kv_heads == 0, "synth: ", d.heads, " heads cannot share ", d.kv_heads, " KV heads");
  }
  if (o.vocab > 0) d.vocab = o.vocab;
  const ModelConfig c = ModelConfig::make(p.type, d);
  SQ_CHECK(o.dtype == DType::F16 || o.dtype == DType::BF16 || o.dtype == DType::F32, "--dtype must be f16, bf16 or f32");
  // Every tensor of the family's checkpoint: weights and embeddings heavy-tailed around 0 (scale 0.02,
  // a typical std of LLM weights), norm weights near 1, biases like weights.
  const std::vector<TensorSpec> ts = checkpoint_tensors(c, tensor_names(c, c.arch->roots[0], c.tie_embeddings));
  const float ws = 0.02f;

  // Header first (offsets are known from the shapes), then each tensor generated in parallel chunks.
  const size_t esz = dtype_size(o.dtype);
  nlohmann::json h = nlohmann::json::object();
  h["__metadata__"] = {{"format", "pt"}, {"squeeze_synthetic", o.like}};
  size_t off = 0, total = 0;
  for (auto& t : ts) {
    size_t n = 1;
    for (auto d : t.shape) n *= size_t(d);
    h[t.name] = {{"dtype", std::string(dtype_name(o.dtype))}, {"shape", t.shape}, {"data_offsets", {off, off + n * esz}}};
    off += n * esz;
  }
  total = off;
  std::string hs = h.dump();
  hs.append((8 - hs.size() % 8) % 8, ' ');
  uint64_t hn = hs.size();

  OutputPolicy out_policy = policy;
  if (!o.tokenizer.empty()) out_policy.inputs.push_back(o.tokenizer);
  if (out_policy.command.empty()) out_policy.command = "synth";
  AtomicDirectory tmp(out_dir, out_policy);
  std::error_code ec;
  {
    AtomicFile f(tmp / "model.safetensors");
    f.write(&hn, 8);
    f.write(hs);
    Progress bar("synth", int64_t(total >> 20), "MiB", o.progress);
    const size_t chunk = size_t(1) << 20;  // elements per parallel task
    std::vector<uint8_t> buf;
    uint64_t tensor_seed = o.seed * 0x9E3779B97F4A7C15ull + 1;
    for (auto& t : ts) {
      size_t n = 1;
      for (auto d : t.shape) n *= size_t(d);
      buf.resize(n * esz);
      uint64_t ts_seed = mix(tensor_seed++);
      size_t tasks = (n + chunk - 1) / chunk;
      ctx.pool->run(tasks, [&](size_t task, int) {
        uint64_t st = mix(ts_seed ^ (task * 0x632BE59BD9B4E019ull));
        size_t b = task * chunk, e = std::min(n, b + chunk);
        for (size_t i = b; i < e; i++) {
          st += 0x9E3779B97F4A7C15ull;
          uint64_t r = mix(st);
          double u = (double(r >> 11) + 0.5) * 0x1.0p-53;
          float v;
          if (t.kind == TensorKind::kNormWeight) {
            v = 1.0f + 0.1f * float(u - 0.5);
          } else {
            // Laplace(0, scale/sqrt2): heavier tails than a Gaussian of the same std; ~1e-4 outliers x 10.
            double mag = -std::log(u) * ws * 0.7071;
            if ((r & 0x3ff) < 2 && ((r >> 10) & 0x7) == 0) mag *= 10.0;
            v = float(r & (1ull << 63) ? -mag : mag);
          }
          if (o.dtype == DType::F32) std::memcpy(&buf[4 * i], &v, 4);
          else {
            uint16_t hv = o.dtype == DType::F16 ? f32_to_f16(v) : f32_to_bf16(v);
            std::memcpy(&buf[2 * i], &hv, 2);
          }
        }
      });
      f.write(buf.data(), buf.size());
      bar.add(int64_t(buf.size() >> 20));
    }
    f.commit();
    bar.finish();
  }
  nlohmann::json cfg = c.to_json();
  cfg["torch_dtype"] = o.dtype == DType::F16 ? "float16" : o.dtype == DType::BF16 ? "bfloat16" : "float32";
  cfg["squeeze_synthetic"] = o.like;
  write_file_atomic(tmp / "config.json", cfg.dump(2) + "\n");
  if (!o.tokenizer.empty()) {
    fs::copy_file(o.tokenizer, tmp / "tokenizer.model", ec);
    if (ec) fail(o.tokenizer, ": cannot copy tokenizer: ", ec.message());
  }
  tmp.commit();
  return total + 8 + hn;
}

}  // namespace sq
