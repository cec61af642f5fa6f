// The whole-model pipeline (quant/pipeline.h): SmoothQuant+ smoothing on its own leaves a model's logits
// unchanged (stories260K F32 with GQA, tiny-opt F16 with LayerNorm biases and ReLU; every fold on), and
// a checkpoint written by write_quantized_checkpoint and read back by Model::load computes exactly what
// the in-memory quantized model (ModelPatch) computes: bit-identical logits and perplexity for
// SqueezeLLM 3-bit + 0.45% sparse (lut + CSR), RTN w4 g128 and SmoothQuant+ (GPTQ int4 + smoothed
// norms), plus the AutoGPTQ quantize_config.json beside GPTQ checkpoints; `--head-bits` quantizes an
// untied head in the format of the other linears, and refuses what it cannot do.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "calib/calibrate.h"
#include "core/error.h"
#include "eval/perplexity.h"
#include "io/safetensors.h"
#include "engine/engine.h"
#include "model/synth.h"
#include "model/tokenizer.h"
#include "quant/pipeline.h"
#include "quant/quantize_model.h"
#include "test_util.h"

namespace sq {
namespace {

std::vector<float> logits_of(const Model& m, const std::vector<int32_t>& ids, const ExecContext& ctx) {
  return sequence_logits(m, ids, ctx);
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); i++) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

double max_abs(const std::vector<float>& a) {
  double m = 0;
  for (float v : a) m = std::max(m, double(std::fabs(v)));
  return m;
}

// Activation statistics (and Fisher) of `windows`, written to a file and mapped back: the Sensitivity
// the quantizers take only exists as a file.
Sensitivity stats_for(const Model& m, const std::vector<std::vector<int32_t>>& windows, const ExecContext& ctx,
                      const std::filesystem::path& file) {
  CalibOptions co;
  co.progress = false;
  CalibResult r = calibrate(m.cfg, *m.ckpt, windows, ctx, co);
  write_calibration(file, r, {{"model", m.dir.string()}, {"data", "test windows"}});
  return load_sensitivity(file, m.cfg, *m.ckpt);
}

// [BOS] + calib.txt of the bundled model, cut into `n` sequential windows of `len` tokens.
std::vector<std::vector<int32_t>> stories_windows(const Model& m, int64_t n, int64_t len) {
  auto tok = Tokenizer::load(m.dir, m.cfg.bos_id, m.cfg.eos_id);
  std::vector<int32_t> ids = {int32_t(m.cfg.bos_id)};
  auto t = tok->encode(sqtest::read_file(m.dir / "calib.txt"));
  ids.insert(ids.end(), t.begin(), t.end());
  CalibOptions co;
  co.samples = n;
  co.seqlen = len;
  co.sampling = "sequential";
  return calibration_windows(ids, co, "calib.txt", m.cfg.max_pos);
}

std::vector<int32_t> eval_ids(const Model& m) {
  auto tok = Tokenizer::load(m.dir, m.cfg.bos_id, m.cfg.eos_id);
  return tok->encode(sqtest::read_file(m.dir / "eval.txt"));
}

QuantizeOptions smooth_only_options(double alpha) {
  QuantizeOptions o;
  o.method = "smoothquant+";
  o.bits = 4;
  o.alpha = std::to_string(alpha);
  o.smooth_only = true;
  o.progress = false;
  return o;
}

// Smoothing must actually have moved weight between producers and consumers, or the invariance below
// proves nothing: some folded norm weight changes by a sizeable factor.
void expect_smoothing_is_not_trivial(Model& m, const QuantizedModel& q) {
  double biggest = 1.0;
  for (auto& [name, v] : q.replaced) {
    const std::vector<float>& orig = *model_vector(m, name);
    ASSERT_EQ(orig.size(), v.size()) << name;
    for (size_t j = 0; j < v.size(); j++)
      if (v[j] != 0 && orig[j] != 0) biggest = std::max(biggest, double(std::fabs(orig[j] / v[j])) + double(std::fabs(v[j] / orig[j])) - 1.0);
  }
  EXPECT_GT(biggest, 1.5) << "smoothing scales are all close to 1";
}

// Checks every fold is present: norms (and LayerNorm biases), up/fc1 -> down/fc2, v -> o.
void check_smoothed_model(Model& m, const std::vector<int32_t>& ids, const ExecContext& ctx, const Sensitivity& sens,
                          double alpha, double tol) {
  SCOPED_TRACE(::testing::Message() << m.dir.filename() << " alpha " << alpha);
  const bool opt = m.arch().norm_bias();  // LayerNorm with biases and biased linears (OPT)
  const auto before = logits_of(m, ids, ctx);
  QuantizedModel q = smoothquant_at(m, smooth_only_options(alpha), sens, alpha, ctx);
  EXPECT_TRUE(q.quant_config.is_null());
  // 2 norm weights per layer (+ 2 norm biases, fc1 bias and v bias for OPT).
  EXPECT_EQ(q.replaced.size(), size_t(m.cfg.n_layers * (opt ? 6 : 2)));
  EXPECT_EQ(q.linears.size(), size_t(m.cfg.n_layers * (opt ? 6 : 7)));
  for (int64_t i = 0; i < m.cfg.n_layers; i++) {
    EXPECT_TRUE(q.replaced.count(m.names.attn_norm(i) + ".weight"));
    EXPECT_TRUE(q.replaced.count(m.names.mlp_norm(i) + ".weight"));
    auto lin = m.layers[size_t(i)].linears(m.names, i);
    for (auto& [name, slot] : lin) {
      ASSERT_TRUE(q.linears.count(name)) << name;
      ASSERT_TRUE(std::holds_alternative<DenseMatrix>(q.linears.at(name))) << name;
      // Every linear, also o/down (only touched by the v->o and up->down folds), has changed.
      const auto& d = std::get<DenseMatrix>(q.linears.at(name));
      EXPECT_GT(max_abs_diff(d.values, (*slot)->dequantize()), 1e-6) << name << " was not smoothed";
    }
    if (opt) {
      EXPECT_TRUE(q.replaced.count(m.names.attn_norm(i) + ".bias"));
      EXPECT_TRUE(q.replaced.count(m.names.mlp_norm(i) + ".bias"));
      EXPECT_TRUE(q.replaced.count(lin[2].first + ".bias"));  // v_proj
      EXPECT_TRUE(q.replaced.count(lin[4].first + ".bias"));  // fc1
    }
  }
  expect_smoothing_is_not_trivial(m, q);
  {
    ModelPatch patch(m, q);
    const auto after = logits_of(m, ids, ctx);
    const double d = max_abs_diff(before, after);
    std::printf("%s alpha %.2f: max |logit change| after smoothing %.3g (logits up to %.3g)\n",
                m.dir.filename().c_str(), alpha, d, max_abs(before));
    EXPECT_LE(d, tol);
  }
  // Negative control: the smoothed weights without the folded norms change the logits a lot, so the
  // comparison above can see a missing fold.
  {
    QuantizedModel half;
    half.linears = q.linears;
    ModelPatch patch(m, half);
    EXPECT_GT(max_abs_diff(before, logits_of(m, ids, ctx)), 100 * tol);
  }
  // The patch reverted: the model is back to its exact original weights.
  EXPECT_EQ(max_abs_diff(before, logits_of(m, ids, ctx)), 0.0);
}

TEST(SmoothingAlone, Stories260KLogitsUnchanged) {
  auto m = Model::load(sqtest::bundled_model());
  auto ctx = make_context(2);
  sqtest::TempDir tmp;
  const auto sens = stats_for(*m, stories_windows(*m, 8, 64), ctx.ctx, tmp / "stats.safetensors");
  auto ids = eval_ids(*m);
  ids.resize(128);
  for (double alpha : {0.5, 1.0}) check_smoothed_model(*m, ids, ctx.ctx, sens, alpha, 1e-4);
}

TEST(SmoothingAlone, TinyOptF16LogitsUnchanged) {
  SQ_REQUIRE_SHARED("golden/tiny-opt/golden.safetensors");
  const auto dir = sqtest::shared_dir() / "golden/tiny-opt";
  auto m = Model::load(dir);
  auto ctx = make_context(2);
  // No calibration text comes with tiny-opt: statistics from a few windows of random token ids.
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> tok(3, int32_t(m->cfg.vocab_size - 1));
  std::vector<std::vector<int32_t>> windows(4, std::vector<int32_t>(32));
  for (auto& w : windows)
    for (auto& t : w) t = tok(rng);
  sqtest::TempDir tmp;
  const auto sens = stats_for(*m, windows, ctx.ctx, tmp / "stats.safetensors");

  SafetensorsFile g(dir / "golden.safetensors");
  const TensorView& tid = g.get("ids");
  std::vector<int32_t> ids(size_t(tid.numel()));
  std::memcpy(ids.data(), tid.data, tid.nbytes);
  const TensorView& tl = g.get("logits");
  std::vector<float> golden(size_t(tl.numel()));
  convert_to_f32(tl.data, tl.dtype, golden.data(), golden.size());

  for (double alpha : {0.5, 1.0}) {
    check_smoothed_model(*m, ids, ctx.ctx, sens, alpha, 1e-4);
    // And against the independent float64 reference.
    QuantizedModel q = smoothquant_at(*m, smooth_only_options(alpha), sens, alpha, ctx.ctx);
    ModelPatch patch(*m, q);
    EXPECT_LE(max_abs_diff(logits_of(*m, ids, ctx.ctx), golden), 1e-4) << "alpha " << alpha;
  }
}

TEST(SmoothingAlone, ThroughQuantizeModelAndWrittenCheckpoint) {
  // The public entry point with --alpha 0.5 and smoothing only; the written dense F32 checkpoint loads
  // as an unquantized model (no quantization_config) and computes what the in-memory one does.
  auto m = Model::load(sqtest::bundled_model());
  auto ctx = make_context(2);
  sqtest::TempDir tmp;
  const auto sens = stats_for(*m, stories_windows(*m, 4, 64), ctx.ctx, tmp / "stats.safetensors");
  auto ids = eval_ids(*m);
  ids.resize(96);
  const auto before = logits_of(*m, ids, ctx.ctx);
  QuantizedModel q = quantize_model(*m, smooth_only_options(0.5), &sens, {}, ctx.ctx);
  std::vector<float> in_memory;
  {
    ModelPatch patch(*m, q);
    in_memory = logits_of(*m, ids, ctx.ctx);
  }
  EXPECT_LE(max_abs_diff(before, in_memory), 1e-4);
  write_quantized_checkpoint(*m, q, tmp / "smoothed");
  auto cfg = nlohmann::json::parse(sqtest::read_file(tmp / "smoothed/config.json"));
  EXPECT_FALSE(cfg.contains("quantization_config"));
  EXPECT_FALSE(std::filesystem::exists(tmp / "smoothed/quantize_config.json"));
  auto back = Model::load(tmp / "smoothed");
  EXPECT_EQ(max_abs_diff(logits_of(*back, ids, ctx.ctx), in_memory), 0.0);

  QuantizeOptions bad = smooth_only_options(0.5);
  bad.method = "rtn";
  EXPECT_THROW(quantize_model(*m, bad, &sens, {}, ctx.ctx), Error);
}

// ---- pack -> write -> load round trip ------------------------------------------------------------

struct RoundTripCase {
  const char* name;
  QuantizeOptions opts;
  bool gptq;  // int4 groups + quantize_config.json
};

class RoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(RoundTrip, WrittenCheckpointEqualsInMemoryModel) {
  const RoundTripCase& c = GetParam();
  auto m = Model::load(sqtest::bundled_model());
  auto ctx = make_context(2);
  sqtest::TempDir tmp;
  const auto sens = stats_for(*m, stories_windows(*m, 8, 64), ctx.ctx, tmp / "stats.safetensors");
  const auto ids = eval_ids(*m);
  constexpr int64_t kCtx = 128, kWindows = 12;  // 12 of eval.txt's 63 windows: bit equality, not quality

  QuantizedModel q = quantize_model(*m, c.opts, &sens, {}, ctx.ctx);
  ASSERT_EQ(q.linears.size(), size_t(m->cfg.n_layers * 7));
  PerplexityResult mem;
  std::vector<float> mem_logits;
  {
    ModelPatch patch(*m, q);
    mem = perplexity(*m, ids, kCtx, kWindows, ctx.ctx, false);
    mem_logits = logits_of(*m, std::vector<int32_t>(ids.begin(), ids.begin() + kCtx), ctx.ctx);
  }
  const double f32_ppl = perplexity(*m, ids, kCtx, kWindows, ctx.ctx, false).ppl;
  EXPECT_NE(mem.ppl, f32_ppl) << "the patch did not change the model";

  write_quantized_checkpoint(*m, q, tmp / "q");
  auto back = Model::load(tmp / "q");
  const PerplexityResult disk = perplexity(*back, ids, kCtx, kWindows, ctx.ctx, false);
  std::printf("%s: ppl in memory %.6f, from disk %.6f (F32 %.4f, first %lld windows)\n", c.name, mem.ppl, disk.ppl,
              f32_ppl, (long long)kWindows);
  EXPECT_EQ(disk.ppl, mem.ppl);
  EXPECT_EQ(disk.tokens_scored, mem.tokens_scored);
  EXPECT_EQ(max_abs_diff(logits_of(*back, std::vector<int32_t>(ids.begin(), ids.begin() + kCtx), ctx.ctx), mem_logits),
            0.0);

  // Every linear came back in the format it was written in; replaced tensors are in the file.
  for (int64_t i = 0; i < m->cfg.n_layers; i++)
    for (auto& [name, slot] : back->layers[size_t(i)].linears(back->names, i)) {
      const std::string d = (*slot)->describe();
      if (c.gptq) EXPECT_NE(d.find("int4"), std::string::npos) << name << ": " << d;
      else EXPECT_NE(d.find("lut"), std::string::npos) << name << ": " << d;
    }
  for (auto& [name, v] : q.replaced) EXPECT_EQ(*model_vector(*back, name), v) << name;

  auto cfg = nlohmann::json::parse(sqtest::read_file(tmp / "q/config.json"));
  ASSERT_TRUE(cfg.contains("quantization_config"));
  EXPECT_EQ(cfg["quantization_config"], q.quant_config);
  const auto qc_path = tmp / "q/quantize_config.json";
  EXPECT_EQ(std::filesystem::exists(qc_path), c.gptq);
  if (c.gptq) {
    auto qc = nlohmann::json::parse(sqtest::read_file(qc_path));
    // What AutoGPTQ's BaseQuantizeConfig reads, and nothing it would warn about.
    EXPECT_EQ(qc["quant_method"], "gptq");
    EXPECT_EQ(qc["bits"], 4);
    EXPECT_EQ(qc["group_size"], 128);
    EXPECT_EQ(qc["desc_act"], false);
    EXPECT_EQ(qc["sym"], false);
    EXPECT_EQ(qc["model_file_base_name"], "model");
    EXPECT_EQ(qc["checkpoint_format"], "gptq");
    EXPECT_TRUE(qc.contains("damp_percent") && qc.contains("true_sequential") && qc.contains("static_groups"));
    EXPECT_FALSE(qc.contains("squeeze_method"));
    EXPECT_FALSE(qc.contains("lm_head"));
  }
}

QuantizeOptions options(const char* method, int bits, int64_t group, double sparsity, const char* alpha) {
  QuantizeOptions o;
  o.method = method;
  o.bits = bits;
  o.group_size = group;
  o.sparsity = sparsity;
  o.alpha = alpha;
  o.progress = false;
  return o;
}
QuantizeOptions squeezellm_sparse() { return options("squeezellm", 3, 0, 0.45, "auto"); }
QuantizeOptions rtn_g128() { return options("rtn", 4, 128, 0, "auto"); }
QuantizeOptions smoothquant_fixed() { return options("smoothquant+", 4, 128, 0, "0.5"); }

INSTANTIATE_TEST_SUITE_P(Stories260K, RoundTrip,
                         ::testing::Values(RoundTripCase{"squeezellm3_sparse045", squeezellm_sparse(), false},
                                           RoundTripCase{"rtn_w4_g128", rtn_g128(), true},
                                           RoundTripCase{"smoothquant_alpha05", smoothquant_fixed(), true}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(RoundTripSparse, SqueezeLLMSparsePartIsWritten) {
  // The 0.45% dense-and-sparse split reaches the file: the model-wide sparse fraction is recorded and
  // the CSR arrays are present.
  auto m = Model::load(sqtest::bundled_model());
  auto ctx = make_context(2);
  sqtest::TempDir tmp;
  const auto sens = stats_for(*m, stories_windows(*m, 4, 64), ctx.ctx, tmp / "stats.safetensors");
  QuantizedModel q = quantize_model(*m, squeezellm_sparse(), &sens, {}, ctx.ctx);
  const double pct = q.quant_config["sparsity_percent"].get<double>();
  EXPECT_NEAR(pct, 0.45, 0.1);
  write_quantized_checkpoint(*m, q, tmp / "q");
  Checkpoint ck(tmp / "q");
  int64_t nnz = 0, with_sparse = 0;
  for (auto& n : ck.names())
    if (n.size() > 14 && n.compare(n.size() - 14, 14, ".sparse_values") == 0) {
      with_sparse++;
      nnz += ck.get(n).numel();
    }
  EXPECT_GT(with_sparse, 0) << "no CSR tensors in the written checkpoint";
  // The stored entries are the planned fraction of all linear weights.
  int64_t weights = 0;
  for (int64_t i = 0; i < m->cfg.n_layers; i++)
    for (auto& [name, slot] : m->layers[size_t(i)].linears(m->names, i)) weights += (*slot)->rows() * (*slot)->cols();
  EXPECT_NEAR(100.0 * double(nnz) / double(weights), pct, 0.01);
}

// ---- --head-bits: the output head quantized too -----------------------------------------------------

// A small untied LLaMA-layout model (synth keeps lm_head separate) with 128-wide rows, so int4 groups
// of 64 and every lut width fit.
std::filesystem::path untied_model(const std::filesystem::path& dir, const ExecContext& ctx) {
  SynthOptions o;
  o.like = "llama-7b";
  o.layers = 2;
  o.hidden = 128;
  o.intermediate = 192;
  o.heads = 4;
  o.vocab = 300;
  o.dtype = DType::F32;
  o.progress = false;
  write_synthetic_model(o, dir, ctx);
  return dir;
}

struct HeadCase {
  const char* name;
  QuantizeOptions opts;
  const char* head_tensor;   // what the written checkpoint stores for the head
  const char* head_format;   // in the loaded head's describe()
};

void PrintTo(const HeadCase& c, std::ostream* os) { *os << c.name; }

class HeadBits : public ::testing::TestWithParam<HeadCase> {};

TEST_P(HeadBits, HeadIsQuantizedWrittenAndLoaded) {
  const HeadCase& c = GetParam();
  auto ctx = make_context(2);
  sqtest::TempDir tmp;
  auto m = Model::load(untied_model(tmp / "m", ctx.ctx));
  ASSERT_FALSE(m->names.head_is_embed);
  std::vector<std::vector<int32_t>> windows;
  for (int w = 0; w < 2; w++) {
    windows.emplace_back();
    for (int t = 0; t < 32; t++) windows.back().push_back(int32_t((w * 131 + t * 37 + 5) % 300));
  }
  const auto sens = stats_for(*m, windows, ctx.ctx, tmp / "stats.safetensors");
  const std::vector<int32_t> ids = {1, 17, 250, 3, 99, 42, 7, 128};

  QuantizeOptions keep = c.opts;
  keep.head_bits = 0;
  QuantizedModel q0 = quantize_model(*m, keep, &sens, {}, ctx.ctx);
  EXPECT_EQ(q0.quant_config["lm_head"], false);
  EXPECT_EQ(q0.linears.count("lm_head"), 0u);

  QuantizedModel q = quantize_model(*m, c.opts, &sens, {}, ctx.ctx);
  EXPECT_EQ(q.quant_config["lm_head"], true);
  ASSERT_EQ(q.linears.count("lm_head"), 1u);
  ASSERT_EQ(q.linears.size(), q0.linears.size() + 1);
  std::vector<float> with_head, without_head;
  {
    ModelPatch patch(*m, q0);
    without_head = logits_of(*m, ids, ctx.ctx);
  }
  {
    ModelPatch patch(*m, q);
    EXPECT_NE(m->head->describe().find(c.head_format), std::string::npos) << m->head->describe();
    with_head = logits_of(*m, ids, ctx.ctx);
  }
  EXPECT_EQ(m->head->describe().find(c.head_format), std::string::npos) << "the patch was not reverted";
  // The head's rounding shows in the logits, and only as a rounding (per-row uniform RTN on these
  // heavy-tailed weights moves them most: ~0.26 of the largest logit).
  const double d = max_abs_diff(with_head, without_head);
  EXPECT_GT(d, 1e-4);
  EXPECT_LT(d, 0.5 * max_abs(without_head));

  write_quantized_checkpoint(*m, q, tmp / "q");
  Checkpoint ck(tmp / "q");
  EXPECT_FALSE(ck.has("lm_head.weight"));
  EXPECT_TRUE(ck.has(std::string("lm_head.") + c.head_tensor));
  auto cfg = nlohmann::json::parse(sqtest::read_file(tmp / "q/config.json"));
  EXPECT_EQ(cfg["quantization_config"]["lm_head"], true);
  auto back = Model::load(tmp / "q");
  EXPECT_NE(back->head->describe().find(c.head_format), std::string::npos) << back->head->describe();
  EXPECT_EQ(max_abs_diff(logits_of(*back, ids, ctx.ctx), with_head), 0.0);
  EXPECT_EQ(back->bytes_per_token(), [&] {
    ModelPatch patch(*m, q);
    return m->bytes_per_token();
  }());
}

QuantizeOptions with_head(QuantizeOptions o, int head_bits) {
  o.head_bits = head_bits;
  return o;
}

INSTANTIATE_TEST_SUITE_P(
    Synth, HeadBits,
    ::testing::Values(HeadCase{"squeezellm4_head4", with_head(options("squeezellm", 4, 0, 0, "auto"), 4), "qcodes", "lut4"},
                      HeadCase{"squeezellm3_sparse_head3", with_head(options("squeezellm", 3, 0, 0.45, "auto"), 3), "qcodes", "lut3"},
                      HeadCase{"squeezellm3_head8", with_head(options("squeezellm", 3, 0, 0, "auto"), 8), "qcodes", "lut8"},
                      HeadCase{"rtn4_head4", with_head(options("rtn", 4, 0, 0, "auto"), 4), "qcodes", "lut4"},
                      HeadCase{"rtn_w4_g64_head4", with_head(options("rtn", 4, 64, 0, "auto"), 4), "qweight", "int4 g64"},
                      HeadCase{"smoothquant_g64_head4", with_head(options("smoothquant+", 4, 64, 0, "0.5"), 4), "qweight", "int4 g64"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(HeadBitsBadInput, RefusedWithOneClearError) {
  auto ctx = make_context(2);
  sqtest::TempDir tmp;
  const auto dir = untied_model(tmp / "m", ctx.ctx);
  auto m = Model::load(dir);
  auto expect_fail = [&](QuantizeOptions o, const std::string& needle) {
    try {
      quantize_model(*m, o, nullptr, {}, ctx.ctx);
      ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_fail(with_head(options("rtn", 4, 64, 0, "auto"), 3), "the head can only take 4");
  expect_fail(with_head(options("squeezellm", 4, 0, 0, "auto"), 9), "--head-bits must be 0");
  expect_fail(with_head(options("squeezellm", 4, 0, 0, "auto"), 1), "--head-bits must be 0");
  // The bundled model ties its head to the embeddings, which the engine reads as a dense table.
  auto tied = Model::load(sqtest::bundled_model());
  try {
    quantize_model(*tied, with_head(options("squeezellm", 3, 0, 0, "auto"), 3), nullptr, {}, ctx.ctx);
    ADD_FAILURE() << "a tied head was quantized";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tied to the token embeddings"), std::string::npos) << e.what();
  }
  // Through the CLI: exit status 1, one line, nothing written.
  const auto out = tmp / "q";
  auto r = sqtest::run_cli({"quantize", "-m", dir.string(), "-o", out.string(), "--method", "rtn", "--bits", "4",
                            "--group-size", "64", "--head-bits", "2", "-q"});
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("the head can only take 4"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(HeadBitsCli, QuantizeThenInspectShowsTheHeadFormat) {
  auto ctx = make_context(2);
  sqtest::TempDir tmp;
  const auto dir = untied_model(tmp / "m", ctx.ctx);
  const auto out = tmp / "q";
  auto r = sqtest::run_cli({"quantize", "-m", dir.string(), "-o", out.string(), "--method", "squeezellm", "--bits", "3",
                            "--head-bits", "4", "--sensitivity", "uniform", "-q"});
  ASSERT_EQ(r.rc, 0) << r.err;
  r = sqtest::run_cli({"inspect", "-m", out.string(), "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["head_format"], "lut4");
  EXPECT_EQ(j["quantization_config"]["lm_head"], true);
  r = sqtest::run_cli({"inspect", "-m", dir.string(), "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["head_format"], "F32");
}

}  // namespace
}  // namespace sq
