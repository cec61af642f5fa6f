#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace sq {

int32_t argmax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return int32_t(best);
}

Sampler::Sampler(const SamplerOptions& o) : o_(o), state_(o.seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}

double Sampler::uniform() {  // splitmix64: tiny, fast, identical everywhere
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return double(z >> 11) * 0x1.0p-53;
}

int32_t Sampler::sample(const float* logits, int64_t vocab) {
  // NaN would break the ordering partial_sort relies on and make argmax meaningless.
  for (int64_t i = 0; i < vocab; i++)
    if (!std::isfinite(logits[i]))
      fail("the model produced a non-finite logit (", logits[i], " for token ", i,
           "): its weights hold NaN or infinity, or its activations overflowed");
  if (o_.temperature <= 0) return argmax(logits, vocab);
  std::vector<int32_t> idx(vocab);
  std::iota(idx.begin(), idx.end(), 0);
  int64_t k = (o_.top_k > 0 && o_.top_k < vocab) ? o_.top_k : vocab;
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), by_logit);
  idx.resize(k);
  std::vector<double> p(k);
  double mx = logits[idx[0]], sum = 0;
  for (int64_t i = 0; i < k; i++) sum += p[i] = std::exp((logits[idx[i]] - mx) / o_.temperature);
  // Nucleus: keep the smallest prefix whose probability reaches top_p.
  int64_t keep = k;
  if (o_.top_p < 1.0) {
    double acc = 0;
    for (int64_t i = 0; i < k; i++) {
      acc += p[i] / sum;
      if (acc >= o_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double total = 0;
  for (int64_t i = 0; i < keep; i++) total += p[i];
  double r = uniform() * total;
  for (int64_t i = 0; i < keep; i++) {
    r -= p[i];
    if (r < 0) return idx[i];
  }
  return idx[keep - 1];
}

}  // namespace sq
