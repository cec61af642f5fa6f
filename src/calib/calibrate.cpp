#include "calib/calibrate.h"

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "io/safetensors.h"

namespace sq {

namespace {

// SplitMix64: a tiny fully specified generator, so a seed gives the same windows everywhere
// (std:: distributions are implementation-defined).
struct SplitMix64 {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
};

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

template <typename T>
CalibResult run_calibration(const ModelConfig& cfg, const TensorNames& names, const WeightSource& weights,
                            const std::vector<std::vector<int32_t>>& windows, const ExecContext& ctx,
                            const CalibOptions& opts) {
  CalibModel<T> model(cfg, names, weights, ctx);
  CalibResult res;
  res.linears = model.linears();
  GradSinks<T> sinks;
  for (const auto& li : res.linears) {
    auto& f = res.fisher[li.prefix];
    f.assign(size_t(li.rows * li.cols), 0.f);
    sinks.fisher[li.prefix] = f.data();
  }
  if (!names.head_is_embed) {  // an untied head is a linear the quantizer may take too (--head-bits)
    res.head = {head_prefix(names), cfg.vocab_size, cfg.hidden};
    auto& f = res.fisher[res.head.prefix];
    f.assign(size_t(res.head.rows * res.head.cols), 0.f);
    sinks.fisher[res.head.prefix] = f.data();
  }
  ActStats stats;
  int64_t total_tokens = 0;
  for (const auto& w : windows) total_tokens += int64_t(w.size());
  Progress bar("calibrate", int64_t(windows.size()), "seq", opts.progress, "tok",
               windows.empty() ? 1.0 : double(total_tokens) / double(windows.size()));
  const auto t0 = std::chrono::steady_clock::now();
  double loss_sum = 0;
  for (size_t s = 0; s < windows.size(); s++) {
    loss_sum += model.forward_backward(windows[s], sinks, &stats);
    bar.update(int64_t(s + 1));
  }
  bar.finish();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.tokens = stats.tokens;
  res.mean_loss = windows.empty() ? 0.0 : loss_sum / double(windows.size());
  for (const auto& li : res.linears) {
    res.absmax[li.prefix] = stats.absmax[li.prefix];
    const auto& ss = stats.sumsq[li.prefix];
    auto& ms = res.meansq[li.prefix];
    ms.resize(ss.size());
    for (size_t c = 0; c < ss.size(); c++) ms[c] = float(ss[c] / double(std::max<int64_t>(stats.tokens, 1)));
  }
  return res;
}

}  // namespace

std::vector<std::vector<int32_t>> calibration_windows(const std::vector<int32_t>& tokens, const CalibOptions& opts,
                                                      const std::string& data_name, int64_t model_context) {
  const int64_t n = int64_t(tokens.size()), L = opts.seqlen, N = opts.samples;
  if (N < 1) fail(data_name, ": number of calibration samples must be at least 1 (got ", N, ")");
  if (L < 2) fail(data_name, ": calibration sequence length must be at least 2 tokens (got ", L, ")");
  if (model_context > 0 && L > model_context)
    fail(data_name, ": calibration sequence length ", L, " exceeds the model context of ", model_context, " tokens");
  // The windows are materialised before the first forward: bound them (100 x 2048 tokens is the paper's
  // setting; the cap is 300 times that, and would take a 7B model months on CPUs).
  constexpr int64_t kMaxTokens = int64_t(1) << 26;
  if (N > kMaxTokens / L)
    fail(data_name, ": ", N, " windows of ", L, " tokens is more than the ", kMaxTokens,
         " tokens squeeze calibrates on in one run; use fewer --samples or a shorter --seqlen");
  if (n < L)
    fail(data_name, ": calibration data is ", n, " tokens (with BOS), shorter than one window of ", L, " tokens");
  std::vector<std::vector<int32_t>> out;
  if (opts.sampling == "sequential") {
    const int64_t fit = n / L;
    if (fit < N)
      fail(data_name, ": only ", fit, " non-overlapping windows of ", L, " tokens fit in its ", n,
           " tokens (with BOS), ", N, " requested; use fewer samples, a shorter seqlen or random sampling");
    for (int64_t i = 0; i < N; i++) out.emplace_back(tokens.begin() + i * L, tokens.begin() + (i + 1) * L);
  } else if (opts.sampling == "random") {
    SplitMix64 rng{opts.seed};
    const uint64_t span = uint64_t(n - L + 1);
    for (int64_t i = 0; i < N; i++) {
      const int64_t off = int64_t(rng.next() % span);
      out.emplace_back(tokens.begin() + off, tokens.begin() + off + L);
    }
  } else {
    fail(data_name, ": unknown sampling mode '", opts.sampling, "' (expected random or sequential)");
  }
  return out;
}

CalibResult calibrate(const ModelConfig& cfg, const TensorNames& names, const WeightSource& weights,
                      const std::vector<std::vector<int32_t>>& windows, const ExecContext& ctx,
                      const CalibOptions& opts) {
  if (windows.empty()) fail("calibration: no calibration windows");
  for (const auto& w : windows)
    if (int64_t(w.size()) > cfg.max_pos)
      fail("calibration: window of ", w.size(), " tokens exceeds the model context of ", cfg.max_pos, " tokens");
  return opts.f64 ? run_calibration<double>(cfg, names, weights, windows, ctx, opts)
                  : run_calibration<float>(cfg, names, weights, windows, ctx, opts);
}

CalibResult calibrate(const ModelConfig& cfg, const Checkpoint& ckpt, const std::vector<std::vector<int32_t>>& windows,
                      const ExecContext& ctx, const CalibOptions& opts) {
  if (!cfg.quant.is_null())  // its linears have no dense weights to differentiate
    fail(ckpt.dir().string(), " is quantized (config.json has quantization_config); calibrate the unquantized model");
  check_finite_weights(ckpt);  // NaN weights give NaN statistics for every linear after them
  CheckpointWeights w(ckpt);
  return calibrate(cfg, tensor_names(cfg, ckpt), w, windows, ctx, opts);
}

double sequence_loss(const ModelConfig& cfg, const TensorNames& names, const WeightSource& weights,
                     const std::vector<int32_t>& ids, const ExecContext& ctx, bool f64) {
  if (f64) return CalibModel<double>(cfg, names, weights, ctx).forward(ids);
  return CalibModel<float>(cfg, names, weights, ctx).forward(ids);
}

std::vector<float> forward_logits(const ModelConfig& cfg, const TensorNames& names, const WeightSource& weights,
                                  const std::vector<int32_t>& ids, const ExecContext& ctx, double* loss) {
  std::vector<float> logits;
  double l = CalibModel<float>(cfg, names, weights, ctx).forward(ids, &logits);
  if (loss) *loss = l;
  return logits;
}

void write_calibration(const std::filesystem::path& out, const CalibResult& res,
                       const std::map<std::string, std::string>& metadata, const OutputPolicy* policy) {
  if (policy) check_output_file(out, *policy);
  struct Item {
    std::vector<int64_t> shape;
    const std::vector<float>* data;
  };
  std::map<std::string, Item> items;  // sorted by name: the data section follows the header order
  auto find = [&](const std::map<std::string, std::vector<float>>& m, const std::string& key, size_t n,
                  const char* what) -> const std::vector<float>* {
    auto it = m.find(key);
    SQ_CHECK(it != m.end() && it->second.size() == n, out.string(), ": calibration result lacks ", what, " of ",
             key);
    return &it->second;
  };
  for (const auto& li : res.linears) {
    const size_t rc = size_t(li.rows * li.cols), c = size_t(li.cols);
    items["fisher." + li.prefix] = {{li.rows, li.cols}, find(res.fisher, li.prefix, rc, "fisher")};
    items["absmax." + li.prefix] = {{li.cols}, find(res.absmax, li.prefix, c, "absmax")};
    items["meansq." + li.prefix] = {{li.cols}, find(res.meansq, li.prefix, c, "meansq")};
  }
  if (!res.head.prefix.empty())
    items["fisher." + res.head.prefix] = {{res.head.rows, res.head.cols},
                                          find(res.fisher, res.head.prefix, size_t(res.head.rows * res.head.cols), "fisher")};
  nlohmann::json h = nlohmann::json::object();
  std::map<std::string, std::string> meta = metadata;
  meta["created_by"] = "squeeze calibrate";
  h["__metadata__"] = meta;
  uint64_t off = 0;
  for (const auto& [name, it] : items) {
    const uint64_t nb = it.data->size() * 4;
    h[name] = {{"dtype", "F32"}, {"shape", it.shape}, {"data_offsets", {off, off + nb}}};
    off += nb;
  }
  std::string hs = h.dump();
  hs.append((8 - hs.size() % 8) % 8, ' ');  // 8-byte aligned data section
  const uint64_t hn = hs.size();
  AtomicFile f(out);  // throws "<out>: cannot write: ..." if the directory is missing or read-only
  f.write(&hn, 8);
  f.write(hs);
  for (const auto& [name, it] : items) f.write(it.data->data(), it.data->size() * 4);
  f.commit();
}

Sensitivity::Sensitivity() = default;
Sensitivity::~Sensitivity() = default;
Sensitivity::Sensitivity(Sensitivity&&) noexcept = default;
Sensitivity& Sensitivity::operator=(Sensitivity&&) noexcept = default;

const LinearSensitivity& Sensitivity::at(const std::string& linear) const {
  auto it = stats_.find(linear);
  if (it == stats_.end()) fail("sensitivity file ", path_.string(), " has no statistics for '", linear, "'");
  return it->second;
}

const std::map<std::string, std::string>& Sensitivity::metadata() const { return file_->metadata(); }

Sensitivity load_sensitivity(const std::filesystem::path& path, const ModelConfig& cfg, const Checkpoint& ckpt) {
  Sensitivity s;
  s.path_ = path;
  s.file_ = std::make_unique<SafetensorsFile>(path);
  const std::string p = path.string();
  auto tensor = [&](const std::string& name, const std::vector<int64_t>& expect, const std::string& what) -> const float* {
    const TensorView* t = s.file_->find(name);
    if (!t) fail("sensitivity file ", p, " was computed for another model: it has no tensor ", name);
    if (t->shape != expect)
      fail("sensitivity file ", p, " was computed for another model: ", name, " has shape ", t->shape_str(),
           " but ", what);
    if (t->dtype != DType::F32)
      fail("sensitivity file ", p, ": tensor ", name, " has dtype ", dtype_name(t->dtype), ", expected F32");
    if (reinterpret_cast<uintptr_t>(t->data) % alignof(float) == 0) return static_cast<const float*>(t->data);
    auto& copy = s.owned_.emplace_back(size_t(t->numel()));
    std::memcpy(copy.data(), t->data, t->nbytes);
    return copy.data();
  };
  const TensorNames names = tensor_names(cfg, ckpt);
  for (const auto& li : linear_infos(cfg, names)) {
    LinearSensitivity ls;
    ls.rows = li.rows;
    ls.cols = li.cols;
    // The model's weight is [rows, cols]; the per-channel statistics are over its cols inputs.
    const std::string weight = "the model's weight is " + shape_str({li.rows, li.cols});
    const std::string inputs = "the model's layer has " + std::to_string(li.cols) + " input channels";
    ls.fisher = tensor("fisher." + li.prefix, {li.rows, li.cols}, weight);
    ls.absmax = tensor("absmax." + li.prefix, {li.cols}, inputs);
    ls.meansq = tensor("meansq." + li.prefix, {li.cols}, inputs);
    s.stats_[li.prefix] = ls;
  }
  // The head's Fisher values, written for untied heads (files from before they were have none).
  const std::string hp = head_prefix(names);
  if (!hp.empty() && s.file_->find("fisher." + hp)) {
    LinearSensitivity ls;
    ls.rows = cfg.vocab_size;
    ls.cols = cfg.hidden;
    ls.fisher = tensor("fisher." + hp, {ls.rows, ls.cols}, "the model's head is " + shape_str({ls.rows, ls.cols}));
    s.stats_[hp] = ls;
  }
  return s;
}

}  // namespace sq
