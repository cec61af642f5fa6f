// `squeeze synth`: checkpoints of real models' layouts with synthetic heavy-tailed weights. Small
// overrides of the shapes keep the tests fast; the layouts (names, GQA, OPT biases) are the real ones.
#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "core/context.h"
#include "model/model.h"
#include "engine/engine.h"
#include "model/synth.h"
#include "test_util.h"

namespace {

sq::SynthOptions small(const std::string& like) {
  sq::SynthOptions o;
  o.like = like;
  o.layers = 2;
  o.hidden = 64;
  o.intermediate = 96;
  o.heads = 8;
  o.vocab = 100;
  o.progress = false;
  return o;
}

// Every architecture loads in the engine and runs a forward pass with finite logits.
TEST(Synth, EveryLikeLoadsAndRuns) {
  sqtest::TempDir tmp;
  auto ctx = sq::make_context(2);
  for (const char* like : {"llama-7b", "llama-13b", "mistral-7b", "opt-6.7b"}) {
    const auto dir = tmp / like;
    const size_t bytes = sq::write_synthetic_model(small(like), dir, ctx.ctx);
    EXPECT_EQ(bytes, std::filesystem::file_size(dir / "model.safetensors")) << like;
    auto m = sq::Model::load(dir);
    EXPECT_EQ(m->cfg.n_layers, 2) << like;
    EXPECT_EQ(m->cfg.hidden, 64) << like;
    // Mistral keeps 4 query heads per KV head; the others have as many KV heads as heads.
    EXPECT_EQ(m->cfg.n_kv_heads, std::string(like) == "mistral-7b" ? 2 : 8) << like;
    std::vector<int32_t> ids = {1, 5, 9, 42, 7};
    std::vector<float> logits = sq::sequence_logits(*m, ids, ctx.ctx);
    ASSERT_EQ(logits.size(), ids.size() * 100) << like;
    for (float v : logits) ASSERT_TRUE(std::isfinite(v)) << like;
  }
}

// Heavy tails with rare outliers (what sparse extraction needs) and deterministic for a seed.
TEST(Synth, WeightsAreHeavyTailedAndSeeded) {
  sqtest::TempDir tmp;
  auto ctx = sq::make_context(2);
  sq::SynthOptions o = small("llama-7b");
  o.dtype = sq::DType::F32;
  sq::write_synthetic_model(o, tmp / "a", ctx.ctx);
  sq::write_synthetic_model(o, tmp / "b", ctx.ctx);
  o.seed = 1;
  sq::write_synthetic_model(o, tmp / "c", ctx.ctx);
  const std::string a = sqtest::read_file(tmp / "a" / "model.safetensors");
  EXPECT_EQ(a, sqtest::read_file(tmp / "b" / "model.safetensors"));
  EXPECT_NE(a, sqtest::read_file(tmp / "c" / "model.safetensors"));

  auto m = sq::Model::load(tmp / "a");
  const auto& w = m->ckpt->get("model.layers.0.mlp.gate_proj.weight");
  ASSERT_EQ(w.dtype, sq::DType::F32);
  const float* p = reinterpret_cast<const float*>(w.data);
  const size_t n = 96 * 64;
  double m2 = 0, m4 = 0, mx = 0;
  for (size_t i = 0; i < n; i++) {
    m2 += double(p[i]) * p[i];
    m4 += std::pow(double(p[i]), 4);
    mx = std::max(mx, std::fabs(double(p[i])));
  }
  m2 /= double(n);
  m4 /= double(n);
  const double rms = std::sqrt(m2);
  EXPECT_GT(rms, 0.005);
  EXPECT_LT(rms, 0.08);
  EXPECT_GT(m4 / (m2 * m2), 4.0);  // kurtosis: a Gaussian has 3
  EXPECT_GT(mx / rms, 5.0);        // a Gaussian sample of this size reaches about 3.8
}

TEST(Synth, CliBadInputIsOneClearError) {
  sqtest::TempDir tmp;
  auto r = sqtest::run_cli({"synth", "--like", "gpt-5", "-o", (tmp / "x").string()});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("'gpt-5' is not one of llama-7b"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp / "x"));
  r = sqtest::run_cli({"synth", "--like", "llama-7b", "--layers", "1", "-o", (tmp / "missing" / "x").string()});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("cannot write: directory"), std::string::npos) << r.err;
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path));
}

}  // namespace

// `squeeze bench`: one model gives one JSON object with the fields the issue lists; several -m are
// measured interleaved, each with its paired ratio to the first (the first's is exactly 1).
TEST(BenchCli, OneAndSeveralModels) {
  const std::string m = sqtest::bundled_model().string();
  auto r = sqtest::run_cli({"bench", "-m", m, "--prompt", "8", "--gen", "4", "--repeat", "2", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  for (const char* k : {"prompt_tok_s", "gen_tok_s", "gen_tok_s_min", "gen_tok_s_max", "model_bytes",
                        "weight_bytes_per_token", "read_bandwidth_gbs", "gen_bandwidth_fraction"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_GT(j["gen_tok_s"].get<double>(), 0);
  EXPECT_GT(j["read_bandwidth_gbs"].get<double>(), 0);

  r = sqtest::run_cli({"bench", "-m", m, "-m", m, "--prompt", "8", "--gen", "4", "--repeat", "3", "--json",
                       "--no-bandwidth"});
  ASSERT_EQ(r.rc, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["models"].size(), 2u);
  EXPECT_EQ(j["models"][0]["gen_vs_first"]["median"].get<double>(), 1.0);
  EXPECT_EQ(j["models"][0]["prompt_vs_first"]["min"].get<double>(), 1.0);
  EXPECT_GT(j["models"][1]["gen_vs_first"]["median"].get<double>(), 0.0);
  EXPECT_TRUE(j["models"][1]["interleaved"].get<bool>());

  r = sqtest::run_cli({"bench", "-m", m, "-m", "/nonexistent/model", "--gen", "2"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("/nonexistent/model"), std::string::npos) << r.err;
}
