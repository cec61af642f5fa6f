// Mistral (model_type "mistral"): the llama block (llama.cpp) with an optional sliding attention
// window: position i attends to j with i - sliding_window < j <= i.
#include "core/error.h"
#include "io/config.h"
#include "model/arch/arch.h"
#include "io/config_keys.h"

namespace sq {

const ArchDesc& mistral_arch() {
  static const ArchDesc d = [] {
    ArchDesc a = llama_like_desc("mistral", "MistralForCausalLM");
    a.parse = [](const nlohmann::json& j, const std::string& file, ModelConfig& c) {
      llama_arch().parse(j, file, c);
      const int64_t w = get_int_or(j, file, "sliding_window", 0);
      if (w < 0) fail(file, ": key \"sliding_window\" must be positive or null");
      c.sliding_window = w;
    };
    a.write = [](const ModelConfig& c, nlohmann::json& j) {
      llama_arch().write(c, j);
      if (c.sliding_window > 0) j["sliding_window"] = c.sliding_window;
    };
    return a;
  }();
  return d;
}

}  // namespace sq
