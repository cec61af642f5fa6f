#include "eval/bench.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
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

namespace {

double min_of(const std::vector<double>& v) { return v.empty() ? 0 : *std::min_element(v.begin(), v.end()); }
double max_of(const std::vector<double>& v) { return v.empty() ? 0 : *std::max_element(v.begin(), v.end()); }

// One model's session and prompt; measure() runs one repetition of both tests.
struct BenchRun {
  const Model& model;
  const BenchOptions& o;
  std::vector<int32_t> prompt;
  std::vector<float> logits;
  Session s;
  std::vector<double> pp, tg;

  BenchRun(const Model& m, const BenchOptions& opt, const ExecContext& ctx)
      : model(m), o(opt), prompt(size_t(std::max<int64_t>(opt.prompt, 1))),
        s(m, ctx, std::min<int64_t>(m.cfg.max_pos, std::max<int64_t>(opt.prompt, 1) + opt.gen)) {
    const ModelConfig& c = m.cfg;
    if (o.prompt < 0 || o.gen < 0 || o.repeat < 1) fail("bench: --prompt, --gen must be >= 0 and --repeat >= 1");
    if (o.prompt + o.gen > c.max_pos)
      fail("bench: --prompt ", o.prompt, " + --gen ", o.gen, " exceeds the model's context of ", c.max_pos, " (",
           m.dir.string(), ")");
    uint64_t st = o.seed + 12345;
    for (auto& t : prompt) {
      st = st * 6364136223846793005ull + 1442695040888963407ull;
      t = int32_t(3 + (st >> 33) % uint64_t(c.vocab_size - 3));
    }
    // One untimed warm-up step pages the weights in and spins the threads up.
    s.forward(prompt.data(), 1, &logits, false);
  }

  void measure() {
    using clk = std::chrono::steady_clock;
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
        tok = argmax(logits.data(), model.cfg.vocab_size);
      }
      tg.push_back(double(o.gen) / std::chrono::duration<double>(clk::now() - t0).count());
    }
  }

  nlohmann::json report(const ExecContext& ctx, double bw, size_t rss) const {
    nlohmann::json j;
    j["model"] = model.dir.string();
    j["threads"] = ctx.pool->size();
    j["isa"] = isa_name(resolve_isa(ctx.isa));
    j["prompt_tokens"] = o.prompt;
    j["gen_tokens"] = o.gen;
    j["repeat"] = o.repeat;
    j["prompt_tok_s"] = median(pp);
    j["prompt_tok_s_min"] = min_of(pp);
    j["prompt_tok_s_max"] = max_of(pp);
    j["gen_tok_s"] = median(tg);
    j["gen_tok_s_min"] = min_of(tg);
    j["gen_tok_s_max"] = max_of(tg);
    j["model_bytes"] = model.ckpt->bytes_on_disk();
    j["weight_bytes_per_token"] = model.bytes_per_token();
    j["read_bandwidth_gbs"] = bw;
    j["gen_bandwidth_gbs"] = median(tg) * double(model.bytes_per_token()) / 1e9;
    j["gen_bandwidth_fraction"] = bw > 0 ? median(tg) * double(model.bytes_per_token()) / 1e9 / bw : 0.0;
    j["peak_rss_bytes"] = rss;
    j["peak_rss_over_model_bytes"] = double(rss) / double(model.ckpt->bytes_on_disk());
    return j;
  }
};

nlohmann::json spread(const std::vector<double>& v) {
  return nlohmann::json{{"median", median(v)}, {"min", min_of(v)}, {"max", max_of(v)}};
}

}  // namespace

nlohmann::json run_bench(const Model& model, const BenchOptions& o, const ExecContext& ctx) {
  BenchRun run(model, o, ctx);
  for (int r = 0; r < o.repeat; r++) run.measure();
  // Peak RSS of the inference itself, before the bandwidth probe allocates its own large buffer.
  const size_t rss = peak_rss_bytes();
  const double bw = o.measure_bandwidth ? measure_read_bandwidth_gbs(*ctx.pool) : 0.0;
  return run.report(ctx, bw, rss);
}

std::vector<nlohmann::json> run_bench_interleaved(const std::vector<const Model*>& models, const BenchOptions& o,
                                                  const ExecContext& ctx) {
  SQ_CHECK(!models.empty(), "bench: no model");
  std::vector<std::unique_ptr<BenchRun>> runs;
  for (const Model* m : models) runs.push_back(std::make_unique<BenchRun>(*m, o, ctx));
  std::vector<double> bws;
  size_t rss = 0;
  for (int r = 0; r < o.repeat; r++) {
    for (auto& run : runs) run->measure();
    if (r == 0) rss = peak_rss_bytes();  // before the probe's buffer counts
    if (o.measure_bandwidth) bws.push_back(measure_read_bandwidth_gbs(*ctx.pool));
  }
  std::vector<nlohmann::json> out;
  for (auto& run : runs) {
    nlohmann::json j = run->report(ctx, median(bws), rss);
    std::vector<double> pr, gr, frac;
    for (int r = 0; r < o.repeat; r++) {
      if (!run->pp.empty()) pr.push_back(run->pp[size_t(r)] / runs[0]->pp[size_t(r)]);
      if (!run->tg.empty()) {
        gr.push_back(run->tg[size_t(r)] / runs[0]->tg[size_t(r)]);
        if (!bws.empty()) frac.push_back(run->tg[size_t(r)] * double(run->model.bytes_per_token()) / 1e9 / bws[size_t(r)]);
      }
    }
    j["prompt_vs_first"] = spread(pr);
    j["gen_vs_first"] = spread(gr);
    if (!frac.empty()) {
      j["gen_bandwidth_fraction"] = median(frac);
      j["gen_bandwidth_fraction_min"] = min_of(frac);
      j["gen_bandwidth_fraction_max"] = max_of(frac);
    }
    j["read_bandwidth_gbs_min"] = min_of(bws);
    j["read_bandwidth_gbs_max"] = max_of(bws);
    j["interleaved"] = true;
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace sq
