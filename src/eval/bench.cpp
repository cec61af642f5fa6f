#include "eval/bench.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>

#include "core/bandwidth.h"
#include "core/error.h"
#include "model/sampler.h"
#include "model/session.h"

namespace sq {

size_t peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return size_t(std::stoull(line.substr(6))) * 1024;
  return 0;
}

namespace {
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n == 0 ? 0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}
}  // namespace

nlohmann::json run_bench(const Model& model, const BenchOptions& o, const ExecContext& ctx) {
  const ModelConfig& c = model.cfg;
  if (o.prompt < 0 || o.gen < 0 || o.repeat < 1) fail("bench: --prompt, --gen must be >= 0 and --repeat >= 1");
  if (o.prompt + o.gen > c.max_pos)
    fail("bench: --prompt ", o.prompt, " + --gen ", o.gen, " exceeds the model's context of ", c.max_pos);
  using clk = std::chrono::steady_clock;
  std::vector<int32_t> prompt(std::max<int64_t>(o.prompt, 1));
  uint64_t st = o.seed + 12345;
  for (auto& t : prompt) {
    st = st * 6364136223846793005ull + 1442695040888963407ull;
    t = int32_t(3 + (st >> 33) % uint64_t(c.vocab_size - 3));
  }
  std::vector<double> pp, tg;
  std::vector<float> logits;
  Session s(model, ctx, std::min<int64_t>(c.max_pos, std::max<int64_t>(o.prompt, 1) + o.gen));
  // One untimed warm-up step pages the weights in and spins the threads up.
  s.forward(prompt.data(), 1, &logits, false);
  for (int r = 0; r < o.repeat; r++) {
    if (o.prompt > 0) {
      s.reset();
      auto t0 = clk::now();
      s.forward(prompt.data(), o.prompt, &logits, false);
      pp.push_back(double(o.prompt) / std::chrono::duration<double>(clk::now() - t0).count());
    }
    if (o.gen > 0) {
      s.reset();
      int32_t tok = prompt[0];
      auto t0 = clk::now();
      for (int64_t i = 0; i < o.gen; i++) {
        s.forward(&tok, 1, &logits, false);
        tok = argmax(logits.data(), c.vocab_size);
      }
      tg.push_back(double(o.gen) / std::chrono::duration<double>(clk::now() - t0).count());
    }
  }
  // Peak RSS of the inference itself, before the bandwidth probe allocates its own large buffer.
  const size_t rss = peak_rss_bytes();
  double bw = o.measure_bandwidth ? measure_read_bandwidth_gbs(*ctx.pool) : 0.0;
  nlohmann::json j;
  j["model"] = model.dir.string();
  j["threads"] = ctx.pool->size();
  j["isa"] = isa_name(resolve_isa(ctx.isa));
  j["prompt_tokens"] = o.prompt;
  j["gen_tokens"] = o.gen;
  j["repeat"] = o.repeat;
  j["prompt_tok_s"] = median(pp);
  j["prompt_tok_s_min"] = pp.empty() ? 0 : *std::min_element(pp.begin(), pp.end());
  j["prompt_tok_s_max"] = pp.empty() ? 0 : *std::max_element(pp.begin(), pp.end());
  j["gen_tok_s"] = median(tg);
  j["gen_tok_s_min"] = tg.empty() ? 0 : *std::min_element(tg.begin(), tg.end());
  j["gen_tok_s_max"] = tg.empty() ? 0 : *std::max_element(tg.begin(), tg.end());
  j["model_bytes"] = model.ckpt->bytes_on_disk();
  j["weight_bytes_per_token"] = model.bytes_per_token();
  j["read_bandwidth_gbs"] = bw;
  j["gen_bandwidth_gbs"] = median(tg) * double(model.bytes_per_token()) / 1e9;
  j["gen_bandwidth_fraction"] = bw > 0 ? median(tg) * double(model.bytes_per_token()) / 1e9 / bw : 0.0;
  j["peak_rss_bytes"] = rss;
  j["peak_rss_over_model_bytes"] = double(rss) / double(model.ckpt->bytes_on_disk());
  return j;
}

}  // namespace sq
