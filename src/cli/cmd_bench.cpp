// squeeze bench -m DIR [-m DIR2 ...] [--prompt N] [--gen N] [--repeat R] [--batch 1,2,4,...] [--threads T] [--json]
// With several -m, the models are measured interleaved repetition by repetition (eval/bench.h), and
// each row carries its ratio to the first model, paired within repetitions.
#include <cstdio>
#include <memory>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "eval/bench.h"

namespace sq::cli {

void add_bench(CLI::App& app) {
  struct Opts {
    std::vector<std::string> models;
    BenchOptions b;
    bool json = false, no_bw = false;
    ExecFlags exec;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("bench", "prompt-processing and generation speed (llama-bench style)");
  cmd->add_option("-m,--model", o->models,
                  "model directory; give several to measure them interleaved, with ratios to the first")
      ->required();
  cmd->add_option("--prompt", o->b.prompt, "prompt tokens (0 = skip)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--gen", o->b.gen, "generated tokens (0 = skip)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--repeat", o->b.repeat, "repetitions (medians are reported)")->check(CLI::PositiveNumber);
  cmd->add_option("--batch", o->b.batches,
                  "batched decode: for each B, B sequences decode --gen tokens each in lockstep (e.g. 1,2,4,8,16)")
      ->delimiter(',')
      ->check(CLI::Range(int64_t(1), int64_t(4096)));
  cmd->add_flag("--no-bandwidth", o->no_bw, "skip the read-bandwidth measurement");
  cmd->add_flag("--json", o->json, "print one JSON object");
  o->exec.add(cmd);
  cmd->callback([o] {
    std::vector<std::unique_ptr<Model>> models;
    std::vector<const Model*> ptrs;
    for (const std::string& dir : o->models) {
      models.push_back(Model::load(dir));
      ptrs.push_back(models.back().get());
    }
    auto ctx = o->exec.make();
    o->b.measure_bandwidth = !o->no_bw;
    const bool many = models.size() > 1;
    std::vector<nlohmann::json> js;
    if (many)
      js = run_bench_interleaved(ptrs, o->b, ctx.ctx);
    else
      js.push_back(run_bench(*models[0], o->b, ctx.ctx));
    if (o->json) {
      std::printf("%s\n", many ? nlohmann::json{{"models", js}}.dump().c_str() : js[0].dump().c_str());
      return;
    }
    std::printf("| model | format | size | threads | isa | test | t/s |%s\n|---|---|---|---|---|---|---|%s\n",
                many ? " vs first |" : "", many ? "---|" : "");
    for (size_t i = 0; i < models.size(); i++) {
      const Model& model = *models[i];
      const nlohmann::json& j = js[i];
      std::string fmt = model.layers.empty() ? "?" : model.layers[0].linear(Role::kQ)->describe();
      double gib = double(j["model_bytes"].get<size_t>()) / (1 << 30);
      auto row = [&](const char* test, int64_t n, const char* key, const char* ratio) {
        std::printf("| %s | %s | %.2f GiB | %d | %s | %s%lld | %.2f ± [%.2f, %.2f] |", o->models[i].c_str(),
                    fmt.c_str(), gib, j["threads"].get<int>(), j["isa"].get<std::string>().c_str(), test, (long long)n,
                    j[key].get<double>(), j[std::string(key) + "_min"].get<double>(),
                    j[std::string(key) + "_max"].get<double>());
        if (many)
          std::printf(" %.2fx [%.2f, %.2f] |", j[ratio]["median"].get<double>(), j[ratio]["min"].get<double>(),
                      j[ratio]["max"].get<double>());
        std::printf("\n");
      };
      if (o->b.prompt > 0) row("pp", o->b.prompt, "prompt_tok_s", "prompt_vs_first");
      if (o->b.gen > 0) row("tg", o->b.gen, "gen_tok_s", "gen_vs_first");
    }
    if (!o->b.batches.empty() && o->b.gen > 0) {
      std::printf("\n| model | batch | aggregate t/s | per sequence t/s | vs batch 1 |\n|---|---|---|---|---|\n");
      for (size_t i = 0; i < models.size(); i++)
        for (const auto& b : js[i]["batches"]) {
          std::printf("| %s | %lld | %.2f ± [%.2f, %.2f] | %.2f |", o->models[i].c_str(),
                      (long long)b["batch"].get<int64_t>(), b["aggregate_gen_tok_s"].get<double>(),
                      b["aggregate_gen_tok_s_min"].get<double>(), b["aggregate_gen_tok_s_max"].get<double>(),
                      b["per_seq_gen_tok_s"].get<double>());
          if (b.contains("aggregate_vs_batch1"))
            std::printf(" %.2fx [%.2f, %.2f] |\n", b["aggregate_vs_batch1"]["median"].get<double>(),
                        b["aggregate_vs_batch1"]["min"].get<double>(), b["aggregate_vs_batch1"]["max"].get<double>());
          else
            std::printf(" |\n");
        }
    }
    for (size_t i = 0; i < models.size(); i++) {
      const nlohmann::json& j = js[i];
      std::printf("\n%sweights read per token %.1f MiB; decode %.2f GB/s of %.2f GB/s measured read bandwidth (%.0f%%); "
                  "peak RSS %.2f GiB (%.2fx model bytes%s)",
                  many ? (o->models[i] + ": ").c_str() : "", j["weight_bytes_per_token"].get<size_t>() / 1048576.0,
                  j["gen_bandwidth_gbs"].get<double>(), j["read_bandwidth_gbs"].get<double>(),
                  100 * j["gen_bandwidth_fraction"].get<double>(), j["peak_rss_bytes"].get<size_t>() / double(1 << 30),
                  j["peak_rss_over_model_bytes"].get<double>(), many ? ", all models loaded" : "");
    }
    if (!js.empty())
      std::printf("\nKV cache: %zu bytes per position (f32), pool of %lld positions per model",
                  js[0]["kv_bytes_per_position"].get<size_t>(), (long long)js[0]["kv_pool_positions"].get<int64_t>());
    std::printf("\n");
  });
}

}  // namespace sq::cli
