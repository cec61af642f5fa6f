#include "model/synth.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"

namespace sq {

namespace {

struct Shape {
  std::string model_type;
  int64_t hidden, inter, heads, kv_heads, layers, vocab, max_pos;
  double theta;
  int64_t window;
};

Shape shape_of(const std::string& like) {
  if (like == "llama-7b") return {"llama", 4096, 11008, 32, 32, 32, 32000, 4096, 10000.0, 0};
  if (like == "llama-13b") return {"llama", 5120, 13824, 40, 40, 40, 32000, 4096, 10000.0, 0};
  if (like == "mistral-7b") return {"mistral", 4096, 14336, 32, 8, 32, 32000, 32768, 10000.0, 4096};
  if (like == "opt-6.7b") return {"opt", 4096, 16384, 32, 32, 32, 50272, 2048, 0, 0};
  fail("--like '", like, "' is not one of llama-7b, llama-13b, mistral-7b, opt-6.7b");
}

uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

struct Tensor {
  std::string name;
  std::vector<int64_t> shape;
  float scale;  // Laplace scale; 0 = a norm weight (values near 1)
  bool ones = false;
};

}  // namespace

size_t write_synthetic_model(const SynthOptions& o, const std::filesystem::path& out_dir, const ExecContext& ctx) {
  namespace fs = std::filesystem;
  Shape s = shape_of(o.like);
  if (o.layers > 0) s.layers = o.layers;
  if (o.hidden > 0) s.hidden = o.hidden;
  if (o.intermediate > 0) s.inter = o.intermediate;
  if (o.heads > 0) {  // keeps the real model's query heads per KV head (GQA), at least one KV head
    const int64_t per_kv = s.heads / s.kv_heads;
    s.heads = o.heads;
    s.kv_heads = std::max<int64_t>(1, o.heads / per_kv);
    SQ_CHECK(s.heads % s.kv_heads == 0, "synth: ", s.heads, " heads cannot share ", s.kv_heads, " KV heads");
  }
  if (o.vocab > 0) s.vocab = o.vocab;
  SQ_CHECK(o.dtype == DType::F16 || o.dtype == DType::BF16 || o.dtype == DType::F32, "--dtype must be f16, bf16 or f32");
  const bool opt = s.model_type == "opt";
  const int64_t H = s.hidden, I = s.inter, hd = H / s.heads, kvd = s.kv_heads * hd;

  std::vector<Tensor> ts;
  const float ws = 0.02f;  // typical std of LLM weights
  std::string root = opt ? "model.decoder." : "model.";
  ts.push_back({root + "embed_tokens.weight", {s.vocab, H}, ws});
  if (opt) ts.push_back({root + "embed_positions.weight", {s.max_pos + 2, H}, ws});
  for (int64_t i = 0; i < s.layers; i++) {
    std::string p = root + "layers." + std::to_string(i) + ".";
    auto lin = [&](const std::string& n, int64_t r, int64_t c) {
      ts.push_back({p + n + ".weight", {r, c}, ws});
      if (opt) ts.push_back({p + n + ".bias", {r}, ws});
    };
    auto norm = [&](const std::string& n) {
      ts.push_back({p + n + ".weight", {H}, 0, true});
      if (opt) ts.push_back({p + n + ".bias", {H}, ws});
    };
    norm(opt ? "self_attn_layer_norm" : "input_layernorm");
    lin("self_attn.q_proj", H, H);
    lin("self_attn.k_proj", kvd, H);
    lin("self_attn.v_proj", kvd, H);
    lin(opt ? "self_attn.out_proj" : "self_attn.o_proj", H, H);
    norm(opt ? "final_layer_norm" : "post_attention_layernorm");
    if (opt) {
      lin("fc1", I, H);
      lin("fc2", H, I);
    } else {
      lin("mlp.gate_proj", I, H);
      lin("mlp.up_proj", I, H);
      lin("mlp.down_proj", H, I);
    }
  }
  ts.push_back({root + (opt ? "final_layer_norm.weight" : "norm.weight"), {H}, 0, true});
  if (opt) ts.push_back({root + "final_layer_norm.bias", {H}, ws});
  else ts.push_back({"lm_head.weight", {s.vocab, H}, ws});

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

  AtomicDirectory tmp(out_dir);
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
          if (t.ones) {
            v = 1.0f + 0.1f * float(u - 0.5);
          } else {
            // Laplace(0, scale/sqrt2): heavier tails than a Gaussian of the same std; ~1e-4 outliers x 10.
            double mag = -std::log(u) * t.scale * 0.7071;
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
  nlohmann::json cfg = {{"model_type", s.model_type},
                        {"vocab_size", s.vocab},
                        {"hidden_size", H},
                        {"num_hidden_layers", s.layers},
                        {"num_attention_heads", s.heads},
                        {"max_position_embeddings", s.max_pos},
                        {"bos_token_id", opt ? 2 : 1},
                        {"eos_token_id", 2},
                        {"torch_dtype", o.dtype == DType::F16 ? "float16" : o.dtype == DType::BF16 ? "bfloat16" : "float32"},
                        {"squeeze_synthetic", o.like}};
  if (opt) {
    cfg["architectures"] = {"OPTForCausalLM"};
    cfg["ffn_dim"] = I;
    cfg["do_layer_norm_before"] = true;
    cfg["word_embed_proj_dim"] = H;
    cfg["activation_function"] = "relu";
    cfg["enable_bias"] = true;
  } else {
    cfg["architectures"] = {s.model_type == "mistral" ? "MistralForCausalLM" : "LlamaForCausalLM"};
    cfg["intermediate_size"] = I;
    cfg["num_key_value_heads"] = s.kv_heads;
    cfg["rms_norm_eps"] = 1e-5;
    cfg["rope_theta"] = s.theta;
    cfg["hidden_act"] = "silu";
    cfg["tie_word_embeddings"] = false;
    if (s.window) cfg["sliding_window"] = s.window;
  }
  write_file_atomic(tmp / "config.json", cfg.dump(2) + "\n");
  if (!o.tokenizer.empty()) {
    fs::copy_file(o.tokenizer, tmp / "tokenizer.model", ec);
    if (ec) fail(o.tokenizer, ": cannot copy tokenizer: ", ec.message());
  }
  tmp.commit();
  return total + 8 + hn;
}

}  // namespace sq
