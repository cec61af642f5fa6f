// Quantization quality of the whole pipeline, against figures from an independent PyTorch
// implementation (docs/RESULTS.md has the full tables and the commands that produced them).
//
// stories260K (bundled; calibration: calib.txt, 32 sequential windows x 128 tokens; perplexity:
// eval.txt at ctx 128, all 63 windows). Reference: F32 4.73, RTN per-row 3-bit 9.79 / 4-bit 5.25,
// SqueezeLLM 3-bit 6.90-7.00 / 4-bit 4.97-5.00, unweighted k-means 3-bit 6.93-7.22.
//   - SqueezeLLM 3-bit <= 7.15 and 4-bit <= 5.15, far below RTN per row (which lands on the reference).
//   - SmoothQuant+ (alpha searched, g128): calibration loss <= RTN w4 g128's on the calibration windows
//     and perplexity <= 1.01 x RTN w4 g128's. For time the test searches alpha on a 0.2 grid (the
//     reported figures use a 0.05 grid).
//
// docs-llama-6M (../shared; skipped when absent, under AddressSanitizer, and when SQUEEZE_ISA forces a
// kernel ISA: the figures do not depend on it, and the default pass already checks them). Calibration:
// calib.txt, 64 sequential windows x 256 tokens, as the reference.
//   - SqueezeLLM 3-bit < RTN per-row 3-bit on the first 32 heldout windows at ctx 512 (reference:
//     66.38 vs 66.94).
//   - SmoothQuant+ (alpha on the 0.05 grid scored on all 64 calibration windows, g128) vs RTN w4 g128 on
//     the first 32 heldout windows and the first 32 WikiText-2 test windows (ctx 512; WikiText-2
//     tokenized from its first 192 KiB). The gain is small on a model this size (RESULTS.md has the
//     full-file figures), so what is asserted is the bound: calibration loss <= RTN's and
//     perplexity <= 1.01 x RTN's.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>

#include "calib/calibrate.h"
#include "eval/perplexity.h"
#include "engine/engine.h"
#include "model/ops.h"
#include "model/tokenizer.h"
#include "quant/pipeline.h"
#include "test_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define SQ_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SQ_TEST_ASAN 1
#endif
#endif

namespace sq {
namespace {

#ifdef SQ_TEST_ASAN
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif

// Everything one model's tests share: the model, calibration windows and their statistics (written to
// a file, which is the only way a Sensitivity exists), and tokenized evaluation text.
struct Bench {
  std::unique_ptr<Model> model;
  OwnedContext ctx = make_context(2);
  sqtest::TempDir tmp;
  std::vector<std::vector<int32_t>> calib;
  Sensitivity sens;
  std::vector<int32_t> eval, eval2;

  Bench(const std::filesystem::path& dir, const std::string& calib_file, int64_t samples, int64_t seqlen) {
    model = Model::load(dir);
    auto tok = Tokenizer::load(dir, model->cfg.bos_id, model->cfg.eos_id);
    std::vector<int32_t> ids = {int32_t(model->cfg.bos_id)};
    auto t = tok->encode(sqtest::read_file(dir / calib_file));
    ids.insert(ids.end(), t.begin(), t.end());
    CalibOptions co;
    co.samples = samples;
    co.seqlen = seqlen;
    co.sampling = "sequential";
    co.progress = false;
    calib = calibration_windows(ids, co, calib_file, model->cfg.max_pos);
    auto t0 = std::chrono::steady_clock::now();
    CalibResult r = calibrate(model->cfg, *model->ckpt, calib, ctx.ctx, co);
    write_calibration(tmp / "calib.safetensors", r, {{"model", dir.string()}, {"data", calib_file}});
    sens = load_sensitivity(tmp / "calib.safetensors", model->cfg, *model->ckpt);
    std::printf("%s: calibration %lld x %lld tokens, %.1f s\n", dir.filename().c_str(), (long long)samples,
                (long long)seqlen, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }

  std::vector<int32_t> tokenize(const std::string& text) const {
    return Tokenizer::load(model->dir, model->cfg.bos_id, model->cfg.eos_id)->encode(text);
  }

  QuantizedModel quantize(QuantizeOptions o, const std::vector<std::vector<int32_t>>& windows = {}) {
    o.progress = false;
    return quantize_model(*model, o, &sens, windows, ctx.ctx);
  }

  // Perplexity of the quantized model (in memory) on the first max_windows windows of ids.
  double ppl(const QuantizedModel& q, const std::vector<int32_t>& ids, int64_t window, int64_t max_windows) {
    ModelPatch patch(*model, q);
    return perplexity(*model, ids, window, max_windows, ctx.ctx, false).ppl;
  }

  double calib_loss(const QuantizedModel& q, const std::vector<std::vector<int32_t>>& windows) {
    ModelPatch patch(*model, q);
    return calibration_loss(*model, windows, ctx.ctx);
  }
};

QuantizeOptions opts(const std::string& method, int bits, int64_t group = 0) {
  QuantizeOptions o;
  o.method = method;
  o.bits = bits;
  o.group_size = group;
  return o;
}

// ---- stories260K -------------------------------------------------------------------------------------

class Stories260K : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    bench_ = new Bench(sqtest::bundled_model(), "calib.txt", 32, 128);
    bench_->eval = bench_->tokenize(sqtest::read_file(sqtest::bundled_model() / "eval.txt"));
  }
  static void TearDownTestSuite() {
    delete bench_;
    bench_ = nullptr;
  }
  double eval_ppl(const QuantizedModel& q) { return bench_->ppl(q, bench_->eval, 128, 0); }
  static Bench* bench_;
};
Bench* Stories260K::bench_ = nullptr;

TEST_F(Stories260K, SqueezeLLM3BitFarBelowRtnPerRow) {
  const double sq3 = eval_ppl(bench_->quantize(opts("squeezellm", 3)));
  const double rtn3 = eval_ppl(bench_->quantize(opts("rtn", 3)));
  std::printf("stories260K 3-bit: SqueezeLLM %.4f, RTN per row %.4f\n", sq3, rtn3);
  EXPECT_LE(sq3, 7.15);
  EXPECT_NEAR(rtn3, 9.79, 0.35);  // RTN has no freedom: it must land on the reference
  EXPECT_LT(sq3, 0.8 * rtn3);
}

TEST_F(Stories260K, SqueezeLLM4BitBelowRtnPerRow) {
  const double sq4 = eval_ppl(bench_->quantize(opts("squeezellm", 4)));
  const double rtn4 = eval_ppl(bench_->quantize(opts("rtn", 4)));
  std::printf("stories260K 4-bit: SqueezeLLM %.4f, RTN per row %.4f\n", sq4, rtn4);
  EXPECT_LE(sq4, 5.15);
  EXPECT_NEAR(rtn4, 5.25, 0.06);
  EXPECT_LT(sq4, rtn4 - 0.1);
}

TEST_F(Stories260K, UnweightedKMeans3Bit) {
  // --sensitivity uniform: plain k-means per row. Reported beside SqueezeLLM; on this model the Fisher
  // weighting gains little (reference 6.93-7.22 vs 6.90-7.00), but both are far below RTN.
  QuantizeOptions o = opts("squeezellm", 3);
  o.progress = false;
  const double u3 = bench_->ppl(quantize_model(*bench_->model, o, nullptr, {}, bench_->ctx.ctx), bench_->eval, 128, 0);
  std::printf("stories260K 3-bit unweighted k-means: %.4f\n", u3);
  EXPECT_LE(u3, 7.3);
  EXPECT_GE(u3, 5.0);  // 3 bits cost something: F32 is 4.73
}

TEST_F(Stories260K, SmoothQuantPlusNoWorseThanRtnG128) {
  const std::vector<std::vector<int32_t>>& score = bench_->calib;
  QuantizeOptions o = opts("smoothquant+", 4, 128);
  o.alpha = "auto";
  o.alpha_step = 0.2;
  const QuantizedModel sqp = bench_->quantize(o, score);
  const QuantizedModel rtn = bench_->quantize(opts("rtn", 4, 128));
  const double rtn_loss = bench_->calib_loss(rtn, score);
  const double sqp_loss = sqp.report["calib_loss"].get<double>();
  // The reported loss is the loss of the model returned.
  EXPECT_NEAR(bench_->calib_loss(sqp, score), sqp_loss, 1e-9);
  const double sqp_ppl = eval_ppl(sqp), rtn_ppl = eval_ppl(rtn);
  std::printf("stories260K w4 g128: SmoothQuant+ (alpha %s) loss %.5f ppl %.4f; RTN loss %.5f ppl %.4f\n",
              sqp.report["alpha"].dump().c_str(), sqp_loss, sqp_ppl, rtn_loss, rtn_ppl);
  EXPECT_EQ(sqp.report["alpha_sweep"].size(), 7u);  // none, 0, 0.2, ..., 1
  // "none" (no smoothing) is a candidate and is exactly RTN w4 g128, so the loss bound holds by
  // construction; on this model the search finds a smoothing strength that beats it (0.4 on this grid).
  EXPECT_TRUE(sqp.report["alpha"].is_number()) << "the search chose no smoothing";
  EXPECT_LE(sqp_loss, rtn_loss + 1e-12);
  EXPECT_LE(sqp_ppl, 1.01 * rtn_ppl);
}

// What int8-activation decode (Isa::kAvx512Vnni, kernels/q8.h) costs: teacher-forced decoding, one
// token at a time through the KV cache, of the first 2 x 128 eval tokens, with the int8 kernels and
// with the f32 ones (kAvx512), for SqueezeLLM 3-bit, 4-bit and RTN w4 g128. Bound: perplexity within 1%.
double decode_ppl(const Model& m, const std::vector<int32_t>& ids, int64_t window, int64_t windows,
                  const ExecContext& ctx) {
  double nll = 0;
  int64_t count = 0;
  EngineOptions eo;
  eo.kv_tokens = window;
  Engine e(m, ctx, eo);
  const int32_t s = e.add_sequence();
  for (int64_t w = 0; w < windows; w++) {
    e.clear_sequence(s);
    const int32_t* t = ids.data() + w * window;
    for (int64_t i = 0; i + 1 < window; i++) {
      e.feed(s, &t[i], 1, false);
      nll += token_nll(e.logits(0), m.cfg.vocab_size, t[i + 1]);
      count++;
    }
  }
  return std::exp(nll / double(count));
}

TEST_F(Stories260K, Int8DecodeWithinOnePercentOfF32) {
  if (!isa_supported(Isa::kAvx512Vnni)) GTEST_SKIP() << "SKIPPED: this CPU lacks AVX-512 VBMI/VNNI (no int8 decode)";
  for (const QuantizeOptions& o : {opts("squeezellm", 3), opts("squeezellm", 4), opts("rtn", 4, 128)}) {
    const QuantizedModel q = bench_->quantize(o);
    ModelPatch patch(*bench_->model, q);
    const ExecContext f32{bench_->ctx.ctx.pool, Isa::kAvx512}, q8{bench_->ctx.ctx.pool, Isa::kAvx512Vnni};
    const double p32 = decode_ppl(*bench_->model, bench_->eval, 128, 2, f32);
    const double p8 = decode_ppl(*bench_->model, bench_->eval, 128, 2, q8);
    std::printf("stories260K %s %d-bit g%lld decode ppl: f32 activations %.4f, int8 %.4f (%+.3f%%)\n",
                o.method.c_str(), o.bits, (long long)o.group_size, p32, p8, 100.0 * (p8 / p32 - 1));
    EXPECT_NE(p8, p32) << "the int8 kernels did not run";
    EXPECT_LE(std::fabs(p8 / p32 - 1), 0.01) << o.method << " " << o.bits;
  }
}

// ---- docs-llama-6M -----------------------------------------------------------------------------------

class DocsLlama6M : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (kAsan || isa_forced() || sqtest::shared_dir().empty() || !std::filesystem::exists(dir() / "model.safetensors"))
      return;
    bench_ = new Bench(dir(), "calib.txt", 64, 256);
    bench_->eval = bench_->tokenize(sqtest::read_file(dir() / "heldout.txt"));
    const auto wiki = sqtest::shared_dir() / "data/wikitext-2-raw/wiki.test.raw";
    if (std::filesystem::exists(wiki)) {
      std::string text = sqtest::read_file(wiki).substr(0, 192 * 1024);
      text.resize(text.rfind('\n') + 1);  // whole lines
      bench_->eval2 = bench_->tokenize(text);
    }
  }
  static void TearDownTestSuite() {
    delete bench_;
    bench_ = nullptr;
  }
  static bool isa_forced() {
    const char* e = std::getenv("SQUEEZE_ISA");
    return e && *e && std::string(e) != "best";
  }
  void SetUp() override {
    if (kAsan) GTEST_SKIP() << "SKIPPED under AddressSanitizer: docs-llama-6M quality runs take minutes there";
    if (isa_forced())
      GTEST_SKIP() << "SKIPPED with SQUEEZE_ISA=" << std::getenv("SQUEEZE_ISA")
                   << ": quality figures do not depend on the kernel ISA; the default pass checks them";
    SQ_REQUIRE_SHARED("models/docs-llama-6M/model.safetensors");
    ASSERT_NE(bench_, nullptr);
  }
  static std::filesystem::path dir() { return sqtest::shared_dir() / "models/docs-llama-6M"; }
  static Bench* bench_;
};
Bench* DocsLlama6M::bench_ = nullptr;

TEST_F(DocsLlama6M, SqueezeLLM3BitBelowRtnPerRow) {
  const QuantizedModel q3 = bench_->quantize(opts("squeezellm", 3));
  const double sq3 = bench_->ppl(q3, bench_->eval, 512, 32);
  if (isa_supported(Isa::kAvx512Vnni)) {  // int8 decode on this model's real widths (256 / 768 columns)
    ModelPatch patch(*bench_->model, q3);
    const ExecContext f32{bench_->ctx.ctx.pool, Isa::kAvx512}, q8{bench_->ctx.ctx.pool, Isa::kAvx512Vnni};
    const double p32 = decode_ppl(*bench_->model, bench_->eval, 256, 2, f32);
    const double p8 = decode_ppl(*bench_->model, bench_->eval, 256, 2, q8);
    std::printf("docs-llama-6M SqueezeLLM 3-bit decode ppl (2 x 256 heldout tokens): f32 activations %.3f, "
                "int8 %.3f (%+.3f%%)\n", p32, p8, 100.0 * (p8 / p32 - 1));
    EXPECT_LE(std::fabs(p8 / p32 - 1), 0.01);
  }
  const double rtn3 = bench_->ppl(bench_->quantize(opts("rtn", 3)), bench_->eval, 512, 32);
  std::printf("docs-llama-6M 3-bit, first 32 heldout windows: SqueezeLLM %.3f, RTN per row %.3f\n", sq3, rtn3);
  EXPECT_LT(sq3, rtn3);
  EXPECT_NEAR(rtn3, 66.94, 0.7);  // the reference's RTN per-row 3-bit
  EXPECT_LE(sq3, 66.38 + 0.7);    // the reference's SqueezeLLM 3-bit, with calibration noise
}

TEST_F(DocsLlama6M, SmoothQuantPlusVsRtnG128HeldoutAndWikiText2) {
  // alpha is scored on the first 24 of the 64 calibration windows (the smoothing statistics use all 64):
  // the 21-candidate search on all of them was 75 s, most of the suite's wall time on 2 cores.
  const std::vector<std::vector<int32_t>> score(bench_->calib.begin(), bench_->calib.begin() + 24);
  QuantizeOptions o = opts("smoothquant+", 4, 128);
  o.alpha_step = 0.05;
  const QuantizedModel sqp = bench_->quantize(o, score);
  const QuantizedModel rtn = bench_->quantize(opts("rtn", 4, 128));
  const double rtn_loss = bench_->calib_loss(rtn, score);
  const double sqp_loss = sqp.report["calib_loss"].get<double>();
  EXPECT_LE(sqp_loss, rtn_loss + 1e-12);
  const double sqp_h = bench_->ppl(sqp, bench_->eval, 512, 32), rtn_h = bench_->ppl(rtn, bench_->eval, 512, 32);
  std::printf("docs-llama-6M w4 g128: calibration loss SmoothQuant+ (alpha %s) %.5f, RTN %.5f\n",
              sqp.report["alpha"].dump().c_str(), sqp_loss, rtn_loss);
  std::printf("docs-llama-6M w4 g128, first 32 heldout windows: SmoothQuant+ %.3f, RTN %.3f\n", sqp_h, rtn_h);
  EXPECT_LE(sqp_h, 1.01 * rtn_h);
  if (bench_->eval2.empty()) GTEST_SKIP() << "SKIPPED: ../shared/data/wikitext-2-raw/wiki.test.raw not present";
  ASSERT_GE(bench_->eval2.size(), size_t(32 * 512));
  const double sqp_w = bench_->ppl(sqp, bench_->eval2, 512, 32), rtn_w = bench_->ppl(rtn, bench_->eval2, 512, 32);
  std::printf("docs-llama-6M w4 g128, first 32 WikiText-2 test windows: SmoothQuant+ %.3f, RTN %.3f\n", sqp_w, rtn_w);
  EXPECT_LE(sqp_w, 1.01 * rtn_w);
}

}  // namespace
}  // namespace sq
