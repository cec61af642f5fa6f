// squeeze eval -m DIR --data FILE --ctx N [--max-windows K] [--json]
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "eval/perplexity.h"
#include "model/model.h"
#include "model/tokenizer.h"

namespace sq::cli {

void add_eval(CLI::App& app) {
  struct Opts {
    std::string model, data;
    int64_t ctx = 0, max_windows = 0;
    bool json = false, quiet = false;
    ExecFlags exec;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("eval", "perplexity over non-overlapping windows of a text file");
  cmd->add_option("-m,--model", o->model, "model directory")->required();
  cmd->add_option("--data", o->data, "text file (tokenized whole, no BOS)")->required();
  cmd->add_option("--ctx", o->ctx, "window length in tokens")->required()->check(CLI::PositiveNumber);
  cmd->add_option("--max-windows", o->max_windows, "evaluate only the first K windows (0 = all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->add_flag("-q,--quiet", o->quiet, "no progress bar");
  o->exec.add(cmd);
  cmd->callback([o] {
    auto model = Model::load(o->model);
    auto tok = Tokenizer::load(o->model, model->cfg.bos_id, model->cfg.eos_id);
    std::string text = read_data_file(o->data);
    if (o->ctx > model->cfg.max_pos)
      fail("--ctx ", o->ctx, " is larger than the model's context of ", model->cfg.max_pos, " tokens (",
           o->model, "/config.json max_position_embeddings)");
    auto ids = tok->encode(text);
    auto ctx = o->exec.make();
    auto r = perplexity(*model, ids, o->ctx, o->max_windows, ctx.ctx, !o->quiet);
    if (o->json) {
      nlohmann::json j = {{"ppl", r.ppl},         {"mean_nll", r.mean_nll}, {"tokens_scored", r.tokens_scored},
                          {"windows", r.windows}, {"ctx", r.ctx},           {"seconds", r.seconds},
                          {"model", o->model},    {"data", o->data},        {"data_tokens", ids.size()}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("ppl %.4f  (%lld windows x %lld tokens, %lld scored, %.1f s)\n", r.ppl, (long long)r.windows,
                  (long long)r.ctx, (long long)r.tokens_scored, r.seconds);
    }
  });
}

}  // namespace sq::cli
