// Whole-checkpoint loading (model/model.cpp, formats/load_linear.cpp: dense, lut and GPTQ int4
// loaders) and one short forward through what loaded. First byte picks config.json (dense, SqueezeLLM lut
// or GPTQ int4 for a tiny LLaMA: vocab 16, hidden 8, one layer; fuzz/config_*.json), the rest is
// model.safetensors. A checkpoint the loaders accept must run: a bad shape or index that passed
// validation shows up as a sanitizer report in the kernels.
#include "core/context.h"
#include "engine/engine.h"
#include "fuzz_util.h"
#include "model/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const char* kConfigs[] = {"dense", "lut", "gptq"};
  static sq::OwnedContext ctx = sq::make_context(1);
  const auto dir = sqfuzz::fresh_dir("ckpt");
  const std::string kind = kConfigs[data[0] % 3];
  std::filesystem::copy_file(std::filesystem::path(SQUEEZE_SOURCE_DIR) / "fuzz" / ("config_" + kind + ".json"),
                             dir / "config.json");
  sqfuzz::write(dir / "model.safetensors", std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  sqfuzz::expect_only_sq_errors([&] {
    auto model = sq::Model::load(dir);
    sq::EngineOptions eo;
    eo.kv_tokens = 8;
    sq::Engine engine(*model, ctx.ctx, eo);
    const int32_t seq = engine.add_sequence();
    const int32_t tokens[3] = {1, 5, 15};
    engine.feed(seq, tokens, 3, true);
    volatile float sink = engine.logits(2)[15];
    (void)sink;
  });
  return 0;
}
