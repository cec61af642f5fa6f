// The engine against independent float64 PyTorch references (../shared/golden) and llama2.c's own
// greedy generation, plus KV-cache decoding == one full forward.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "core/context.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "model/sampler.h"
#include "model/tokenizer.h"
#include "engine/engine.h"
#include "test_util.h"

namespace sq {
namespace {

std::vector<int32_t> ids_of(const TensorView& t) {
  std::vector<int32_t> v(t.numel());
  std::memcpy(v.data(), t.data, t.nbytes);
  return v;
}

std::vector<float> floats_of(const TensorView& t) {
  std::vector<float> v(t.numel());
  convert_to_f32(t.data, t.dtype, v.data(), v.size());
  return v;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); i++) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

void check_golden(const std::filesystem::path& model_dir, const std::filesystem::path& golden, const char* ids_name) {
  auto model = Model::load(model_dir);
  SafetensorsFile g(golden);
  auto ids = ids_of(g.get(ids_name));
  auto want = floats_of(g.get("logits"));
  auto ctx = make_context(2);
  const int64_t V = model->cfg.vocab_size;
  Engine e(*model, ctx.ctx);
  const int32_t s = e.add_sequence();
  e.feed(s, ids.data(), int64_t(ids.size()), true);
  std::vector<float> logits(e.logits(0), e.logits(0) + ids.size() * size_t(V));
  EXPECT_LE(max_abs_diff(logits, want), 1e-4) << model_dir;

  // Token by token through the KV cache gives the same logits as one forward over the sequence.
  const int32_t inc = e.add_sequence();
  std::vector<float> all;
  for (size_t t = 0; t < ids.size(); t++) {
    e.feed(inc, &ids[t], 1, false);
    all.insert(all.end(), e.logits(0), e.logits(0) + V);
  }
  ASSERT_EQ(all.size(), ids.size() * size_t(V));
  EXPECT_LE(max_abs_diff(all, logits), 1e-5);
  EXPECT_LE(max_abs_diff(all, want), 1e-4);
}

TEST(Golden, Stories260KLogits) {
  SQ_REQUIRE_SHARED("golden/stories260K.safetensors");
  check_golden(sqtest::bundled_model(), sqtest::shared_dir() / "golden/stories260K.safetensors", "prompt_ids");
}

TEST(Golden, TinyMistralBf16SlidingWindowLogits) {
  SQ_REQUIRE_SHARED("golden/tiny-mistral/golden.safetensors");
  auto dir = sqtest::shared_dir() / "golden/tiny-mistral";
  auto m = Model::load(dir);
  EXPECT_EQ(m->cfg.sliding_window, 8);
  check_golden(dir, dir / "golden.safetensors", "ids");
}

TEST(Golden, TinyOptF16Logits) {
  SQ_REQUIRE_SHARED("golden/tiny-opt/golden.safetensors");
  auto dir = sqtest::shared_dir() / "golden/tiny-opt";
  check_golden(dir, dir / "golden.safetensors", "ids");
}

TEST(Golden, OptWithoutModelPrefix) {
  // facebook/opt checkpoints name tensors "decoder.*"; rename tiny-opt's and expect identical logits.
  SQ_REQUIRE_SHARED("golden/tiny-opt/golden.safetensors");
  auto src = sqtest::shared_dir() / "golden/tiny-opt";
  sqtest::TempDir tmp;
  SafetensorsFile f(src / "model.safetensors");
  SafetensorsWriter w;
  for (auto& [name, t] : f.tensors()) {
    std::string n = name.rfind("model.", 0) == 0 ? name.substr(6) : name;
    w.add(n, t.dtype, t.shape, t.data, t.nbytes);
  }
  w.write(tmp / "model.safetensors");
  std::filesystem::copy_file(src / "config.json", tmp / "config.json");
  check_golden(tmp.path, src / "golden.safetensors", "ids");
}

TEST(Golden, ShardedCheckpointLoadsLikeSingleFile) {
  // Split stories260K into two shards with an index and expect the same logits.
  sqtest::TempDir tmp;
  auto src = sqtest::bundled_model();
  SafetensorsFile f(src / "model.safetensors");
  SafetensorsWriter a, b;
  nlohmann::json map;
  int i = 0;
  for (auto& [name, t] : f.tensors()) {
    bool first = (i++ % 2) == 0;
    (first ? a : b).add(name, t.dtype, t.shape, t.data, t.nbytes);
    map[name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  a.write(tmp / "model-00001-of-00002.safetensors");
  b.write(tmp / "model-00002-of-00002.safetensors");
  sqtest::write_file(tmp / "model.safetensors.index.json", nlohmann::json{{"weight_map", map}}.dump());
  for (auto n : {"config.json", "tokenizer.model", "tokenizer_config.json", "generation_config.json"})
    std::filesystem::copy_file(src / n, tmp / n);
  auto m1 = Model::load(src), m2 = Model::load(tmp.path);
  auto ctx = make_context(1);
  std::vector<int32_t> ids = {1, 403, 407, 261, 378};
  auto all_logits = [&](const Model& m) {
    Engine e(m, ctx.ctx);
    e.feed(e.add_sequence(), ids.data(), 5, true);
    return std::vector<float>(e.logits(0), e.logits(0) + 5 * m.cfg.vocab_size);
  };
  EXPECT_EQ(all_logits(*m1), all_logits(*m2));
}

TEST(Generate, Stories260KGreedyFromBosMatchesLlama2c) {
  auto dir = sqtest::bundled_model();
  std::istringstream in(sqtest::read_file(dir / "reference/greedy_ids_from_bos.txt"));
  std::vector<int32_t> want;
  for (int32_t x; in >> x;) want.push_back(x);
  ASSERT_EQ(want.size(), 256u);
  auto model = Model::load(dir);
  auto ctx = make_context(2);
  Engine e(*model, ctx.ctx);
  const int32_t s = e.add_sequence();
  int32_t tok = int32_t(model->cfg.bos_id);
  std::vector<int32_t> got;
  for (int i = 0; i < 256; i++) {
    e.feed(s, &tok, 1, false);
    tok = argmax(e.logits(0), model->cfg.vocab_size);
    got.push_back(tok);
  }
  EXPECT_EQ(got, want);
}

TEST(Generate, CliGreedyIdsMatchReference) {
  auto dir = sqtest::bundled_model();
  auto r = sqtest::run_cli({"generate", "-m", dir.string(), "--temperature", "0", "-n", "256", "--ids"});
  ASSERT_EQ(r.rc, 0) << r.err;
  std::string want = sqtest::read_file(dir / "reference/greedy_ids_from_bos.txt");
  auto trim = [](std::string s) {
    while (!s.empty() && std::isspace((unsigned char)s.back())) s.pop_back();
    return s;
  };
  EXPECT_EQ(trim(r.out), trim(want));
}

// The streamed text is the decode of prompt + generated ids: the first generated token keeps its
// leading space ("Once upon" + " a time", not "Once upona time").
TEST(Generate, StreamedTextEqualsDecodeOfAllIds) {
  auto dir = sqtest::bundled_model();
  auto tok = Tokenizer::load(dir, 1, 2);
  for (const char* prompt : {"Once upon", "Once", "Lily liked"}) {
    auto text = sqtest::run_cli({"generate", "-m", dir.string(), "-p", prompt, "-n", "12", "--temperature", "0"});
    auto ids = sqtest::run_cli({"generate", "-m", dir.string(), "-p", prompt, "-n", "12", "--temperature", "0", "--ids"});
    ASSERT_EQ(text.rc, 0) << text.err;
    ASSERT_EQ(ids.rc, 0) << ids.err;
    std::vector<int32_t> all = tok->encode_prompt(prompt);
    std::istringstream in(ids.out);
    for (int32_t x; in >> x;) all.push_back(x);
    EXPECT_EQ(text.out, tok->decode(all) + "\n") << prompt;
  }
  auto r = sqtest::run_cli({"generate", "-m", dir.string(), "-p", "Once upon", "-n", "3", "--temperature", "0"});
  EXPECT_EQ(r.out.rfind("Once upon a time", 0), 0u) << r.out;
}

TEST(Generate, SamplingIsDeterministicForASeed) {
  auto dir = sqtest::bundled_model().string();
  auto a = sqtest::run_cli({"generate", "-m", dir, "-p", "Once upon a time", "-n", "40", "--seed", "7", "--temperature", "0.9"});
  auto b = sqtest::run_cli({"generate", "-m", dir, "-p", "Once upon a time", "-n", "40", "--seed", "7", "--temperature", "0.9"});
  auto c = sqtest::run_cli({"generate", "-m", dir, "-p", "Once upon a time", "-n", "40", "--seed", "8", "--temperature", "0.9"});
  ASSERT_EQ(a.rc, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);
  EXPECT_EQ(a.out.rfind("Once upon a time", 0), 0u) << a.out;
}

TEST(Eval, PerplexityOnBundledEvalText) {
  // Reference float64 PyTorch perplexity on eval.txt at ctx 128: 4.734 (../shared/README.md).
  auto dir = sqtest::bundled_model();
  auto r = sqtest::run_cli({"eval", "-m", dir.string(), "--data", (dir / "eval.txt").string(), "--ctx", "128", "--json", "-q"});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_NEAR(j["ppl"].get<double>(), 4.734, 0.0015);
  EXPECT_EQ(j["ctx"], 128);
  EXPECT_EQ(j["tokens_scored"].get<int64_t>(), j["windows"].get<int64_t>() * 127);
}

TEST(Engine, ChunkedPromptEqualsOneShot) {
  // Prompts longer than the internal chunk and mixed chunk sizes give the same logits.
  auto model = Model::load(sqtest::bundled_model());
  auto ctx = make_context(2);
  std::vector<int32_t> ids;
  for (int i = 0; i < 300; i++) ids.push_back(3 + (i * 37) % 500);
  EngineOptions eo;
  eo.kv_tokens = 640;  // two sequences of 300 (one context is 512)
  Engine e(*model, ctx.ctx, eo);
  const int32_t a = e.add_sequence(), b = e.add_sequence();
  const int64_t V = model->cfg.vocab_size;
  e.feed(a, ids.data(), 300, false);
  std::vector<float> la(e.logits(0), e.logits(0) + V);
  e.feed(b, ids.data(), 7, false);
  e.feed(b, ids.data() + 7, 200, false);
  e.feed(b, ids.data() + 207, 93, false);
  std::vector<float> lb(e.logits(0), e.logits(0) + V);
  EXPECT_LE(max_abs_diff(la, lb), 1e-5);
}

}  // namespace
}  // namespace sq
