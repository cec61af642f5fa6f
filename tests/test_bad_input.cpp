// Bad input gets one line naming the file and the problem, exit status 1, never a crash.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "test_util.h"

namespace {

using sqtest::TempDir;

// A copy of the bundled model that a test can damage.
struct ModelCopy {
  TempDir tmp;
  std::filesystem::path dir;
  ModelCopy() : dir(tmp.path / "m") {
    std::filesystem::copy(sqtest::bundled_model(), dir, std::filesystem::copy_options::recursive);
  }
};

// Expects exit status 1 and one error line on stderr containing every needle.
void expect_error(const sqtest::CliResult& r, std::vector<std::string> needles) {
  EXPECT_EQ(r.rc, 1) << "stderr: " << r.err;
  std::string line = r.err;
  while (!line.empty() && (line.back() == '\n')) line.pop_back();
  auto last_nl = line.rfind('\n');
  std::string last = last_nl == std::string::npos ? line : line.substr(last_nl + 1);
  EXPECT_EQ(last.rfind("squeeze: error: ", 0), 0u) << r.err;
  for (auto& n : needles) EXPECT_NE(last.find(n), std::string::npos) << "missing '" << n << "' in: " << last;
}

sqtest::CliResult inspect(const std::filesystem::path& dir) { return sqtest::run_cli({"inspect", "-m", dir.string()}); }

// Rewrites model.safetensors with a new header (and the original data section).
void rewrite_header(const std::filesystem::path& file, const std::function<void(nlohmann::json&)>& edit) {
  std::string b = sqtest::read_file(file);
  uint64_t n;
  std::memcpy(&n, b.data(), 8);
  auto h = nlohmann::json::parse(b.substr(8, n));
  edit(h);
  std::string hs = h.dump();
  uint64_t m = hs.size();
  std::string out(reinterpret_cast<char*>(&m), 8);
  sqtest::write_file(file, out + hs + b.substr(8 + n));
}

// Appends a tensor to model.safetensors (header and data section rewritten).
void add_tensor(const std::filesystem::path& file, const std::string& name, const std::string& dtype,
                std::vector<int64_t> shape, const std::string& bytes) {
  std::string b = sqtest::read_file(file);
  uint64_t n;
  std::memcpy(&n, b.data(), 8);
  auto h = nlohmann::json::parse(b.substr(8, n));
  std::string data = b.substr(8 + n);
  h[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {data.size(), data.size() + bytes.size()}}};
  data += bytes;
  std::string hs = h.dump();
  uint64_t m = hs.size();
  sqtest::write_file(file, std::string(reinterpret_cast<char*>(&m), 8) + hs + data);
}

// Overwrites element `index` of an F32 tensor of model.safetensors.
void poke_f32(const std::filesystem::path& file, const std::string& name, int64_t index, float v) {
  std::string b = sqtest::read_file(file);
  uint64_t n;
  std::memcpy(&n, b.data(), 8);
  auto h = nlohmann::json::parse(b.substr(8, n));
  ASSERT_EQ(h.at(name).at("dtype"), "F32");
  const uint64_t off = 8 + n + h[name]["data_offsets"][0].get<uint64_t>() + 4 * uint64_t(index);
  std::memcpy(b.data() + off, &v, 4);
  sqtest::write_file(file, b);
}

TEST(BadInput, MissingModelDirectory) {
  expect_error(inspect("/nonexistent/model"), {"/nonexistent/model", "not found"});
}

TEST(BadInput, MissingConfig) {
  ModelCopy m;
  std::filesystem::remove(m.dir / "config.json");
  expect_error(inspect(m.dir), {"config.json", "file not found"});
}

TEST(BadInput, MissingWeights) {
  ModelCopy m;
  std::filesystem::remove(m.dir / "model.safetensors");
  expect_error(inspect(m.dir), {"no model.safetensors"});
}

TEST(BadInput, MissingTokenizer) {
  ModelCopy m;
  std::filesystem::remove(m.dir / "tokenizer.model");
  auto r = sqtest::run_cli({"generate", "-m", m.dir.string(), "-n", "3"});
  expect_error(r, {m.dir.string(), "tokenizer"});
}

TEST(BadInput, HeaderLengthPastEndOfFile) {
  ModelCopy m;
  auto f = m.dir / "model.safetensors";
  std::string b = sqtest::read_file(f);
  uint64_t n = b.size() + 100;
  std::memcpy(b.data(), &n, 8);
  sqtest::write_file(f, b);
  expect_error(inspect(m.dir), {"model.safetensors", "header length", "past the end"});
}

TEST(BadInput, TruncatedFile) {
  ModelCopy m;
  auto f = m.dir / "model.safetensors";
  sqtest::write_file(f, sqtest::read_file(f).substr(0, 5));
  expect_error(inspect(m.dir), {"model.safetensors", "not a safetensors file"});
}

TEST(BadInput, TensorOffsetsOutOfRange) {
  ModelCopy m;
  rewrite_header(m.dir / "model.safetensors", [](nlohmann::json& h) {
    auto& t = h["model.norm.weight"];
    uint64_t b = t["data_offsets"][0];
    t["data_offsets"] = {b + 100000000, b + 100000000 + 256};
  });
  expect_error(inspect(m.dir), {"model.safetensors", "model.norm.weight", "out of range"});
}

TEST(BadInput, TensorsOverlap) {
  ModelCopy m;
  rewrite_header(m.dir / "model.safetensors", [](nlohmann::json& h) {
    auto off = h["model.layers.0.input_layernorm.weight"]["data_offsets"];
    h["model.norm.weight"]["data_offsets"] = off;
  });
  expect_error(inspect(m.dir), {"model.safetensors", "overlap"});
}

TEST(BadInput, DtypeDisagreesWithConfigShape) {
  ModelCopy m;
  // Same bytes, declared as I32: not a float weight.
  rewrite_header(m.dir / "model.safetensors", [](nlohmann::json& h) { h["model.norm.weight"]["dtype"] = "I32"; });
  expect_error(inspect(m.dir), {"model.norm.weight", "dtype I32"});
}

TEST(BadInput, ShapeDisagreesWithConfig) {
  ModelCopy m;
  auto cfg = nlohmann::json::parse(sqtest::read_file(m.dir / "config.json"));
  cfg["intermediate_size"] = 180;
  sqtest::write_file(m.dir / "config.json", cfg.dump());
  expect_error(inspect(m.dir), {"gate_proj", "shape [172, 64]", "expected [180, 64]"});
}

TEST(BadInput, ConfigKeyMissing) {
  ModelCopy m;
  auto cfg = nlohmann::json::parse(sqtest::read_file(m.dir / "config.json"));
  cfg.erase("num_hidden_layers");
  sqtest::write_file(m.dir / "config.json", cfg.dump());
  expect_error(inspect(m.dir), {"config.json", "missing key \"num_hidden_layers\""});
}

TEST(BadInput, ConfigNotJson) {
  ModelCopy m;
  sqtest::write_file(m.dir / "config.json", "{not json");
  expect_error(inspect(m.dir), {"config.json", "not valid JSON"});
}

TEST(BadInput, UnsupportedModelTypeListsSupported) {
  ModelCopy m;
  auto cfg = nlohmann::json::parse(sqtest::read_file(m.dir / "config.json"));
  cfg["model_type"] = "gpt_neox";
  sqtest::write_file(m.dir / "config.json", cfg.dump());
  expect_error(inspect(m.dir), {"gpt_neox", "llama, mistral, opt"});
}

TEST(BadInput, EmptyDataFile) {
  TempDir t;
  sqtest::write_file(t / "empty.txt", "");
  auto r = sqtest::run_cli({"eval", "-m", sqtest::bundled_model().string(), "--data", (t / "empty.txt").string(), "--ctx", "16"});
  expect_error(r, {"empty.txt", "empty"});
}

TEST(BadInput, MissingDataFile) {
  auto r = sqtest::run_cli({"eval", "-m", sqtest::bundled_model().string(), "--data", "/nonexistent.txt", "--ctx", "16"});
  expect_error(r, {"/nonexistent.txt", "not found"});
}

TEST(BadInput, CtxLargerThanModelContext) {
  auto dir = sqtest::bundled_model();
  auto r = sqtest::run_cli({"eval", "-m", dir.string(), "--data", (dir / "eval.txt").string(), "--ctx", "4096"});
  expect_error(r, {"--ctx 4096", "context of 512"});
}

TEST(BadInput, DataShorterThanOneWindow) {
  TempDir t;
  sqtest::write_file(t / "short.txt", "Once upon a time");
  auto r = sqtest::run_cli({"eval", "-m", sqtest::bundled_model().string(), "--data", (t / "short.txt").string(), "--ctx", "256"});
  expect_error(r, {"fewer than one window"});
}

TEST(BadInput, BadFlag) {
  auto r = sqtest::run_cli({"eval", "--no-such-flag"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("squeeze: error:"), std::string::npos);
}

// Config values that overflowed dimension products, allocated before validating, or gave NaN
// perplexity (issue 18): each is one error naming the key.
TEST(BadInput, ConfigValuesOutOfBounds) {
  struct Case {
    const char* key;
    nlohmann::json value;
    const char* needle;
  };
  const Case cases[] = {
      {"head_dim", int64_t(1) << 61, "\"head_dim\" is"},
      {"max_position_embeddings", int64_t(1) << 59, "\"max_position_embeddings\" is"},
      {"max_position_embeddings", int64_t(1000000000000), "\"max_position_embeddings\" is"},
      {"num_hidden_layers", int64_t(10000000), "\"num_hidden_layers\" is"},
      {"rms_norm_eps", 0.0, "norm epsilon"},
      {"rms_norm_eps", -1e-6, "norm epsilon"},
      {"rope_theta", 0.0, "\"rope_theta\""},
      {"rope_theta", -10000.0, "\"rope_theta\""},
  };
  for (const Case& c : cases) {
    ModelCopy m;
    auto cfg = nlohmann::json::parse(sqtest::read_file(m.dir / "config.json"));
    cfg[c.key] = c.value;
    sqtest::write_file(m.dir / "config.json", cfg.dump());
    SCOPED_TRACE(std::string(c.key) + " = " + c.value.dump());
    expect_error(inspect(m.dir), {"config.json", c.needle});
    expect_error(sqtest::run_cli({"generate", "-m", m.dir.string(), "-n", "2"}), {"config.json", c.needle});
  }
}

TEST(BadInput, NonFiniteSamplingAndSearchFlags) {
  const std::string m = sqtest::bundled_model().string();
  for (const char* v : {"nan", "inf", "-nan"}) {
    for (const char* flag : {"--temperature", "--top-p"}) {
      auto r = sqtest::run_cli({"generate", "-m", m, "-n", "2", flag, v});
      EXPECT_EQ(r.rc, 2) << flag << " " << v << ": " << r.err;
      EXPECT_NE(r.err.find("finite"), std::string::npos) << r.err;
    }
  }
  TempDir tmp;
  for (const char* step : {"1e-5", "1e-12", "nan", "0"}) {
    auto r = sqtest::run_cli({"quantize", "-m", m, "-o", (tmp / "q").string(), "--method", "smoothquant+", "--bits",
                              "4", "--alpha-step", step});
    EXPECT_EQ(r.rc, 2) << step << ": " << r.err;
    EXPECT_FALSE(std::filesystem::exists(tmp / "q"));
  }
}

// A FIFO would block open() forever and a device never ends: every file squeeze reads must be a
// regular file (issue 18: `inspect` with a FIFO as model.safetensors hung, `eval --data /dev/zero` read
// until the kernel killed it).
TEST(BadInput, NonRegularFilesAreRefused) {
  {
    ModelCopy m;
    std::filesystem::remove(m.dir / "model.safetensors");
    ASSERT_EQ(::mkfifo((m.dir / "model.safetensors").c_str(), 0600), 0);
    expect_error(sqtest::run_cli({"inspect", "-m", m.dir.string()}, 30), {"model.safetensors", "not a regular file"});
  }
  for (const char* file : {"config.json", "tokenizer.model"}) {
    ModelCopy m;
    std::filesystem::remove(m.dir / file);
    ASSERT_EQ(::mkfifo((m.dir / file).c_str(), 0600), 0);
    expect_error(sqtest::run_cli({"generate", "-m", m.dir.string(), "-n", "2"}, 30), {file, "not a regular file"});
  }
  TempDir tmp;
  const std::string fifo = (tmp / "data.txt").string(), m = sqtest::bundled_model().string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string& data : {fifo, std::string("/dev/zero")}) {
    SCOPED_TRACE(data);
    expect_error(sqtest::run_cli({"eval", "-m", m, "--data", data, "--ctx", "32"}, 30), {data, "not a regular file"});
    expect_error(sqtest::run_cli({"calibrate", "-m", m, "--data", data, "-o", (tmp / "c.safetensors").string()}, 30),
                 {data, "not a regular file"});
  }
  EXPECT_FALSE(std::filesystem::exists(tmp / "c.safetensors"));
}

// `calibrate --samples 1000000000 --seqlen 16` materialised 16 G tokens of windows before failing.
TEST(BadInput, CalibrationWindowsAreBounded) {
  TempDir tmp;
  const std::string m = sqtest::bundled_model().string();
  auto r = sqtest::run_cli({"calibrate", "-m", m, "--data", m + "/calib.txt", "--samples", "1000000000", "--seqlen",
                            "16", "-o", (tmp / "c.safetensors").string()},
                           60);
  expect_error(r, {"1000000000 windows of 16 tokens", "--samples"});
  EXPECT_FALSE(std::filesystem::exists(tmp / "c.safetensors"));
}

// --threads 100000 exhausted the machine's processes and hung in a half-built pool.
TEST(BadInput, ThreadCountIsBounded) {
  auto r = sqtest::run_cli({"generate", "-m", sqtest::bundled_model().string(), "-n", "2", "--threads", "100000"}, 60);
  expect_error(r, {"thread count 100000", "at most 1024"});
}

// NaN weights gave `eval` a "ppl nan" with exit 0, `quantize` a checkpoint with the NaN copied and
// `calibrate` NaN statistics; each now stops with one line naming the problem.
TEST(BadInput, NonFiniteWeightsAreRefused) {
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    ModelCopy m;
    SCOPED_TRACE(bad);
    poke_f32(m.dir / "model.safetensors", "model.layers.1.post_attention_layernorm.weight", 3, bad);
    const std::string d = m.dir.string(), data = sqtest::bundled_model().string() + "/eval.txt";
    expect_error(sqtest::run_cli({"eval", "-m", d, "--data", data, "--ctx", "32", "--max-windows", "2"}),
                 {"perplexity is not finite"});
    expect_error(sqtest::run_cli({"generate", "-m", d, "-n", "4", "--temperature", "0"}), {"non-finite logit"});
    expect_error(sqtest::run_cli({"generate", "-m", d, "-n", "4", "--temperature", "0.8"}), {"non-finite logit"});
    const std::string stats = (m.tmp / "c.safetensors").string();
    expect_error(sqtest::run_cli({"calibrate", "-m", d, "--data", data, "--samples", "2", "--seqlen", "16", "-o",
                                  stats}),
                 {"model.layers.1.post_attention_layernorm.weight", "non-finite", "element 3"});
    EXPECT_FALSE(std::filesystem::exists(stats));
    const std::string q = (m.tmp / "q").string();
    expect_error(sqtest::run_cli({"quantize", "-m", d, "-o", q, "--method", "rtn", "--bits", "4"}),
                 {"model.layers.1.post_attention_layernorm.weight", "non-finite"});
    EXPECT_FALSE(std::filesystem::exists(q));
  }
}

// A config with fewer layers than its checkpoint ran the first layers only, silently.
TEST(BadInput, CheckpointLayersBeyondTheConfig) {
  ModelCopy m;
  auto cfg = nlohmann::json::parse(sqtest::read_file(m.dir / "config.json"));
  cfg["num_hidden_layers"] = 4;
  sqtest::write_file(m.dir / "config.json", cfg.dump());
  expect_error(inspect(m.dir), {"model.layers.4.", "num_hidden_layers is 4"});
}

// A linear stored both dense and quantized: one of the two was picked without a word.
TEST(BadInput, LinearStoredInTwoFormats) {
  ModelCopy m;
  add_tensor(m.dir / "model.safetensors", "model.layers.0.self_attn.q_proj.qweight", "I32", {8, 64},
             std::string(8 * 64 * 4, '\0'));
  expect_error(inspect(m.dir), {"model.layers.0.self_attn.q_proj", "stored twice", ".weight and", ".qweight"});
}

// tie_word_embeddings true with an lm_head.weight stored: Hugging Face ties the head to the embedding
// (the stored head is ignored); squeeze used the stored one. A zero head would make every logit 0.
TEST(BadInput, TiedHeadIgnoresAStoredHeadLikeHuggingFace) {
  const std::vector<std::string> gen = {"generate", "-n", "12", "--temperature", "0", "-p", "Once upon"};
  auto with = [&](const std::string& dir) {
    std::vector<std::string> a = gen;
    a.insert(a.begin() + 1, {"-m", dir});
    return sqtest::run_cli(a);
  };
  const auto ref = with(sqtest::bundled_model().string());
  ASSERT_EQ(ref.rc, 0) << ref.err;
  ModelCopy m;
  add_tensor(m.dir / "model.safetensors", "lm_head.weight", "F32", {512, 64}, std::string(512 * 64 * 4, '\0'));
  const auto tied = with(m.dir.string());
  ASSERT_EQ(tied.rc, 0) << tied.err;
  EXPECT_EQ(tied.out, ref.out);
  // Untied, the stored (zero) head is used: all logits equal, greedy picks token 0 each step.
  auto cfg = nlohmann::json::parse(sqtest::read_file(m.dir / "config.json"));
  cfg["tie_word_embeddings"] = false;
  sqtest::write_file(m.dir / "config.json", cfg.dump());
  const auto untied = with(m.dir.string());
  ASSERT_EQ(untied.rc, 0) << untied.err;
  EXPECT_NE(untied.out, ref.out);
}

}  // namespace
