// Perplexity with squeeze's convention: the whole text is tokenized once without BOS; the ids are cut
// into consecutive non-overlapping windows of ctx tokens (a last partial window is dropped); in each
// window every token after the first is scored from a fresh context; ppl = exp(mean NLL).
#pragma once
#include <cstdint>
#include <vector>

#include "core/context.h"
#include "model/model.h"

namespace sq {

struct PerplexityResult {
  double ppl = 0, mean_nll = 0;
  int64_t tokens_scored = 0, windows = 0, ctx = 0;
  double seconds = 0;
};

// max_windows <= 0: all. Throws if ctx exceeds the model context or the text has fewer than ctx tokens.
PerplexityResult perplexity(const Model& model, const std::vector<int32_t>& ids, int64_t ctx, int64_t max_windows,
                            const ExecContext& ectx, bool progress);

}  // namespace sq
