// Tokenizers of Hugging Face model directories:
//   tokenizer.model            SentencePiece (LLaMA, Llama 2, Mistral, Vicuna), through libsentencepiece
//   tokenizer.json             Hugging Face "fast" tokenizer, byte-level BPE only (GPT-2 style)
//   vocab.json + merges.txt    GPT-2 byte-level BPE (GPT-2, OPT)
// looked for in that order. encode() never adds BOS/EOS and never turns text such as "</s>" into a
// special token (prompts cannot inject control tokens); callers prepend bos_id() when add_bos().
// All methods are const and safe to call from several threads at once.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sq {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // bos_id / eos_id: used when >= 0 (callers pass config.json's ids), else taken from the tokenizer
  // (tokenizer_config.json's bos_token / eos_token strings, else the tokenizer's own). Throws sq::Error
  // naming the directory and the files looked for when none is there, or naming the file that is bad.
  static std::unique_ptr<Tokenizer> load(const std::filesystem::path& dir, int64_t bos_id = -1,
                                         int64_t eos_id = -1);

  virtual std::vector<int32_t> encode(std::string_view text) const = 0;  // never adds BOS/EOS
  // Concatenated text of the ids; skips BOS, EOS and control/special tokens. Always valid UTF-8
  // (stray bytes become U+FFFD). Throws sq::Error for an id outside [0, vocab_size()).
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual int64_t vocab_size() const = 0;
  // The vocabulary entry of an id as stored ("▁the", "Ġthe", "<0x0A>", "</s>"); "" for an unused id.
  virtual std::string id_to_piece(int32_t id) const = 0;
  virtual int32_t piece_to_id(std::string_view piece) const = 0;  // -1 when not in the vocabulary
  virtual std::string_view kind() const = 0;                      // "sentencepiece" / "byte-level BPE"

  int32_t bos_id() const { return bos_id_; }  // -1 when the tokenizer has none
  int32_t eos_id() const { return eos_id_; }
  // Whether the model expects BOS at the start of a prompt: tokenizer_config.json's add_bos_token when
  // given; else true for SentencePiece and for OPT-style BPE (BOS token "</s>"), false for GPT-2.
  bool add_bos() const { return add_bos_; }
  // encode(text) with bos_id() in front when add_bos().
  std::vector<int32_t> encode_prompt(std::string_view text) const;

 protected:
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  bool add_bos_ = false;
};

// Turns ids arriving one at a time into text: push() returns the text completed by that id (often
// empty: a character split over byte tokens is held back until its last byte arrives), so the
// concatenation of all push() results and flush() equals tokenizer.decode(all ids), and every
// returned piece is valid UTF-8. Works by decoding a short window of recent ids twice (with and
// without the new id) and returning the difference, which keeps SentencePiece's rule of dropping the
// leading space of the first word exact. The tokenizer must outlive the decoder.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(&tok) {}
  // Continues a text already shown: the last ids of `prefix` (a prompt) are the context of the first
  // pushed id, so its leading space is kept ("Once upon" + " a"), as decode(prefix + ids) has it.
  StreamDecoder(const Tokenizer& tok, const std::vector<int32_t>& prefix);
  std::string push(int32_t id);
  // Returns whatever is held back (an incomplete character becomes U+FFFD) and starts a new text.
  std::string flush();

 private:
  const Tokenizer* tok_;
  std::vector<int32_t> window_;  // ids since the start of the last emitted chunk (or of the text)
  size_t emitted_ = 0;           // window_[0, emitted_) produced text already returned
};

}  // namespace sq
