#include "eval/perplexity.h"

#include <chrono>
#include <cmath>

#include "core/error.h"
#include "core/progress.h"
#include "model/session.h"

namespace sq {

double token_nll(const float* logits, int64_t vocab, int32_t target) {
  double mx = logits[0];
  for (int64_t i = 1; i < vocab; i++) mx = std::max(mx, double(logits[i]));
  double sum = 0;
  for (int64_t i = 0; i < vocab; i++) sum += std::exp(double(logits[i]) - mx);
  return std::log(sum) + mx - double(logits[target]);
}

PerplexityResult perplexity(const Model& model, const std::vector<int32_t>& ids, int64_t ctx, int64_t max_windows,
                            const ExecContext& ectx, bool progress) {
  if (ctx < 2) fail("--ctx must be at least 2, got ", ctx);
  if (ctx > model.cfg.max_pos)
    fail("--ctx ", ctx, " is larger than the model's context of ", model.cfg.max_pos, " tokens");
  int64_t windows = int64_t(ids.size()) / ctx;
  if (windows == 0) fail("the data has ", ids.size(), " tokens, fewer than one window of ", ctx);
  if (max_windows > 0) windows = std::min(windows, max_windows);
  auto t0 = std::chrono::steady_clock::now();
  Session sess(model, ectx, ctx);
  Progress bar("eval", windows, "win", progress, "tok", double(ctx));
  const int64_t V = model.cfg.vocab_size;
  std::vector<float> logits;
  double nll = 0;
  for (int64_t w = 0; w < windows; w++) {
    sess.reset();
    const int32_t* win = ids.data() + w * ctx;
    sess.forward(win, ctx, &logits, true);
    for (int64_t t = 0; t + 1 < ctx; t++) nll += token_nll(logits.data() + t * V, V, win[t + 1]);
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
