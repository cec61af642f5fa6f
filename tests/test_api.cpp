// The public API (include/squeeze/squeeze.h), used as an application would: this file is compiled
// with include/ only on its include path, so it cannot reach internal headers.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include <squeeze/squeeze.h>

#include "test_util.h"

namespace {

std::vector<int32_t> reference_greedy_ids() {
  std::istringstream in(sqtest::read_file(sqtest::bundled_model() / "reference/greedy_ids_from_bos.txt"));
  std::vector<int32_t> v;
  for (int32_t x; in >> x;) v.push_back(x);
  return v;
}

TEST(Api, LoadDescribeTokenize) {
  auto model = squeeze::Model::load(sqtest::bundled_model().string());
  const squeeze::ModelInfo& i = model->info();
  EXPECT_EQ(i.architecture, "llama");
  EXPECT_EQ(i.vocab_size, 512);
  EXPECT_EQ(i.context_length, 512);
  EXPECT_EQ(i.bos_id, 1);
  EXPECT_GT(i.parameters, 200000);
  auto tok = squeeze::Tokenizer::load(*model);
  const std::vector<int32_t> ids = tok->encode("Once upon a time", true);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], tok->bos_id());
  EXPECT_EQ(tok->decode(ids), "Once upon a time");
}

// Greedy decoding from BOS through the API reproduces llama2.c's reference ids.
TEST(Api, GreedyMatchesReference) {
  auto model = squeeze::Model::load(sqtest::bundled_model().string());
  squeeze::Engine engine(model, {.threads = 2});
  squeeze::Sampler greedy({.temperature = 0});
  const squeeze::SeqId s = engine.add_sequence();
  std::vector<int32_t> got;
  int32_t tok = model->info().bos_id;
  for (int64_t p = 0; p < 256; p++) {
    const squeeze::Token row{tok, p, s, true};
    engine.step({&row, 1});
    tok = greedy.sample(engine.logits(0));
    got.push_back(tok);
  }
  EXPECT_EQ(got, reference_greedy_ids());
  EXPECT_EQ(engine.sequence_length(s), 256);
}

// Two sequences in one step, one a prompt chunk and one decoding: each row's logits are the ones it
// gets alone, and the batch's rows come back in row order.
TEST(Api, BatchOfTwoSequences) {
  auto model = squeeze::Model::load(sqtest::bundled_model().string());
  auto tok = squeeze::Tokenizer::load(*model);
  const std::vector<int32_t> a = tok->encode("The cat sat", true), b = tok->encode("Lily", true);
  auto alone = [&](const std::vector<int32_t>& ids) {
    squeeze::Engine e(model, {.threads = 2});
    const squeeze::SeqId s = e.add_sequence();
    std::vector<squeeze::Token> rows;
    for (size_t i = 0; i < ids.size(); i++) rows.push_back({ids[i], int64_t(i), s, i + 1 == ids.size()});
    e.step(rows);
    return std::vector<float>(e.logits(0).begin(), e.logits(0).end());
  };
  squeeze::Engine e(model, {.threads = 2});
  const squeeze::SeqId sa = e.add_sequence(), sb = e.add_sequence();
  std::vector<squeeze::Token> rows;
  for (size_t i = 0; i < a.size(); i++) rows.push_back({a[i], int64_t(i), sa, i + 1 == a.size()});
  for (size_t i = 0; i < b.size(); i++) rows.push_back({b[i], int64_t(i), sb, i + 1 == b.size()});
  e.step(rows);
  ASSERT_EQ(e.n_logits(), 2u);
  const std::vector<float> la = alone(a), lb = alone(b);
  for (size_t k = 0; k < la.size(); k++) {
    ASSERT_NEAR(e.logits(0)[k], la[k], 1e-4f * (1 + std::fabs(la[k])));
    ASSERT_NEAR(e.logits(1)[k], lb[k], 1e-4f * (1 + std::fabs(lb[k])));
  }
  const squeeze::KvStats kv = e.kv_stats();
  EXPECT_EQ(kv.blocks_used, 2);  // one 16-position block each
  e.remove_sequence(sa);
  EXPECT_EQ(e.kv_stats().blocks_used, 1);
}

TEST(Api, ErrorsAreSqueezeErrors) {
  EXPECT_THROW(squeeze::Model::load("/nonexistent/model"), squeeze::Error);
  auto model = squeeze::Model::load(sqtest::bundled_model().string());
  squeeze::Engine e(model, {.kv_tokens = 32, .threads = 1});
  const squeeze::SeqId s = e.add_sequence();
  const squeeze::Token bad_pos{5, 3, s, true}, bad_seq{5, 0, 77, true}, bad_tok{100000, 0, s, true};
  EXPECT_THROW(e.step({&bad_pos, 1}), squeeze::Error);
  EXPECT_THROW(e.step({&bad_seq, 1}), squeeze::Error);
  EXPECT_THROW(e.step({&bad_tok, 1}), squeeze::Error);
  std::vector<squeeze::Token> too_long;
  for (int64_t p = 0; p < 40; p++) too_long.push_back({5, p, s, false});
  try {
    e.step(too_long);
    FAIL() << "a step past the pool did not throw";
  } catch (const squeeze::Error& err) {
    EXPECT_NE(std::string(err.what()).find("context"), std::string::npos) << err.what();
  }
  EXPECT_EQ(e.sequence_length(s), 0);
  EXPECT_THROW(squeeze::Engine(model, {.isa = "no-such-isa"}), squeeze::Error);
}

// Streamed text continues the prompt: the first generated token keeps its leading space.
TEST(Api, TextStreamContinuesThePrompt) {
  auto model = squeeze::Model::load(sqtest::bundled_model().string());
  auto tok = squeeze::Tokenizer::load(*model);
  const std::vector<int32_t> prompt = tok->encode("Once upon", true);
  std::vector<int32_t> all = tok->encode("Once upon a time, there was", true);
  ASSERT_GT(all.size(), prompt.size());
  ASSERT_TRUE(std::equal(prompt.begin(), prompt.end(), all.begin()));
  squeeze::TextStream stream(*tok, prompt);
  std::string text = "Once upon";
  for (size_t i = prompt.size(); i < all.size(); i++) text += stream.push(all[i]);
  text += stream.flush();
  EXPECT_EQ(text, tok->decode(all));
}

}  // namespace
