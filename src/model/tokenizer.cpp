#include "model/tokenizer.h"

#include <sentencepiece_processor.h>

#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "core/mmap_file.h"
#include "model/bpe.h"
#include "model/unicode.h"

namespace sq {
namespace fs = std::filesystem;

namespace {

// SentencePiece through libsentencepiece: encode is EncodeAsIds with the model's own normalizer
// (LLaMA models add a dummy-prefix space), which is what Hugging Face's LlamaTokenizer gives without
// BOS; decode drops control pieces and turns byte pieces back into UTF-8.
class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const fs::path& file) : source_(file.string()) {
    const std::string bytes = read_whole_file(file);
    const auto st = sp_.LoadFromSerializedProto(bytes);
    SQ_CHECK(st.ok(), source_, ": not a valid SentencePiece model (", st.ToString(), ")");
    SQ_CHECK(sp_.GetPieceSize() > 0, source_, ": SentencePiece model has no pieces");
  }

  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int> ids;
    const auto st = sp_.Encode(text, &ids);
    SQ_CHECK(st.ok(), source_, ": SentencePiece encode failed (", st.ToString(), ")");
    return {ids.begin(), ids.end()};
  }

  std::string decode(const std::vector<int32_t>& ids) const override {
    std::vector<int> keep;
    keep.reserve(ids.size());
    for (int32_t id : ids) {
      SQ_CHECK(id >= 0 && id < vocab_size(), source_, ": cannot decode token id ", id, " (vocabulary size ",
               vocab_size(), ")");
      if (id != bos_id_ && id != eos_id_) keep.push_back(id);  // ids from config.json may not be control pieces
    }
    std::string out;
    const auto st = sp_.Decode(keep, &out);
    SQ_CHECK(st.ok(), source_, ": SentencePiece decode failed (", st.ToString(), ")");
    return out;
  }

  int64_t vocab_size() const override { return sp_.GetPieceSize(); }

  std::string id_to_piece(int32_t id) const override {
    SQ_CHECK(id >= 0 && id < vocab_size(), source_, ": token id ", id, " outside [0, ", vocab_size(), ")");
    return sp_.IdToPiece(id);
  }

  int32_t piece_to_id(std::string_view piece) const override {
    const int id = sp_.PieceToId(piece);  // unknown pieces map to unk_id: check the round trip
    return id >= 0 && id < vocab_size() && sp_.IdToPiece(id) == piece ? id : -1;
  }

  std::string_view kind() const override { return "sentencepiece"; }

  int32_t own_bos() const { return sp_.bos_id(); }  // -1 when the model defines none
  int32_t own_eos() const { return sp_.eos_id(); }

 private:
  sentencepiece::SentencePieceProcessor sp_;
  std::string source_;
};

// tokenizer_config.json values: "bos_token" may be a string or {"content": "..."} (or null).
std::optional<std::string> token_string(const nlohmann::json& cfg, const char* key) {
  if (!cfg.is_object() || !cfg.contains(key)) return std::nullopt;
  const auto& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

bool ends_with_replacement(const std::string& s) { return s.ends_with(unicode::kReplacementChar); }

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::load(const fs::path& dir, int64_t bos_id, int64_t eos_id) {
  const char* looked_for = "tokenizer.model, tokenizer.json, vocab.json + merges.txt";
  SQ_CHECK(fs::is_directory(dir), "no tokenizer: ", dir.string(), " is not a directory (looked for ", looked_for,
           ")");
  nlohmann::json cfg;
  if (const fs::path p = dir / "tokenizer_config.json"; fs::exists(p)) {
    try {
      cfg = nlohmann::json::parse(read_whole_file(p));
    } catch (const nlohmann::json::exception& e) {
      fail(p.string(), ": invalid JSON (", e.what(), ")");
    }
    SQ_CHECK(cfg.is_object(), p.string(), ": expected a JSON object");
  }

  std::unique_ptr<Tokenizer> tok;
  ByteLevelBpe* bpe = nullptr;
  int32_t own_bos = -1, own_eos = -1;
  if (fs::exists(dir / "tokenizer.model")) {
    auto sp = std::make_unique<SentencePieceTokenizer>(dir / "tokenizer.model");
    own_bos = sp->own_bos();
    own_eos = sp->own_eos();
    tok = std::move(sp);
  } else {
    BpeData data;
    if (fs::exists(dir / "tokenizer.json")) {
      data = read_tokenizer_json(dir / "tokenizer.json");
    } else if (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")) {
      data = read_gpt2_files(dir / "vocab.json", dir / "merges.txt");
      if (cfg.contains("add_prefix_space") && cfg["add_prefix_space"].is_boolean()) {
        data.add_prefix_space = cfg["add_prefix_space"].get<bool>();
      }
    } else {
      fail("no tokenizer in ", dir.string(), ": looked for ", looked_for);
    }
    auto b = std::make_unique<ByteLevelBpe>(std::move(data));
    // GPT-2 uses <|endoftext|> for both; OPT-style vocabularies use </s>.
    for (const char* name : {"<|endoftext|>", "</s>"}) {
      if (int32_t id = b->piece_to_id(name); id >= 0) {
        own_bos = own_eos = id;
        break;
      }
    }
    bpe = b.get();
    tok = std::move(b);
  }

  const int64_t n = tok->vocab_size();
  auto resolve = [&](int64_t given, const char* key, int32_t fallback) -> int32_t {
    if (given >= 0) {
      SQ_CHECK(given < n, dir.string(), ": ", key, " id ", given, " is outside the tokenizer's vocabulary (", n,
               " tokens)");
      return static_cast<int32_t>(given);
    }
    if (auto s = token_string(cfg, key)) {
      if (int32_t id = tok->piece_to_id(*s); id >= 0) return id;
    }
    return fallback;
  };
  tok->bos_id_ = resolve(bos_id, "bos_token", own_bos);
  tok->eos_id_ = resolve(eos_id, "eos_token", own_eos);

  if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) {
    tok->add_bos_ = cfg["add_bos_token"].get<bool>();
  } else if (!bpe) {
    tok->add_bos_ = true;
  } else if (bpe->template_adds_bos()) {
    tok->add_bos_ = *bpe->template_adds_bos();
  } else {
    tok->add_bos_ = tok->bos_id_ >= 0 && tok->id_to_piece(tok->bos_id_) == "</s>";  // OPT: yes, GPT-2: no
  }
  tok->add_bos_ = tok->add_bos_ && tok->bos_id_ >= 0;

  if (bpe) {
    // decode() skips BOS/EOS and the special tokens tokenizer_config.json names.
    bpe->mark_special(tok->bos_id_);
    bpe->mark_special(tok->eos_id_);
    for (const char* key : {"unk_token", "pad_token"}) {
      if (auto s = token_string(cfg, key)) bpe->mark_special(tok->piece_to_id(*s));
    }
    if (cfg.contains("added_tokens_decoder") && cfg["added_tokens_decoder"].is_object()) {
      for (const auto& [id, t] : cfg["added_tokens_decoder"].items()) {
        if (t.is_object() && t.value("special", false) && t.contains("content") && t["content"].is_string()) {
          bpe->mark_special(tok->piece_to_id(t["content"].get<std::string>()));
        }
      }
    }
  }
  return tok;
}

std::vector<int32_t> Tokenizer::encode_prompt(std::string_view text) const {
  std::vector<int32_t> ids = encode(text);
  if (add_bos_) ids.insert(ids.begin(), bos_id_);
  return ids;
}

// ---- streaming ---------------------------------------------------------------------------------
// window_ = ids from the start of the last returned chunk; window_[0, emitted_) made that chunk.
// Decoding window_ with and without the new ids gives the new text; the chunk before gives the
// context that SentencePiece needs (the first word of a decode loses its leading space, so the
// window starts one chunk back and that loss cancels in the difference). Text ending in U+FFFD may
// be an incomplete character: it waits for more ids.

StreamDecoder::StreamDecoder(const Tokenizer& tok, const std::vector<int32_t>& prefix) : tok_(&tok) {
  constexpr size_t kContext = 8;  // ids of context: enough for a word boundary, short to decode
  window_.assign(prefix.size() > kContext ? prefix.end() - kContext : prefix.begin(), prefix.end());
  emitted_ = window_.size();
}

std::string StreamDecoder::push(int32_t id) {
  SQ_CHECK(id >= 0 && id < tok_->vocab_size(), "stream decoder: token id ", id, " outside the vocabulary (",
           tok_->vocab_size(), " tokens)");
  window_.push_back(id);
  const std::string before =
      tok_->decode(std::vector<int32_t>(window_.begin(), window_.begin() + static_cast<ptrdiff_t>(emitted_)));
  const std::string now = tok_->decode(window_);
  if (now.size() <= before.size() || ends_with_replacement(now) || !now.starts_with(before)) return {};
  window_.erase(window_.begin(), window_.begin() + static_cast<ptrdiff_t>(emitted_));
  emitted_ = window_.size();
  return now.substr(before.size());
}

std::string StreamDecoder::flush() {
  std::string out;
  if (!window_.empty()) {
    const std::string before =
        tok_->decode(std::vector<int32_t>(window_.begin(), window_.begin() + static_cast<ptrdiff_t>(emitted_)));
    const std::string now = tok_->decode(window_);
    if (now.size() > before.size() && now.starts_with(before)) out = now.substr(before.size());
  }
  window_.clear();
  emitted_ = 0;
  return out;
}

}  // namespace sq
