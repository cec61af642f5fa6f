// squeeze bench -m DIR [--prompt N] [--gen N] [--repeat R] [--threads T] [--json]
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "eval/bench.h"

namespace sq::cli {

void add_bench(CLI::App& app) {
  struct Opts {
    std::string model;
    BenchOptions b;
    bool json = false, no_bw = false;
    ExecFlags exec;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("bench", "prompt-processing and generation speed (llama-bench style)");
  cmd->add_option("-m,--model", o->model, "model directory")->required();
  cmd->add_option("--prompt", o->b.prompt, "prompt tokens (0 = skip)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--gen", o->b.gen, "generated tokens (0 = skip)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--repeat", o->b.repeat, "repetitions (medians are reported)")->check(CLI::PositiveNumber);
  cmd->add_flag("--no-bandwidth", o->no_bw, "skip the read-bandwidth measurement");
  cmd->add_flag("--json", o->json, "print one JSON object");
  o->exec.add(cmd);
  cmd->callback([o] {
    auto model = Model::load(o->model);
    auto ctx = o->exec.make();
    o->b.measure_bandwidth = !o->no_bw;
    auto j = run_bench(*model, o->b, ctx.ctx);
    if (o->json) {
      std::printf("%s\n", j.dump().c_str());
      return;
    }
    std::string fmt = model->layers.empty() ? "?" : model->layers[0].q->describe();
    double gib = double(j["model_bytes"].get<size_t>()) / (1 << 30);
    std::printf("| model | format | size | threads | isa | test | t/s |\n|---|---|---|---|---|---|---|\n");
    auto row = [&](const char* test, int64_t n, const char* key) {
      std::printf("| %s | %s | %.2f GiB | %d | %s | %s%lld | %.2f ± [%.2f, %.2f] |\n", o->model.c_str(), fmt.c_str(),
                  gib, j["threads"].get<int>(), j["isa"].get<std::string>().c_str(), test, (long long)n,
                  j[key].get<double>(), j[std::string(key) + "_min"].get<double>(),
                  j[std::string(key) + "_max"].get<double>());
    };
    if (o->b.prompt > 0) row("pp", o->b.prompt, "prompt_tok_s");
    if (o->b.gen > 0) row("tg", o->b.gen, "gen_tok_s");
    std::printf("\nweights read per token %.1f MiB; decode %.2f GB/s of %.2f GB/s measured read bandwidth (%.0f%%); "
                "peak RSS %.2f GiB (%.2fx model bytes)\n",
                j["weight_bytes_per_token"].get<size_t>() / 1048576.0, j["gen_bandwidth_gbs"].get<double>(),
                j["read_bandwidth_gbs"].get<double>(), 100 * j["gen_bandwidth_fraction"].get<double>(),
                j["peak_rss_bytes"].get<size_t>() / double(1 << 30), j["peak_rss_over_model_bytes"].get<double>());
  });
}

}  // namespace sq::cli
