// `squeeze calibrate` end to end on the bundled stories260K: the file it writes loads back for the
// model, and bad input ends in one clear error line, exit status 1 and no output file.
#include <gtest/gtest.h>

#include "calib/calibrate.h"
#include "io/safetensors.h"
#include "test_calib_util.h"
#include "test_util.h"

namespace {

TEST(CalibCli, WritesASensitivityFileTheModelAccepts) {
  sqtest::TempDir tmp;
  const auto model = sqtest::bundled_model();
  const auto out = tmp / "calib.safetensors";
  auto r = sqtest::run_cli({"calibrate", "-m", model.string(), "--data", (model / "calib.txt").string(), "-o",
                            out.string(), "--samples", "3", "--seqlen", "32", "--seed", "5", "-q", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("\"tokens\":96"), std::string::npos) << r.out;
  const auto cfg = sq::ModelConfig::load(model);
  sq::Checkpoint ckpt(model);
  sq::Sensitivity s = sq::load_sensitivity(out, cfg, ckpt);
  EXPECT_EQ(s.all().size(), 35u);
  EXPECT_EQ(s.metadata().at("samples"), "3");
  EXPECT_EQ(s.metadata().at("seqlen"), "32");
  EXPECT_EQ(s.metadata().at("sampling"), "random");
  const auto& q = s.at("model.layers.0.self_attn.q_proj");
  double sum = 0;
  for (int64_t i = 0; i < q.rows * q.cols; i++) sum += q.fisher[i];
  EXPECT_GT(sum, 0.0);
}

void expect_error(const std::vector<std::string>& args, const std::string& needle, const std::filesystem::path& out) {
  auto r = sqtest::run_cli(args);
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out)) << out;
}

TEST(CalibCli, BadInputIsOneClearError) {
  sqtest::TempDir tmp;
  const std::string model = sqtest::bundled_model().string();
  const std::string data = (sqtest::bundled_model() / "calib.txt").string();
  const auto out = tmp / "c.safetensors";
  sqtest::write_file(tmp / "short.txt", "Once upon a time.");
  expect_error({"calibrate", "-m", model, "--data", (tmp / "short.txt").string(), "-o", out.string(), "--seqlen", "64"},
               "shorter than one window", out);
  expect_error({"calibrate", "-m", model, "--data", data, "-o", out.string(), "--seqlen", "1024"},
               "exceeds the model context of 512", out);
  expect_error({"calibrate", "-m", model, "--data", data, "-o", out.string(), "--seqlen", "256", "--samples", "100",
                "--sampling", "sequential"},
               "non-overlapping windows of 256 tokens fit", out);
  const auto missing = tmp / "no-dir" / "c.safetensors";
  expect_error({"calibrate", "-m", model, "--data", data, "-o", missing.string(), "--samples", "1", "--seqlen", "16"},
               "cannot write", missing);
  expect_error({"calibrate", "-m", model, "--data", (tmp / "absent.txt").string(), "-o", out.string()}, "absent.txt",
               out);
  EXPECT_FALSE(std::filesystem::exists(tmp.path / "no-dir"));
  // A quantized checkpoint has no dense weights to differentiate: said as such, not as a missing tensor.
  const auto q = tmp / "q";
  auto r = sqtest::run_cli({"quantize", "-m", model, "-o", q.string(), "--method", "rtn", "--bits", "4", "-q"});
  ASSERT_EQ(r.rc, 0) << r.err;
  expect_error({"calibrate", "-m", q.string(), "--data", data, "-o", out.string(), "--samples", "1", "--seqlen", "16"},
               "is quantized (config.json has quantization_config); calibrate the unquantized model", out);
}

// A sensitivity file made for one model and given to the quantizer of another: one error naming the
// file and the first mismatched tensor, exit status 1, and no output directory (nor a temporary one).
TEST(CalibCli, QuantizerRefusesASensitivityFileOfAnotherModel) {
  sqtest::TempDir tmp;
  calibtest::TinySpec s;
  calibtest::write_tiny_model(tmp / "a", s, 1);
  calibtest::TinySpec s2 = s;
  s2.I = 48;  // same tensor names, other MLP width
  calibtest::write_tiny_model(tmp / "b", s2, 1);
  const auto cfg = sq::ModelConfig::load(tmp / "a");
  sq::Checkpoint ckpt(tmp / "a");
  sq::ThreadPool pool(1);
  sq::ExecContext ctx{&pool, sq::Isa::kBest};
  sq::CalibOptions opts;
  opts.progress = false;
  std::vector<int32_t> ids(8);
  for (size_t i = 0; i < ids.size(); i++) ids[i] = int32_t((i * 7 + 3) % s.V);
  sq::CalibResult r = sq::calibrate(cfg, ckpt, {ids}, ctx, opts);
  const auto sens = tmp / "a.calib.safetensors";
  sq::write_calibration(sens, r, {{"model", "a"}});
  for (const char* method : {"squeezellm", "smoothquant+"}) {
    const auto out = tmp / (std::string("q-") + (method[1] == 'q' ? "sq" : "sqp"));
    auto res = sqtest::run_cli({"quantize", "-m", (tmp / "b").string(), "-o", out.string(), "--method", method,
                                "--bits", method[1] == 'q' ? "3" : "4", "--alpha", "0.5", "--sensitivity",
                                sens.string(), "-q"});
    EXPECT_EQ(res.rc, 1) << method << ": " << res.err;
    EXPECT_NE(res.err.find("was computed for another model"), std::string::npos) << res.err;
    EXPECT_NE(res.err.find(sens.string()), std::string::npos) << res.err;
    EXPECT_FALSE(std::filesystem::exists(out)) << out;
  }
  const auto entries = std::distance(std::filesystem::directory_iterator(tmp.path), {});
  EXPECT_EQ(entries, 3);  // a, b and the sensitivity file: nothing half-written
}

}  // namespace
