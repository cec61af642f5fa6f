// Tokenizer files (model/tokenizer.cpp, model/bpe.cpp): first byte picks the kind, the rest is its
// file(s); a loaded tokenizer then encodes and decodes text, including the input's own bytes.
//   0: tokenizer.json            1: vocab.json NUL merges.txt
//   2: tokenizer.model (SentencePiece protobuf)   3: tokenizer.json NUL tokenizer_config.json
#include "fuzz_util.h"
#include "model/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t nul = rest.find('\0');
  const std::string_view a = rest.substr(0, nul), b = nul == std::string_view::npos ? "" : rest.substr(nul + 1);
  const auto dir = sqfuzz::fresh_dir("tok");
  switch (data[0] % 4) {
    case 0: sqfuzz::write(dir / "tokenizer.json", rest); break;
    case 1:
      sqfuzz::write(dir / "vocab.json", a);
      sqfuzz::write(dir / "merges.txt", b);
      break;
    case 2: sqfuzz::write(dir / "tokenizer.model", rest); break;
    default:
      sqfuzz::write(dir / "tokenizer.json", a);
      sqfuzz::write(dir / "tokenizer_config.json", b);
  }
  sqfuzz::expect_only_sq_errors([&] {
    auto tok = sq::Tokenizer::load(dir);
    for (const std::string_view text : {std::string_view("Hello world, it's 2026!\n  x"), a.substr(0, 256)}) {
      const auto ids = tok->encode(std::string(text));
      (void)tok->decode(ids);
      (void)tok->encode_prompt(std::string(text));
    }
    for (int32_t id : {0, 1, 2, int32_t(tok->vocab_size()) - 1}) {
      if (id < 0 || id >= tok->vocab_size()) continue;
      (void)tok->id_to_piece(id);
      (void)tok->decode({id});
    }
  });
  return 0;
}
