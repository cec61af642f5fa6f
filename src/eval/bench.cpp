#include "eval/bench.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <string>

#include "core/bandwidth.h"
#include "core/error.h"
#include "model/sampler.h"
#include "engine/engine.h"

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

nlohmann::json spread(const std::vector<double>& v) {
  return nlohmann::json{{"median", median(v)}, {"min", min_of(v)}, {"max", max_of(v)}};
}

// The KV positions a run needs: one sequence of prompt + gen, or B sequences of gen + 1 (whole blocks).
int64_t kv_positions(const BenchOptions& o) {
  const int64_t B = KvCache::kBlockTokens;
  int64_t n = std::max<int64_t>(o.prompt, 1) + o.gen;
  for (int64_t b : o.batches) n = std::max(n, b * ((o.gen + 1 + B - 1) / B) * B);
  return n;
}

// One model's engine and prompt; measure() runs one repetition of every test.
struct BenchRun {
  const Model& model;
  const BenchOptions& o;
  std::vector<int32_t> prompt;
  Engine e;
  int32_t seq;
  std::vector<double> pp, tg;
  std::vector<std::vector<double>> bt;  // per batch size: aggregate tok/s per repetition
  std::vector<BatchRow> rows;

  static EngineOptions engine_options(const BenchOptions& o) {
    EngineOptions eo;
    eo.kv_tokens = kv_positions(o);
    for (int64_t b : o.batches) eo.max_batch = std::max(eo.max_batch, b);
    return eo;
  }

  BenchRun(const Model& m, const BenchOptions& opt, const ExecContext& ctx)
      : model(m), o(opt), prompt(size_t(std::max<int64_t>(opt.prompt, 1))), e(m, ctx, engine_options(opt)),
        bt(opt.batches.size()) {
    const ModelConfig& c = m.cfg;
    if (o.prompt < 0 || o.gen < 0 || o.repeat < 1) fail("bench: --prompt, --gen must be >= 0 and --repeat >= 1");
    if (o.prompt + o.gen > c.max_pos)
      fail("bench: --prompt ", o.prompt, " + --gen ", o.gen, " exceeds the model's context of ", c.max_pos, " (",
           m.dir.string(), ")");
    for (int64_t b : o.batches)
      if (b < 1 || b > 4096) fail("bench: --batch sizes must be between 1 and 4096, got ", b);
    uint64_t st = o.seed + 12345;
    for (auto& t : prompt) {
      st = st * 6364136223846793005ull + 1442695040888963407ull;
      t = int32_t(3 + (st >> 33) % uint64_t(c.vocab_size - 3));
    }
    seq = e.add_sequence();
    // One untimed warm-up step pages the weights in and spins the threads up.
    e.feed(seq, prompt.data(), 1, false);
  }

  // B sequences decode o.gen tokens in lockstep (greedy); returns aggregate tokens/s.
  double batched(int64_t B) {
    using clk = std::chrono::steady_clock;
    std::vector<int32_t> seqs;
    for (int64_t i = 0; i < B; i++) seqs.push_back(e.add_sequence());
    rows.resize(size_t(B));
    for (int64_t i = 0; i < B; i++) rows[size_t(i)] = {prompt[size_t(i) % prompt.size()], 0, seqs[size_t(i)], true};
    auto t0 = clk::now();
    for (int64_t g = 0; g < o.gen; g++) {
      e.step(rows);
      for (int64_t i = 0; i < B; i++) {
        rows[size_t(i)].token = argmax(e.logits(i), model.cfg.vocab_size);
        rows[size_t(i)].pos++;
      }
    }
    const double s = std::chrono::duration<double>(clk::now() - t0).count();
    for (int32_t q : seqs) e.free_sequence(q);
    return double(B * o.gen) / s;
  }

  void measure() {
    using clk = std::chrono::steady_clock;
    if (o.prompt > 0) {
      e.clear_sequence(seq);
      auto t0 = clk::now();
      e.feed(seq, prompt.data(), o.prompt, false);
      pp.push_back(double(o.prompt) / std::chrono::duration<double>(clk::now() - t0).count());
    }
    if (o.gen > 0) {
      e.clear_sequence(seq);
      int32_t tok = prompt[0];
      auto t0 = clk::now();
      for (int64_t i = 0; i < o.gen; i++) {
        e.feed(seq, &tok, 1, false);
        tok = argmax(e.logits(0), model.cfg.vocab_size);
      }
      tg.push_back(double(o.gen) / std::chrono::duration<double>(clk::now() - t0).count());
      e.clear_sequence(seq);
      for (size_t b = 0; b < o.batches.size(); b++) bt[b].push_back(batched(o.batches[b]));
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
    const KvUsage kv = e.kv_usage();
    j["kv_bytes_per_position"] = kv.bytes_per_position;
    j["kv_pool_positions"] = kv.blocks_total * kv.block_tokens;
    if (!o.batches.empty()) {
      nlohmann::json arr = nlohmann::json::array();
      for (size_t b = 0; b < o.batches.size(); b++) {
        std::vector<double> per(bt[b]);
        for (double& v : per) v /= double(o.batches[b]);
        arr.push_back({{"batch", o.batches[b]},
                       {"aggregate_gen_tok_s", median(bt[b])},
                       {"aggregate_gen_tok_s_min", min_of(bt[b])},
                       {"aggregate_gen_tok_s_max", max_of(bt[b])},
                       {"per_seq_gen_tok_s", median(per)},
                       {"per_seq_gen_tok_s_min", min_of(per)},
                       {"per_seq_gen_tok_s_max", max_of(per)}});
      }
      // Paired ratios to batch 1 within each repetition, when batch 1 was measured.
      auto one = std::find(o.batches.begin(), o.batches.end(), int64_t(1));
      if (one != o.batches.end()) {
        const auto& base = bt[size_t(one - o.batches.begin())];
        for (size_t b = 0; b < o.batches.size(); b++) {
          std::vector<double> r;
          for (size_t k = 0; k < bt[b].size(); k++) r.push_back(bt[b][k] / base[k]);
          arr[b]["aggregate_vs_batch1"] = spread(r);
        }
      }
      j["batches"] = arr;
    }
    return j;
  }
};

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
