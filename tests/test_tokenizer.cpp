// Tokenizers: GPT-2 byte-level BPE against ids from an independent encoder (shared/tokenizers/gpt2-bpe/
// cases.json, npm gpt-3-encoder), the tokenizer.json reader against vocab.json + merges.txt,
// SentencePiece against the golden prompt ids of stories260K and known Llama 2 ids, the streaming
// decoder, the Unicode helpers, and the errors for missing or bad files.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/bpe.h"
#include "model/tokenizer.h"
#include "model/unicode.h"
#include "test_util.h"

namespace {

using sq::Tokenizer;
namespace fs = std::filesystem;
using Ids = std::vector<int32_t>;

fs::path gpt2_dir() { return sqtest::shared_dir() / "tokenizers" / "gpt2-bpe"; }

// Loads the GPT-2 files once for all tests that use them (about 0.2 s).
const Tokenizer& gpt2() {
  static std::unique_ptr<Tokenizer> tok = Tokenizer::load(gpt2_dir());
  return *tok;
}

std::string utf8(char32_t cp) {
  std::string s;
  sq::unicode::append_utf8(s, cp);
  return s;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const sq::Error& e) {
    return e.what();
  }
  return "<no sq::Error thrown>";
}

// Feeds ids through a StreamDecoder; checks every chunk is valid UTF-8; returns the chunks.
std::vector<std::string> stream(const Tokenizer& tok, const Ids& ids) {
  sq::StreamDecoder sd(tok);
  std::vector<std::string> chunks;
  for (int32_t id : ids) chunks.push_back(sd.push(id));
  chunks.push_back(sd.flush());
  for (const auto& c : chunks) EXPECT_TRUE(sq::unicode::is_valid_utf8(c)) << "chunk is not valid UTF-8";
  return chunks;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x;
  return s;
}

// A tiny byte-level vocabulary written in a directory: ids 0..255 are the byte symbols in byte order,
// then the merges' results, then </s> and <pad> (OPT-style specials).
void write_tiny_bpe(const fs::path& dir) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[utf8(sq::byte_to_unicode(static_cast<uint8_t>(b)))] = b;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {"Ġ", "w"}, {"o", "r"}, {"Ġw", "or"}, {"Ġwor", "ld"},
      {"l", "d"}};
  std::string merges_txt = "#version: 0.2\n";
  int next = 256;
  for (const auto& [a, b] : merges) {
    merges_txt += a + " " + b + "\n";
    if (!vocab.contains(a + b)) vocab[a + b] = next++;
  }
  vocab["</s>"] = next++;
  vocab["<pad>"] = next++;
  sqtest::write_file(dir / "vocab.json", vocab.dump());
  sqtest::write_file(dir / "merges.txt", merges_txt);
}

// ---- Unicode helpers ---------------------------------------------------------------------------

TEST(Unicode, Classes) {
  using namespace sq::unicode;
  for (char32_t c : {U'a', U'Z', U'é', U'ß', U'Ω', U'ж', U'世', U'テ', U'ا', U'ʰ' /* Lm */, U'ª' /* Lo */}) {
    EXPECT_TRUE(is_letter(c)) << std::hex << uint32_t(c);
    EXPECT_FALSE(is_number(c));
  }
  for (char32_t c : {U'0', U'9', U'٣' /* Arabic-Indic 3 */, U'½' /* No */, U'Ⅻ' /* Nl */, U'²', U'𝟘'}) {
    EXPECT_TRUE(is_number(c)) << std::hex << uint32_t(c);
    EXPECT_FALSE(is_letter(c));
  }
  for (char32_t c : {U'-', U'\'', U'😀', U'🏽', U'—', U'\u0301' /* combining acute, Mn */, U'€', U'_'}) {
    EXPECT_EQ(classify(c), CharClass::kOther) << std::hex << uint32_t(c);
  }
  for (char32_t c : {U' ', U'\t', U'\n', U'\r', U'\v', U'\f', U'\u00A0', U'\u3000', U'\u2029'}) {
    EXPECT_TRUE(is_space(c)) << std::hex << uint32_t(c);
  }
  EXPECT_FALSE(is_space(U'\u200B'));  // zero-width space is not White_Space
}

TEST(Unicode, Utf8DecodeAndSanitize) {
  using namespace sq::unicode;
  char32_t cp = 0;
  EXPECT_EQ(next_utf8("\xF0\x9F\x99\x82", 0, &cp), 4);
  EXPECT_EQ(cp, U'🙂');
  EXPECT_EQ(next_utf8("\xE4\xB8", 0, &cp), -2);  // truncated: both bytes form one maximal subpart
  const std::string ff(kReplacementChar);
  // Expected replacements follow Unicode's maximal-subpart practice (as Python's errors="replace").
  EXPECT_EQ(sanitize_utf8("a\xC3(b"), "a" + ff + "(b");
  EXPECT_EQ(sanitize_utf8("\xE4\xB8"), ff);
  EXPECT_EQ(sanitize_utf8("\xF0\x9F\x98x"), ff + "x");
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), ff + ff + ff);  // surrogate
  EXPECT_EQ(sanitize_utf8("\xC0\x80"), ff + ff);           // overlong NUL
  EXPECT_EQ(sanitize_utf8("\xF4\x90\x80\x80"), ff + ff + ff + ff);  // above U+10FFFF
  EXPECT_EQ(sanitize_utf8("\x80\xFF"), ff + ff);
  const std::string good = "héllo 世界 🙂";
  EXPECT_EQ(sanitize_utf8(good), good);
  EXPECT_TRUE(is_valid_utf8(good));
  EXPECT_FALSE(is_valid_utf8("\xE4\xB8"));
}

// ---- byte-level BPE building blocks (no shared data needed) ------------------------------------

TEST(Gpt2Bpe, ByteToUnicodeIsGpt2Map) {
  EXPECT_EQ(sq::byte_to_unicode('A'), U'A');
  EXPECT_EQ(sq::byte_to_unicode('!'), U'!');
  EXPECT_EQ(sq::byte_to_unicode(0xE9), U'é');
  EXPECT_EQ(sq::byte_to_unicode(' '), U'Ġ');
  EXPECT_EQ(sq::byte_to_unicode('\n'), U'Ċ');
  EXPECT_EQ(sq::byte_to_unicode(0x00), U'\u0100');
  EXPECT_EQ(sq::byte_to_unicode(0x7F), U'\u0121');
  EXPECT_EQ(sq::byte_to_unicode(0xAD), U'\u0143');  // soft hyphen: the last non-printable byte
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) seen.insert(sq::byte_to_unicode(static_cast<uint8_t>(b)));
  EXPECT_EQ(seen.size(), 256u);  // a bijection
}

std::vector<std::string> pretokens(std::string_view s) {
  std::vector<std::string> out;
  for (auto [b, e] : sq::gpt2_pretokenize(s)) out.emplace_back(s.substr(b, e - b));
  return out;
}

TEST(Gpt2Bpe, PreTokenizerFollowsThePattern) {
  using V = std::vector<std::string>;
  EXPECT_EQ(pretokens(" Hello  world"), (V{" Hello", " ", " world"}));
  EXPECT_EQ(pretokens("a\n\n\nb"), (V{"a", "\n\n", "\n", "b"}));
  EXPECT_EQ(pretokens("x   "), (V{"x", "   "}));
  EXPECT_EQ(pretokens("   x"), (V{"  ", " x"}));
  EXPECT_EQ(pretokens("isn't DON'T 'll ?'s"), (V{"isn", "'t", " DON", "'", "T", " '", "ll", " ?'", "s"}));
  EXPECT_EQ(pretokens("abc123def 45"), (V{"abc", "123", "def", " 45"}));
  EXPECT_EQ(pretokens("日本語のテキスト"), (V{"日本語のテキスト"}));
  EXPECT_EQ(pretokens("a, b!!"), (V{"a", ",", " b", "!!"}));
  EXPECT_EQ(pretokens("x\u00A0y"), (V{"x", "\u00A0", "y"}));  // no-break space is \s but not the optional ' '
  EXPECT_EQ(pretokens(""), V{});
}

TEST(Gpt2Bpe, TinyVocabularyMergesAndOptDefaults) {
  sqtest::TempDir dir;
  write_tiny_bpe(dir.path);
  auto tok = Tokenizer::load(dir.path);
  EXPECT_EQ(tok->kind(), "byte-level BPE");
  const int32_t hello = tok->piece_to_id("hello"), world = tok->piece_to_id("Ġworld");
  ASSERT_GE(hello, 256);
  ASSERT_GE(world, 256);
  EXPECT_EQ(tok->encode("hello world"), (Ids{hello, world}));
  EXPECT_EQ(tok->encode("hel"), (Ids{tok->piece_to_id("he"), 'l'}));  // "l l" needs two l's
  // No tokenizer_config.json and no <|endoftext|>: BOS/EOS are </s>, and OPT-style means add_bos.
  const int32_t eos = tok->piece_to_id("</s>");
  EXPECT_EQ(tok->bos_id(), eos);
  EXPECT_EQ(tok->eos_id(), eos);
  EXPECT_TRUE(tok->add_bos());
  EXPECT_EQ(tok->encode_prompt("hello"), (Ids{eos, hello}));
  EXPECT_EQ(tok->decode({eos, hello, world, eos}), "hello world");
  // encode never turns the text "</s>" into the special token.
  for (int32_t id : tok->encode("</s>")) EXPECT_NE(id, eos);

  // tokenizer_config.json: explicit add_bos_token and the pad token skipped by decode.
  sqtest::write_file(dir / "tokenizer_config.json",
                     R"({"bos_token": {"content": "</s>"}, "pad_token": "<pad>", "add_bos_token": false})");
  auto tok2 = Tokenizer::load(dir.path);
  EXPECT_FALSE(tok2->add_bos());
  EXPECT_EQ(tok2->decode({tok2->piece_to_id("<pad>"), hello}), "hello");
  // Ids from config.json win over the tokenizer's own.
  auto tok3 = Tokenizer::load(dir.path, /*bos_id=*/hello, /*eos_id=*/world);
  EXPECT_EQ(tok3->bos_id(), hello);
  EXPECT_EQ(tok3->eos_id(), world);
  EXPECT_THROW(Tokenizer::load(dir.path, 100000), sq::Error);
}

TEST(Gpt2Bpe, RoundTripsArbitraryBytes) {
  // Byte-level BPE covers every byte string: decode(encode(s)) is s, with invalid UTF-8 replaced.
  sqtest::TempDir dir;
  write_tiny_bpe(dir.path);
  auto tok = Tokenizer::load(dir.path);
  std::mt19937 rng(7);
  const std::string alphabet = "hello world \n\t'sx1\xC3\xA9\xE4\xB8\x96\xF0\x9F\x99\x82\x80\xFF";
  for (int iter = 0; iter < 200; ++iter) {
    std::string s(rng() % 60, ' ');
    for (char& c : s) c = alphabet[rng() % alphabet.size()];
    std::string covered;
    for (const auto& p : pretokens(s)) covered += p;
    ASSERT_EQ(covered, s);
    ASSERT_EQ(tok->decode(tok->encode(s)), sq::unicode::sanitize_utf8(s));
  }
}

// ---- GPT-2 against the independent encoder -----------------------------------------------------

TEST(Gpt2Bpe, ReproducesEveryReferenceCase) {
  SQ_REQUIRE_SHARED("tokenizers/gpt2-bpe/cases.json");
  const auto j = nlohmann::json::parse(sqtest::read_file(gpt2_dir() / "cases.json"));
  ASSERT_GE(j["cases"].size(), 20u);
  for (const auto& c : j["cases"]) {
    const std::string text = c["text"];
    EXPECT_EQ(gpt2().encode(text), c["ids"].get<Ids>()) << "text: " << text;
    EXPECT_EQ(gpt2().decode(c["ids"].get<Ids>()), text);
  }
}

TEST(Gpt2Bpe, SpecialIdsAndRoundTrip) {
  SQ_REQUIRE_SHARED("tokenizers/gpt2-bpe/vocab.json");
  const Tokenizer& tok = gpt2();
  EXPECT_EQ(tok.vocab_size(), 50257);
  EXPECT_EQ(tok.bos_id(), 50256);
  EXPECT_EQ(tok.eos_id(), 50256);
  EXPECT_FALSE(tok.add_bos());  // plain GPT-2 prompts have no BOS
  EXPECT_EQ(tok.id_to_piece(220), "Ġ");
  EXPECT_EQ(tok.decode({50256, 15496, 995, 50256}), "Hello world");
  for (const std::string s : {"héllo wörld", "Ünïcödé ÄÖÜ ß", "😀🙂👍🏽 mixed 世界 text", "数学 ∑∫ √2 ≈ 1.414",
                              "\t\n \r\n  tricky   whitespace \u00A0\u3000 ", "Ελληνικά кириллица עברית العربية",
                              "zero\u200Bwidth", "<|endoftext|> is text here"}) {
    EXPECT_EQ(tok.decode(tok.encode(s)), s);
  }
  EXPECT_THROW(tok.decode({50257}), sq::Error);
  EXPECT_THROW(tok.decode({-1}), sq::Error);
}

// GPT-2's own bpe() on strings, written plainly: a reference for the long-word (heap) path.
using Ranks = std::map<std::pair<std::string, std::string>, int>;
std::vector<std::string> reference_bpe(const std::string& mapped, const Ranks& ranks) {
  std::vector<std::string> w;
  for (size_t i = 0; i < mapped.size();) {
    char32_t cp;
    const int n = sq::unicode::next_utf8(mapped, i, &cp);
    w.push_back(mapped.substr(i, n));
    i += n;
  }
  while (w.size() > 1) {
    int best = INT32_MAX;
    std::pair<std::string, std::string> bp;
    for (size_t i = 0; i + 1 < w.size(); ++i) {
      auto it = ranks.find({w[i], w[i + 1]});
      if (it != ranks.end() && it->second < best) best = it->second, bp = it->first;
    }
    if (best == INT32_MAX) break;
    std::vector<std::string> nw;
    for (size_t i = 0; i < w.size();) {
      if (i + 1 < w.size() && w[i] == bp.first && w[i + 1] == bp.second) nw.push_back(w[i] + w[i + 1]), i += 2;
      else nw.push_back(w[i++]);
    }
    w = std::move(nw);
  }
  return w;
}

TEST(Gpt2Bpe, LongWordsMatchReferenceBpe) {
  SQ_REQUIRE_SHARED("tokenizers/gpt2-bpe/merges.txt");
  Ranks ranks;
  std::ifstream in(gpt2_dir() / "merges.txt");
  std::string a, b, line;
  std::getline(in, line);  // #version
  for (int r = 0; in >> a >> b; ++r) ranks.emplace(std::make_pair(a, b), r);
  ASSERT_EQ(ranks.size(), 50000u);
  std::mt19937 rng(11);
  const std::string letters = "eeeettaaoinnshrdlcumwfgypbvkjxqz";
  for (int iter = 0; iter < 30; ++iter) {
    const size_t len = iter < 10 ? 10 + rng() % 50 : 65 + rng() % 400;  // both sides of the 64-byte switch
    std::string word = " ";
    for (size_t i = 0; i < len; ++i) word += letters[rng() % letters.size()];
    std::string mapped;
    for (unsigned char c : word) mapped += utf8(sq::byte_to_unicode(c));
    Ids expect;
    for (const auto& p : reference_bpe(mapped, ranks)) expect.push_back(gpt2().piece_to_id(p));
    EXPECT_EQ(gpt2().encode(word), expect) << word;
  }
}

TEST(Gpt2Bpe, EncodesWikiText2TestQuickly) {
  SQ_REQUIRE_SHARED("data/wikitext-2-raw/wiki.test.raw");
  const std::string text = sqtest::read_file(sqtest::shared_dir() / "data/wikitext-2-raw/wiki.test.raw");
  ASSERT_EQ(text.size(), 1290590u);
  const auto t0 = std::chrono::steady_clock::now();
  const Ids ids = gpt2().encode(text);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ info ] WikiText-2 test: %zu bytes -> %zu GPT-2 tokens in %.3f s (%.0f tokens/s)\n", text.size(),
              ids.size(), s, ids.size() / s);
  EXPECT_LT(s, 10.0);
  EXPECT_GT(ids.size(), 250000u);  // ~4.4 bytes per token for English
  EXPECT_LT(ids.size(), 350000u);
  EXPECT_EQ(gpt2().decode(ids), text);
}

// ---- tokenizer.json ----------------------------------------------------------------------------

// tokenizer.json built from the GPT-2 files, as Hugging Face writes it for gpt2.
nlohmann::json gpt2_tokenizer_json() {
  nlohmann::json j;
  j["version"] = "1.0";
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  j["post_processor"] = {{"type", "ByteLevel"}, {"trim_offsets", false}};
  j["decoder"] = {{"type", "ByteLevel"}};
  j["added_tokens"] = nlohmann::json::array();
  j["added_tokens"].push_back({{"id", 50256}, {"content", "<|endoftext|>"}, {"special", true}});
  j["added_tokens"].push_back({{"id", 50257}, {"content", "<|tool|>"}, {"special", false}});
  nlohmann::json merges = nlohmann::json::array();
  std::ifstream in(gpt2_dir() / "merges.txt");
  std::string a, b, line;
  std::getline(in, line);
  while (in >> a >> b) merges.push_back(nlohmann::json::array({a, b}));  // the newer [a, b] form
  j["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
                {"end_of_word_suffix", ""}, {"fuse_unk", false},
                {"vocab", nlohmann::json::parse(sqtest::read_file(gpt2_dir() / "vocab.json"))},
                {"merges", merges}};
  return j;
}

TEST(TokenizerJson, StringAndPairMergesOnTinyVocabulary) {
  sqtest::TempDir plain, a, b;
  write_tiny_bpe(plain.path);
  auto ref = Tokenizer::load(plain.path);
  const auto vocab = nlohmann::json::parse(sqtest::read_file(plain / "vocab.json"));
  std::ifstream in(plain / "merges.txt");
  std::string x, y, line;
  std::getline(in, line);
  nlohmann::json as_strings = nlohmann::json::array(), as_pairs = nlohmann::json::array();
  while (in >> x >> y) as_strings.push_back(x + " " + y), as_pairs.push_back({x, y});
  for (auto [dir, merges] : {std::pair{&a, as_strings}, std::pair{&b, as_pairs}}) {
    nlohmann::json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}},
                        {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
                        {"normalizer", nullptr}};
    sqtest::write_file(*dir / "tokenizer.json", j.dump());
    auto tok = Tokenizer::load(dir->path);
    for (const char* s : {"hello world", "hello, hello  world!\n", "ld ll he"}) {
      EXPECT_EQ(tok->encode(s), ref->encode(s)) << s;
    }
    EXPECT_EQ(tok->encode("hello world"), (Ids{tok->piece_to_id("hello"), tok->piece_to_id("Ġworld")}));
  }
  // ByteLevel add_prefix_space: text not starting with a space is encoded as if it did.
  nlohmann::json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", as_pairs}}},
                      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", true}}}};
  sqtest::write_file(a / "tokenizer.json", j.dump());
  auto tok = Tokenizer::load(a.path);
  EXPECT_EQ(tok->encode("world"), (Ids{tok->piece_to_id("Ġworld")}));
  EXPECT_EQ(tok->encode(" world"), (Ids{tok->piece_to_id("Ġworld")}));
}

TEST(TokenizerJson, EncodesLikeVocabAndMerges) {
  SQ_REQUIRE_SHARED("tokenizers/gpt2-bpe/cases.json");
  const auto cases = nlohmann::json::parse(sqtest::read_file(gpt2_dir() / "cases.json"))["cases"];
  {
    sqtest::TempDir dir;
    sqtest::write_file(dir / "tokenizer.json", gpt2_tokenizer_json().dump());
    auto tok = Tokenizer::load(dir.path);
    EXPECT_EQ(tok->vocab_size(), 50258);
    EXPECT_EQ(tok->eos_id(), 50256);
    EXPECT_FALSE(tok->add_bos());
    for (const auto& c : cases) {
      const std::string text = c["text"];
      EXPECT_EQ(tok->encode(text), gpt2().encode(text)) << text;
    }
    // The non-special added token is cut out of the text; the special one is not.
    const Ids ids = tok->encode("Hello<|tool|> world<|endoftext|>");
    const Ids head = gpt2().encode("Hello"), tail = gpt2().encode(" world<|endoftext|>");
    Ids expect = head;
    expect.push_back(50257);
    expect.insert(expect.end(), tail.begin(), tail.end());
    EXPECT_EQ(ids, expect);
    EXPECT_EQ(tok->decode(ids), "Hello<|tool|> world<|endoftext|>");
    EXPECT_EQ(tok->decode({50256, 15496, 50257}), "Hello<|tool|>");
  }
}

TEST(TokenizerJson, UnsupportedKindsAreClearErrors) {
  sqtest::TempDir dir;
  sqtest::write_file(dir / "tokenizer.json", R"({"model": {"type": "WordPiece", "vocab": {}}})");
  std::string msg = error_of([&] { Tokenizer::load(dir.path); });
  EXPECT_NE(msg.find("WordPiece"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tokenizer.json"), std::string::npos) << msg;

  sqtest::write_file(dir / "tokenizer.json",
                     R"({"model": {"type": "BPE", "vocab": {}, "merges": []},
                         "pre_tokenizer": {"type": "Metaspace", "replacement": "▁"}})");
  msg = error_of([&] { Tokenizer::load(dir.path); });
  EXPECT_NE(msg.find("Metaspace"), std::string::npos) << msg;

  sqtest::write_file(dir / "tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
                         "pre_tokenizer": {"type": "ByteLevel"}})");
  msg = error_of([&] { Tokenizer::load(dir.path); });
  EXPECT_NE(msg.find("no token for byte"), std::string::npos) << msg;

  sqtest::write_file(dir / "tokenizer.json", "{\"model\": ");
  msg = error_of([&] { Tokenizer::load(dir.path); });
  EXPECT_NE(msg.find("invalid JSON"), std::string::npos) << msg;
}

// Structures that read past a const JSON object (undefined behaviour, garbage error text; issue 18)
// are errors naming the file. The sanitizer build has nlohmann's assertions on, so a regression aborts.
TEST(TokenizerJson, MalformedStructuresAreClearErrors) {
  sqtest::TempDir dir;
  const char* cases[][2] = {
      {R"({"model": {"type": "BPE", "vocab": {}, "merges": []}, "pre_tokenizer": {"type": "Sequence"}})",
       "without a pretokenizers list"},
      {R"({"model": {"type": "BPE", "vocab": {}, "merges": []}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": 7}})",
       "without a pretokenizers list"},
      {R"({"model": {"type": "BPE", "vocab": {}, "merges": []}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [3, {"type": "Split"}]}})",
       "Sequence [? Split]"},
      {R"({"model": {"type": "BPE", "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}})", "no \"vocab\""},
      {R"({"model": {"type": "BPE", "vocab": {}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}, "normalizer": "NFC"})",
       "normalizer \"NFC\""},
  };
  for (const auto& c : cases) {
    sqtest::write_file(dir / "tokenizer.json", c[0]);
    const std::string msg = error_of([&] { Tokenizer::load(dir.path); });
    EXPECT_NE(msg.find(c[1]), std::string::npos) << c[0] << "\n -> " << msg;
    EXPECT_NE(msg.find("tokenizer.json"), std::string::npos) << msg;
  }
}

// ---- SentencePiece -----------------------------------------------------------------------------

TEST(SentencePiece, Stories260K) {
  auto tok = Tokenizer::load(sqtest::bundled_model());
  EXPECT_EQ(tok->kind(), "sentencepiece");
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_TRUE(tok->add_bos());
  const Ids ids = tok->encode("Once upon a time");
  ASSERT_FALSE(ids.empty());
  EXPECT_NE(ids[0], 1);  // no BOS from encode
  EXPECT_EQ(tok->id_to_piece(ids[0]).rfind("\xE2\x96\x81", 0), 0u) << "first piece starts with the dummy-prefix ▁";
  EXPECT_EQ(tok->decode(ids), "Once upon a time");
  Ids with_specials = ids;
  with_specials.insert(with_specials.begin(), 1);
  with_specials.push_back(2);
  EXPECT_EQ(tok->decode(with_specials), "Once upon a time");
  with_specials.pop_back();
  EXPECT_EQ(tok->encode_prompt("Once upon a time"), with_specials);
  // Byte fallback: characters outside the 512 pieces come back exactly.
  EXPECT_EQ(tok->decode(tok->encode("héllo 世界 🙂")), "héllo 世界 🙂");
  EXPECT_THROW(tok->decode({512}), sq::Error);
}

TEST(SentencePiece, Stories260KGoldenPromptIds) {
  SQ_REQUIRE_SHARED("golden/stories260K.safetensors");
  sq::SafetensorsFile f(sqtest::shared_dir() / "golden/stories260K.safetensors");
  const auto& t = f.get("prompt_ids");
  ASSERT_EQ(t.dtype, sq::DType::I32);
  Ids golden(t.numel());
  std::memcpy(golden.data(), t.data, t.nbytes);
  const std::string prompt = f.metadata().at("prompt");
  auto tok = Tokenizer::load(sqtest::bundled_model());
  ASSERT_EQ(golden.at(0), tok->bos_id());  // the golden ids start with BOS, encode() does not add it
  EXPECT_EQ(tok->encode(prompt), Ids(golden.begin() + 1, golden.end()));
  EXPECT_EQ(tok->encode_prompt(prompt), golden);
  EXPECT_EQ(tok->decode(golden), prompt);
}

TEST(SentencePiece, Llama2KnownIds) {
  SQ_REQUIRE_SHARED("tokenizers/llama2/tokenizer.model");
  sqtest::TempDir dir;
  fs::copy_file(sqtest::shared_dir() / "tokenizers/llama2/tokenizer.model", dir / "tokenizer.model");
  auto tok = Tokenizer::load(dir.path);
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_TRUE(tok->add_bos());  // default for SentencePiece without tokenizer_config.json
  EXPECT_EQ(tok->encode("Hello world"), (Ids{15043, 3186}));  // ▁Hello ▁world
  EXPECT_EQ(tok->encode("\n"), (Ids{29871, 13}));             // dummy-prefix ▁, then byte <0x0A>
  EXPECT_EQ(tok->id_to_piece(13), "<0x0A>");
  EXPECT_EQ(tok->id_to_piece(15043), "\xE2\x96\x81Hello");
  EXPECT_EQ(tok->piece_to_id("\xE2\x96\x81world"), 3186);
  EXPECT_EQ(tok->piece_to_id("no such piece"), -1);
  for (const std::string s : {"The quick brown fox jumps over the lazy dog.", "héllo wörld 世界 🙂", "a\nb\n\nc",
                              "1234567890 + 0.5 = ?"}) {
    EXPECT_EQ(tok->decode(tok->encode(s)), s);
  }
}

// ---- streaming ---------------------------------------------------------------------------------

TEST(StreamDecoder, SentencePieceByteFallback) {
  auto tok = Tokenizer::load(sqtest::bundled_model());
  const std::string text = "héllo 世界 🙂 Once upon a time";
  Ids ids = tok->encode(text);
  ids.insert(ids.begin(), tok->bos_id());
  ids.push_back(tok->eos_id());
  const auto chunks = stream(*tok, ids);
  EXPECT_EQ(join(chunks), text);
  EXPECT_EQ(join(chunks), tok->decode(ids));
  // 世, 界 and 🙂 are byte pieces (3, 3 and 4 of them): the first bytes of each are held back.
  int empty = 0;
  for (const auto& c : chunks) empty += c.empty();
  EXPECT_GE(empty, 2 + 2 + 3);
  EXPECT_EQ(chunks.front(), "");  // BOS
  // The first word has no leading space (dummy prefix dropped); later words keep theirs.
  EXPECT_EQ(join(chunks).substr(0, 1), "h");
}

TEST(StreamDecoder, FlushEndsATextAndStartsANewOne) {
  auto tok = Tokenizer::load(sqtest::bundled_model());
  sq::StreamDecoder sd(*tok);
  const Ids a = tok->encode("Once upon"), b = tok->encode("a time");
  std::string out;
  for (int32_t id : a) out += sd.push(id);
  out += sd.flush();
  EXPECT_EQ(out, "Once upon");
  out.clear();
  for (int32_t id : b) out += sd.push(id);
  out += sd.flush();
  EXPECT_EQ(out, "a time");
  // An incomplete character left at the end comes out as decode() gives it: U+FFFD per stray byte.
  const Ids smile = tok->encode("🙂");
  ASSERT_GE(smile.size(), 4u);  // ▁ then the 4 byte pieces of U+1F642
  const Ids partial(smile.begin(), smile.end() - 1);
  std::string held;
  for (int32_t id : partial) held += sd.push(id);
  held += sd.flush();
  EXPECT_EQ(held, tok->decode(partial));
  EXPECT_NE(held.find(sq::unicode::kReplacementChar), std::string::npos);
  EXPECT_THROW(sd.push(9999), sq::Error);
}

TEST(StreamDecoder, Gpt2Bytes) {
  SQ_REQUIRE_SHARED("tokenizers/gpt2-bpe/vocab.json");
  const std::string text = "héllo 世界 🙂👍🏽 naïve — end";
  Ids ids = gpt2().encode(text);
  ids.push_back(50256);
  const auto chunks = stream(gpt2(), ids);
  EXPECT_EQ(join(chunks), text);
  int empty = 0;
  for (const auto& c : chunks) empty += c.empty();
  EXPECT_GE(empty, 2);  // emoji split over byte tokens are held back
}

// ---- missing and bad files ---------------------------------------------------------------------

TEST(TokenizerLoad, MissingFilesNameDirectoryAndCandidates) {
  sqtest::TempDir dir;
  std::string msg = error_of([&] { Tokenizer::load(dir.path); });
  EXPECT_NE(msg.find(dir.path.string()), std::string::npos) << msg;
  for (const char* f : {"tokenizer.model", "tokenizer.json", "vocab.json", "merges.txt"}) {
    EXPECT_NE(msg.find(f), std::string::npos) << msg;
  }
  sqtest::write_file(dir / "vocab.json", "{}");  // merges.txt still missing
  msg = error_of([&] { Tokenizer::load(dir.path); });
  EXPECT_NE(msg.find("merges.txt"), std::string::npos) << msg;

  msg = error_of([&] { Tokenizer::load(dir / "nope"); });
  EXPECT_NE(msg.find("nope"), std::string::npos) << msg;
}

TEST(TokenizerLoad, BadFilesAreErrorsNamingThem) {
  sqtest::TempDir dir;
  sqtest::write_file(dir / "tokenizer.model", "this is not a protobuf \x01\x02\x03");
  std::string msg = error_of([&] { Tokenizer::load(dir.path); });
  EXPECT_NE(msg.find("tokenizer.model"), std::string::npos) << msg;
  fs::remove(dir / "tokenizer.model");

  write_tiny_bpe(dir.path);
  sqtest::write_file(dir / "merges.txt", "#version: 0.2\nh e\nbad line here\n");
  msg = error_of([&] { Tokenizer::load(dir.path); });
  EXPECT_NE(msg.find("merges.txt:3"), std::string::npos) << msg;

  sqtest::write_file(dir / "merges.txt", "#version: 0.2\nq zz\n");
  msg = error_of([&] { Tokenizer::load(dir.path); });
  EXPECT_NE(msg.find("not in the vocabulary"), std::string::npos) << msg;

  write_tiny_bpe(dir.path);
  sqtest::write_file(dir / "tokenizer_config.json", "{not json");
  msg = error_of([&] { Tokenizer::load(dir.path); });
  EXPECT_NE(msg.find("tokenizer_config.json"), std::string::npos) << msg;

  sqtest::write_file(dir / "tokenizer_config.json", "{}");
  sqtest::write_file(dir / "vocab.json", R"({"a": -3})");
  msg = error_of([&] { Tokenizer::load(dir.path); });
  EXPECT_NE(msg.find("vocab.json"), std::string::npos) << msg;
  sqtest::write_file(dir / "vocab.json", R"({"a": 0, "b": 2000000000})");  // would need a 2e9-entry table
  msg = error_of([&] { Tokenizer::load(dir.path); });
  EXPECT_NE(msg.find("token ids reach"), std::string::npos) << msg;
}

}  // namespace
