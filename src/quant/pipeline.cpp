#include "quant/pipeline.h"

#include <unistd.h>

#include <chrono>
#include <cmath>

#include "core/atomic_file.h"
#include "core/error.h"
#include "eval/perplexity.h"
#include "formats/dense.h"
#include "io/safetensors.h"
#include "engine/engine.h"
#include "model/ops.h"

namespace sq {

std::vector<float>* model_vector(Model& m, const std::string& name) {
  if (name == m.names.final_norm + ".weight") return &m.final_norm_w;
  if (name == m.names.final_norm + ".bias") return &m.final_norm_b;
  for (int64_t i = 0; i < int64_t(m.layers.size()); i++) {
    LayerWeights& L = m.layers[i];
    if (name.rfind(m.names.layer_prefix(i), 0) != 0) continue;
    for (int which = 0; which < 2; which++) {
      if (name == m.names.norm(i, which) + ".weight") return &L.norm_w[which];
      if (name == m.names.norm(i, which) + ".bias" && !L.norm_b[which].empty()) return &L.norm_b[which];
    }
    for (const LinearDesc& ld : m.arch().linears)
      if (ld.bias && name == m.names.linear(i, ld.role) + ".bias") return &L.bias[role_index(ld.role)];
  }
  fail("no tensor '", name, "' among the model's norms and biases");
}

std::unique_ptr<LinearWeight>* model_linear(Model& m, const std::string& prefix) {
  for (int64_t i = 0; i < int64_t(m.layers.size()); i++)
    if (prefix.rfind(m.names.layer_prefix(i), 0) == 0)
      for (auto& [name, slot] : m.layers[i].linears(m.names, i))
        if (name == prefix) return slot;
  if (!m.names.head_is_embed && prefix == head_prefix(m.names)) return &m.head;
  fail("no linear layer '", prefix, "' in the model");
}

ModelPatch::ModelPatch(Model& model, const QuantizedModel& q) {
  for (auto& [prefix, qm] : q.linears) {
    auto* slot = model_linear(model, prefix);
    std::unique_ptr<LinearWeight> w = std::visit(
        [](const auto& m) -> std::unique_ptr<LinearWeight> {
          using T = std::decay_t<decltype(m)>;
          if constexpr (std::is_same_v<T, LutMatrix>) return make_lut_linear(m);
          else if constexpr (std::is_same_v<T, Int4Matrix>) return make_int4_linear(m);
          else return make_dense_linear_f32(m.values, m.rows, m.cols, m.dtype);
        },
        qm);
    SQ_CHECK(w->rows() == (*slot)->rows() && w->cols() == (*slot)->cols(), "replacement for linear '", prefix,
             "' is [", w->rows(), ", ", w->cols(), "], the model's is [", (*slot)->rows(), ", ", (*slot)->cols(), "]");
    std::swap(*slot, w);
    linears_.emplace_back(slot, std::move(w));
  }
  for (auto& [name, v] : q.replaced) {
    auto* slot = model_vector(model, name);
    SQ_CHECK(slot->size() == v.size(), "replacement for '", name, "' has ", v.size(), " values, expected ", slot->size());
    std::vector<float> copy = v;
    std::swap(*slot, copy);
    vectors_.emplace_back(slot, std::move(copy));
  }
}

void ModelPatch::revert() {
  for (auto& [slot, old] : linears_) std::swap(*slot, old);
  for (auto& [slot, old] : vectors_) std::swap(*slot, old);
  linears_.clear();
  vectors_.clear();
}

double calibration_loss(const Model& model, const std::vector<std::vector<int32_t>>& windows, const ExecContext& ctx) {
  SQ_CHECK(!windows.empty(), "calibration loss needs at least one window");
  int64_t L = 0;
  for (auto& w : windows) L = std::max<int64_t>(L, int64_t(w.size()));
  EngineOptions eo;
  eo.kv_tokens = L;
  Engine engine(model, ctx, eo);
  const int32_t seq = engine.add_sequence();
  const int64_t V = model.cfg.vocab_size;
  double total = 0;
  for (auto& w : windows) {
    engine.clear_sequence(seq);
    engine.feed(seq, w.data(), int64_t(w.size()), true);
    double nll = 0;
    for (size_t t = 0; t + 1 < w.size(); t++) nll += token_nll(engine.logits(int64_t(t)), V, w[t + 1]);
    total += nll / double(w.size() - 1);
  }
  return total / double(windows.size());
}

namespace {

// f32 values -> bytes of `dtype` (F32/F16/BF16), for tensors the quantizer changed but keeps unquantized.
std::vector<uint8_t> encode_floats(const std::vector<float>& v, DType dtype) {
  std::vector<uint8_t> b(v.size() * dtype_size(dtype));
  for (size_t i = 0; i < v.size(); i++) {
    if (dtype == DType::F32) std::memcpy(&b[4 * i], &v[i], 4);
    else {
      uint16_t h = dtype == DType::F16 ? f32_to_f16(v[i]) : f32_to_bf16(v[i]);
      std::memcpy(&b[2 * i], &h, 2);
    }
  }
  return b;
}

}  // namespace

nlohmann::json autogptq_quantize_config(const nlohmann::json& qc) {
  // The fields of AutoGPTQ's BaseQuantizeConfig (it warns about any other key, e.g. squeeze's provenance).
  nlohmann::json out = nlohmann::json::object();
  for (const char* k : {"bits", "group_size", "damp_percent", "desc_act", "static_groups", "sym", "true_sequential",
                        "model_name_or_path", "model_file_base_name", "quant_method", "checkpoint_format"})
    if (qc.contains(k)) out[k] = qc[k];
  if (!out.contains("model_name_or_path")) out["model_name_or_path"] = nullptr;
  return out;
}

void write_quantized_checkpoint(const Model& src, const QuantizedModel& q, const std::filesystem::path& out_dir,
                                const OutputPolicy& policy) {
  namespace fs = std::filesystem;
  OutputPolicy p = policy;
  p.inputs.push_back(src.dir);
  if (p.command.empty()) p.command = "quantize";
  AtomicDirectory tmp(out_dir, p);
  std::error_code ec;

  SafetensorsWriter w;
  const Checkpoint& ck = *src.ckpt;
  for (const std::string& name : ck.names()) {
    const TensorView& t = ck.get(name);
    bool quantized = false;
    if (name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0)
      quantized = q.linears.count(name.substr(0, name.size() - 7)) != 0;
    if (quantized) continue;
    auto r = q.replaced.find(name);
    if (r != q.replaced.end()) {
      auto bytes = encode_floats(r->second, t.dtype);
      w.add(name, t.dtype, t.shape, bytes.data(), bytes.size());
    } else {
      w.add(name, t.dtype, t.shape, t.data, t.nbytes);
    }
  }
  for (auto& entry : q.linears) {
    const std::string& prefix = entry.first;  // clang 14 cannot capture structured bindings in lambdas
    std::visit(
        [&](const auto& m) {
          using T = std::decay_t<decltype(m)>;
          if constexpr (std::is_same_v<T, LutMatrix>) {
            write_lut_linear(w, prefix, m);
          } else if constexpr (std::is_same_v<T, Int4Matrix>) {
            write_int4_linear(w, prefix, m);
          } else {
            SQ_CHECK(int64_t(m.values.size()) == m.rows * m.cols, "dense replacement for '", prefix, "' has ",
                     m.values.size(), " values, expected ", m.rows, " x ", m.cols);
            auto bytes = encode_floats(m.values, m.dtype);  // add() copies
            w.add(prefix + ".weight", m.dtype, {m.rows, m.cols}, bytes.data(), bytes.size());
          }
        },
        entry.second);
  }
  w.set_metadata("format", "pt");
  w.write(tmp / "model.safetensors");

  nlohmann::json cfg = src.cfg.raw;
  if (q.quant_config.is_null()) cfg.erase("quantization_config");  // e.g. smoothing only: a dense model
  else cfg["quantization_config"] = q.quant_config;
  write_file_atomic(tmp / "config.json", cfg.dump(2) + "\n");
  if (q.quant_config.is_object() && q.quant_config.value("quant_method", "") == "gptq")
    write_file_atomic(tmp / "quantize_config.json", autogptq_quantize_config(q.quant_config).dump(2) + "\n");
  for (const char* f : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                        "special_tokens_map.json", "generation_config.json"})
    if (fs::exists(src.dir / f, ec)) {
      fs::copy_file(src.dir / f, tmp / f, fs::copy_options::overwrite_existing, ec);
      if (ec) fail(out_dir.string(), ": cannot copy ", f, ": ", ec.message());
    }
  tmp.commit();
}

}  // namespace sq

#include "calib/calibrate.h"
#include "core/progress.h"
#include "quant/int4_quant.h"
#include "quant/quantize_model.h"
#include "quant/squeezellm.h"

namespace sq {

nlohmann::json lut_quantization_config(const std::string& method, int bits, int64_t group_size, double sparsity) {
  return {{"quant_method", "squeeze_lut"}, {"format", "squeeze-lut"}, {"format_version", kLutFormatVersion},
          {"squeeze_method", method},     {"bits", bits},           {"group_size", group_size > 0 ? group_size : -1},
          {"sparsity_percent", sparsity}};
}

namespace {

// The head [vocab, hidden] at o.head_bits in the format of the model's other linears (`--head-bits`):
// int4 groups of the same group size when those are int4 (rtn int4, smoothquant+: nothing is folded
// into the head, so it is quantized unsmoothed), otherwise lut tables of the same group size. SqueezeLLM
// weights its k-means by the head's Fisher values when the sensitivity file has them (`calibrate` of
// an untied head writes them; older files lack them) and uniformly otherwise; the head gets no sparse
// part (the model-wide sparse fraction is planned over the layers' linears).
// int4_group: the group size of the model's int4 linears, 0 when they are lut tables.
QuantMatrix quantize_head(Model& m, const QuantizeOptions& o, const Sensitivity* sens, int int4_group,
                          const ExecContext& ctx) {
  if (o.method == "squeezellm") return squeezellm_quantize_head(m, o, sens, ctx);
  const LinearWeight& lw = *m.head;
  std::vector<float> W = lw.dequantize();
  if (int4_group > 0) return quantize_int4_rtn(W.data(), lw.rows(), lw.cols(), int4_group, o.clip_search, ctx);
  return rtn_lut_matrix(W.data(), lw.rows(), lw.cols(), o.head_bits, o.group_size, ctx);
}

}  // namespace

QuantizedModel quantize_model(Model& model, const QuantizeOptions& o, const Sensitivity* sens,
                              const std::vector<std::vector<int32_t>>& calib, const ExecContext& ctx) {
  if (!model.cfg.quant.is_null())
    fail(model.dir.string(), ": the model is already quantized (config.json has quantization_config)");
  if (o.bits < 2 || o.bits > 8) fail("--bits must be between 2 and 8, got ", o.bits);
  if (o.sparsity < 0 || o.sparsity >= 100) fail("--sparsity is a percentage in [0, 100), got ", o.sparsity);
  if (o.sensitive < 0 || o.sensitive >= 100) fail("--sensitive is a percentage in [0, 100), got ", o.sensitive);
  if (o.group_size < 0) fail("--group-size must be positive (0 = per row), got ", o.group_size);
  if (o.smooth_only && o.method != "smoothquant+") fail("smoothing only applies to --method smoothquant+, not ", o.method);
  check_finite_weights(*model.ckpt);  // NaN norms would be copied and NaN rows quantized without a word
  const bool int4 = writes_int4(o);
  if (o.head_bits != 0) {
    if (o.head_bits < 2 || o.head_bits > 8) fail("--head-bits must be 0 (keep the head) or between 2 and 8, got ", o.head_bits);
    if (int4 && o.head_bits != 4) fail("--head-bits ", o.head_bits, ": this method writes int4 groups, so the head can only take 4");
    if (o.smooth_only) fail("--head-bits does not apply to smoothing only");
    if (model.names.head_is_embed)
      fail("--head-bits: the head of ", model.dir.string(), " is tied to the token embeddings, which stay dense");
  }
  auto t0 = std::chrono::steady_clock::now();
  QuantizedModel q;
  if (o.method == "squeezellm") q = quantize_squeezellm(model, o, sens, ctx);
  else if (o.method == "rtn") q = quantize_rtn(model, o, ctx);
  else if (o.method == "smoothquant+") q = quantize_smoothquant_plus(model, o, sens, calib, ctx);
  else fail("--method '", o.method, "' is not one of squeezellm, rtn, smoothquant+");
  if (o.head_bits != 0) {
    const int group = int4 ? q.quant_config.at("group_size").get<int>() : 0;
    q.linears.emplace(head_prefix(model.names), quantize_head(model, o, sens, group, ctx));
  }
  if (q.quant_config.is_object()) q.quant_config["lm_head"] = o.head_bits != 0;
  q.report["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  q.report["method"] = o.method;
  return q;
}

}  // namespace sq
