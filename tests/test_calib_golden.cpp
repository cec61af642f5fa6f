// Calibration against independent float64 PyTorch results (shared/golden): logits of the calibration
// forward for stories260K (F32), tiny-mistral (BF16, sliding window 8 over 30 tokens) and tiny-opt
// (F16, biases, learned positions); Fisher diagonals and activation statistics of stories260K on the
// golden calibration windows; and the windows themselves from the golden text through the tokenizer.
#include <gtest/gtest.h>

#include <cstring>

#include "calib/calibrate.h"
#include "io/safetensors.h"
#include "model/names.h"
#include "model/tokenizer.h"
#include "test_calib_util.h"
#include "test_util.h"

namespace {

std::vector<int32_t> read_i32(const sq::SafetensorsFile& f, const std::string& name) {
  const auto& t = f.get(name);
  EXPECT_EQ(t.dtype, sq::DType::I32);
  std::vector<int32_t> v(size_t(t.numel()));
  std::memcpy(v.data(), t.data, v.size() * 4);
  return v;
}

std::vector<float> read_f32(const sq::SafetensorsFile& f, const std::string& name) {
  const auto& t = f.get(name);
  EXPECT_EQ(t.dtype, sq::DType::F32);
  std::vector<float> v(size_t(t.numel()));
  std::memcpy(v.data(), t.data, v.size() * 4);
  return v;
}

void check_logits(const std::filesystem::path& model_dir, const std::filesystem::path& golden,
                  const std::string& ids_name) {
  sq::SafetensorsFile g(golden);
  const auto ids = read_i32(g, ids_name);
  const auto want = read_f32(g, "logits");
  const auto cfg = sq::ModelConfig::load(model_dir);
  sq::Checkpoint ckpt(model_dir);
  sq::CheckpointWeights src(ckpt);
  sq::ThreadPool pool(2);
  sq::ExecContext ctx{&pool, sq::Isa::kBest};
  double loss = 0;
  const auto got = sq::forward_logits(cfg, sq::tensor_names(cfg, ckpt), src, ids, ctx, &loss);
  ASSERT_EQ(got.size(), want.size());
  double max_err = 0;
  for (size_t i = 0; i < got.size(); i++) max_err = std::max(max_err, std::fabs(double(got[i]) - want[i]));
  EXPECT_LE(max_err, 1e-4) << model_dir;
  std::printf("%s: max |logit error| %.2e over %zu logits\n", model_dir.filename().c_str(), max_err, got.size());
  // The loss is the mean cross-entropy of the golden logits.
  const int64_t L = int64_t(ids.size()), V = int64_t(want.size()) / L;
  double ref = 0;
  for (int64_t t = 0; t + 1 < L; t++) {
    const float* l = want.data() + t * V;
    double mx = l[0], se = 0;
    for (int64_t j = 1; j < V; j++) mx = std::max(mx, double(l[j]));
    for (int64_t j = 0; j < V; j++) se += std::exp(double(l[j]) - mx);
    ref += mx + std::log(se) - l[ids[size_t(t + 1)]];
  }
  EXPECT_NEAR(loss, ref / double(L - 1), 1e-4);
}

TEST(CalibGolden, Stories260KLogits) {
  SQ_REQUIRE_SHARED("golden/stories260K.safetensors");
  check_logits(sqtest::bundled_model(), sqtest::shared_dir() / "golden/stories260K.safetensors", "prompt_ids");
}

TEST(CalibGolden, TinyMistralSlidingWindowLogits) {
  SQ_REQUIRE_SHARED("golden/tiny-mistral/golden.safetensors");
  const auto dir = sqtest::shared_dir() / "golden/tiny-mistral";
  check_logits(dir, dir / "golden.safetensors", "ids");
}

TEST(CalibGolden, TinyOptLogits) {
  SQ_REQUIRE_SHARED("golden/tiny-opt/golden.safetensors");
  const auto dir = sqtest::shared_dir() / "golden/tiny-opt";
  check_logits(dir, dir / "golden.safetensors", "ids");
}

void check_stories_calibration(bool f64, sq::Isa isa) {
  sq::SafetensorsFile g(sqtest::shared_dir() / "golden/stories260K.safetensors");
  const auto ids = read_i32(g, "calib_ids");
  ASSERT_EQ(g.get("calib_ids").shape, (std::vector<int64_t>{4, 24}));
  std::vector<std::vector<int32_t>> windows;
  for (size_t i = 0; i < 4; i++) windows.emplace_back(ids.begin() + i * 24, ids.begin() + (i + 1) * 24);

  const auto dir = sqtest::bundled_model();
  const auto cfg = sq::ModelConfig::load(dir);
  sq::Checkpoint ckpt(dir);
  sq::ThreadPool pool(2);
  sq::ExecContext ctx{&pool, isa};
  sq::CalibOptions opts;
  opts.progress = false;
  opts.f64 = f64;
  const sq::CalibResult r = sq::calibrate(cfg, ckpt, windows, ctx, opts);
  EXPECT_EQ(r.tokens, 96);
  ASSERT_EQ(r.linears.size(), 35u);
  double worst = 0;
  std::string worst_name;
  for (const auto& li : r.linears) {
    for (const char* kind : {"fisher", "absmax", "meansq"}) {
      const std::string name = std::string(kind) + "." + li.prefix;
      const auto want = read_f32(g, name);
      const auto& got = std::string(kind) == "fisher" ? r.fisher.at(li.prefix)
                        : std::string(kind) == "absmax" ? r.absmax.at(li.prefix)
                                                        : r.meansq.at(li.prefix);
      ASSERT_EQ(got.size(), want.size()) << name;
      const double e = calibtest::rel_frob(got.data(), want.data(), want.size());
      EXPECT_LE(e, 1e-3) << name;
      if (e > worst) worst = e, worst_name = name;
    }
  }
  std::printf("stories260K calibration (%s, %s): worst relative Frobenius error %.2e (%s)\n", f64 ? "f64" : "f32",
              sq::isa_name(isa).c_str(), worst, worst_name.c_str());
}

TEST(CalibGolden, Stories260KFisherAndStatistics) {
  SQ_REQUIRE_SHARED("golden/stories260K.safetensors");
  check_stories_calibration(false, sq::Isa::kBest);
}

TEST(CalibGolden, Stories260KFisherAndStatisticsScalarAndF64) {
  SQ_REQUIRE_SHARED("golden/stories260K.safetensors");
  check_stories_calibration(false, sq::Isa::kScalar);
  check_stories_calibration(true, sq::Isa::kBest);
}

TEST(CalibGolden, Stories260KWindowsFromCalibText) {
  SQ_REQUIRE_SHARED("golden/stories260K.safetensors");
  sq::SafetensorsFile g(sqtest::shared_dir() / "golden/stories260K.safetensors");
  const auto want = read_i32(g, "calib_ids");
  const auto dir = sqtest::bundled_model();
  const auto cfg = sq::ModelConfig::load(dir);
  auto tok = sq::Tokenizer::load(dir, cfg.bos_id, cfg.eos_id);
  std::vector<int32_t> toks = {int32_t(cfg.bos_id)};
  const auto body = tok->encode(g.metadata().at("calib_text"));
  toks.insert(toks.end(), body.begin(), body.end());
  sq::CalibOptions o;
  o.samples = 4;
  o.seqlen = 24;
  o.sampling = "sequential";
  const auto w = sq::calibration_windows(toks, o, "calib_text", cfg.max_pos);
  std::vector<int32_t> flat;
  for (auto& x : w) flat.insert(flat.end(), x.begin(), x.end());
  EXPECT_EQ(flat, want);
}

}  // namespace
