// config.json (io/config.cpp, model/arch/*) with its quantization_config (GPTQ's parse and the lut
// format version check), and generation_config.json. Input: config.json; if it contains a NUL byte, what
// follows is generation_config.json.
#include <nlohmann/json.hpp>

#include "formats/int4_group.h"
#include "fuzz_util.h"
#include "io/config.h"
#include "model/names.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nul = in.find('\0');
  const auto dir = sqfuzz::fresh_dir("cfg");
  sqfuzz::write(dir / "config.json", in.substr(0, nul));
  if (nul != std::string_view::npos) sqfuzz::write(dir / "generation_config.json", in.substr(nul + 1));
  sqfuzz::expect_only_sq_errors([&] {
    const sq::ModelConfig c = sq::ModelConfig::load(dir);
    // A parsed config's dimensions are bounded: the products the loaders form must not overflow.
    volatile int64_t sink = c.hidden * c.vocab_size + c.intermediate * c.hidden + c.n_layers * c.head_dim * c.n_heads +
                            c.max_pos * c.n_kv_heads * c.head_dim;
    (void)sink;
    (void)sq::tensor_names(c, c.arch->roots[0], c.tie_embeddings);
    if (c.quant.is_object()) (void)sq::parse_gptq_config(c.quant, "quantization_config");
  });
  return 0;
}
