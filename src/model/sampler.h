// Token sampling from logits: greedy (temperature 0), or temperature + top-k + top-p (nucleus)
// with a seeded generator, so the same seed gives the same text on every machine.
#pragma once
#include <cstdint>
#include <vector>

namespace sq {

struct SamplerOptions {
  double temperature = 0.8;  // 0 = greedy (argmax, lowest id on ties)
  int64_t top_k = 40;        // 0 = off
  double top_p = 0.95;       // 1 = off
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& o);
  int32_t sample(const float* logits, int64_t vocab);

 private:
  double uniform();  // [0, 1)
  SamplerOptions o_;
  uint64_t state_;
};

int32_t argmax(const float* x, int64_t n);

}  // namespace sq
