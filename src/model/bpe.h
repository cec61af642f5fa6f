// Byte-level BPE (GPT-2, OPT, and tokenizer.json files of that kind).
// Encoding: split the text into pre-tokens with GPT-2's pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// (implemented by hand, see gpt2_pretokenize), write each pre-token's UTF-8 bytes as one printable
// code point per byte (byte_to_unicode), start from one symbol per byte and repeatedly merge the
// adjacent pair with the lowest merge rank until no listed pair is left.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/tokenizer.h"

namespace sq {

// GPT-2's reversible byte -> code point map: printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ')
// map to themselves, the other 68 bytes to U+0100.. in byte order (so ' ' -> 'Ġ' U+0120, '\n' -> 'Ċ').
char32_t byte_to_unicode(uint8_t b);

// Pre-token boundaries of text as [begin, end) byte offsets, covering text exactly. Each invalid UTF-8
// sequence (maximal invalid subpart) counts as one "other" character.
std::vector<std::pair<size_t, size_t>> gpt2_pretokenize(std::string_view text);

struct AddedToken {
  int32_t id = -1;
  std::string content;   // raw text (not byte-mapped)
  bool special = false;  // special tokens are skipped by decode and never produced by encode
};

// Everything a byte-level BPE tokenizer is built from, as read from the files.
struct BpeData {
  std::unordered_map<std::string, int32_t> vocab;            // byte-mapped token -> id
  std::vector<std::pair<std::string, std::string>> merges;  // rank order (first = applied first)
  std::vector<AddedToken> added;                             // tokenizer.json added_tokens
  bool add_prefix_space = false;  // ByteLevel add_prefix_space: " " in front of text not starting with one
  bool ignore_merges = false;     // BPE ignore_merges: a pre-token found whole in the vocab is one token
  std::optional<bool> template_adds_bos;  // tokenizer.json TemplateProcessing starts with a special token
  std::string source;             // file name(s), for error messages
};

BpeData read_gpt2_files(const std::filesystem::path& vocab_json, const std::filesystem::path& merges_txt);
// tokenizer.json with model.type "BPE" and a ByteLevel pre-tokenizer; anything else is an sq::Error
// naming the file and what it has instead.
BpeData read_tokenizer_json(const std::filesystem::path& file);

class ByteLevelBpe final : public Tokenizer {
 public:
  explicit ByteLevelBpe(BpeData data);  // validates (all 256 byte symbols, merge results in the vocab)

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(pieces_.size()); }
  std::string id_to_piece(int32_t id) const override;
  int32_t piece_to_id(std::string_view piece) const override;
  std::string_view kind() const override { return "byte-level BPE"; }

  // Makes decode skip this id (BOS/EOS/pad named by tokenizer_config.json).
  void mark_special(int32_t id);
  const std::optional<bool>& template_adds_bos() const { return template_adds_bos_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t result;  // id of the merged token
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  // Appends the ids of one pre-token (raw UTF-8 bytes) to out.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  // Encodes text that contains no added token.
  void encode_plain(std::string_view text, std::vector<int32_t>& out,
                    std::unordered_map<std::string_view, std::vector<int32_t>>& cache) const;

  std::vector<std::string> pieces_;      // id -> vocabulary entry as stored ("" for unused ids)
  std::vector<std::string> id_bytes_;    // id -> the raw bytes it decodes to
  std::vector<uint8_t> special_;         // id -> skipped by decode
  std::unordered_map<std::string, int32_t> piece_ids_;
  int32_t byte_ids_[256];                // byte -> id of its single-symbol token
  std::unordered_map<uint64_t, Merge> merges_;  // pair_key(left, right) -> rank and result
  std::vector<AddedToken> matchable_;    // non-special added tokens, longest first
  bool add_prefix_space_ = false;
  bool ignore_merges_ = false;
  std::optional<bool> template_adds_bos_;
  std::string source_;
};

}  // namespace sq
