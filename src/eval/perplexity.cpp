#include "eval/perplexity.h"

#include <chrono>
#include <cmath>

#include "core/error.h"
#include "core/progress.h"
#include "engine/engine.h"
#include "model/ops.h"

namespace sq {

PerplexityResult perplexity(const Model& model, const std::vector<int32_t>& ids, int64_t ctx, int64_t max_windows,
                            const ExecContext& ectx, bool progress) {
  if (ctx < 2) fail("--ctx must be at least 2, got ", ctx);
  if (ctx > model.cfg.max_pos)
    fail("--ctx ", ctx, " is larger than the model's context of ", model.cfg.max_pos, " tokens");
  int64_t windows = int64_t(ids.size()) / ctx;
  if (windows == 0) fail("the data has ", ids.size(), " tokens, fewer than one window of ", ctx);
  if (max_windows > 0) windows = std::min(windows, max_windows);
  auto t0 = std::chrono::steady_clock::now();
  EngineOptions eo;
  eo.kv_tokens = ctx;
  Engine engine(model, ectx, eo);
  const int32_t seq = engine.add_sequence();
  Progress bar("eval", windows, "win", progress, "tok", double(ctx));
  const int64_t V = model.cfg.vocab_size;
  double nll = 0;
  for (int64_t w = 0; w < windows; w++) {
    engine.clear_sequence(seq);
    const int32_t* win = ids.data() + w * ctx;
    engine.feed(seq, win, ctx, true);
    for (int64_t t = 0; t + 1 < ctx; t++) nll += token_nll(engine.logits(t), V, win[t + 1]);
    if (!std::isfinite(nll))
      fail("perplexity is not finite (window ", w + 1, " of ", windows, " gives a negative log-likelihood of ", nll,
           "): the model's logits hold NaN or infinity; its weights may not be finite");
    bar.update(w + 1, cat("ppl ", std::exp(nll / double((w + 1) * (ctx - 1)))));
  }
  bar.finish();
  PerplexityResult r;
  r.windows = windows;
  r.ctx = ctx;
  r.tokens_scored = windows * (ctx - 1);
  r.mean_nll = nll / double(r.tokens_scored);
  r.ppl = std::exp(r.mean_nll);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace sq
