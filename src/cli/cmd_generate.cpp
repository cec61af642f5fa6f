// squeeze generate -m DIR [-p TEXT] [-n N] [--temperature T] [--top-k K] [--top-p P] [--seed S]
#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "model/model.h"
#include "model/sampler.h"
#include "engine/engine.h"
#include "model/tokenizer.h"

namespace sq::cli {

void add_generate(CLI::App& app) {
  struct Opts {
    std::string model, prompt;
    int64_t n = 256;
    SamplerOptions s;
    bool ids = false, stats = false;
    ExecFlags exec;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("generate", "generate text, streamed to stdout");
  cmd->add_option("-m,--model", o->model, "model directory (Hugging Face layout)")->required();
  cmd->add_option("-p,--prompt", o->prompt, "prompt text (default: start from BOS alone)");
  cmd->add_option("-n,--n-tokens", o->n, "tokens to generate")->check(CLI::NonNegativeNumber);
  cmd->add_option("--temperature", o->s.temperature, "0 = greedy")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", o->s.top_k, "keep the k most likely tokens (0 = off)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", o->s.top_p, "nucleus sampling threshold (1 = off)")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", o->s.seed, "random seed");
  cmd->add_flag("--ids", o->ids, "print token ids (one line) instead of text");
  cmd->add_flag("--stats", o->stats, "print timing to stderr at the end");
  o->exec.add(cmd);
  cmd->callback([o] {
    auto model = Model::load(o->model);
    auto tok = Tokenizer::load(o->model, model->cfg.bos_id, model->cfg.eos_id);
    auto ctx = o->exec.make();
    std::vector<int32_t> ids;
    if (o->prompt.empty() || tok->add_bos()) ids.push_back(int32_t(model->cfg.bos_id));
    for (int32_t t : tok->encode(o->prompt)) ids.push_back(t);
    Engine engine(*model, ctx.ctx);
    const int32_t seq = engine.add_sequence();
    if (int64_t(ids.size()) >= engine.max_length())
      fail("prompt has ", ids.size(), " tokens, the model's context is ", engine.max_length());
    const int64_t V = model->cfg.vocab_size;
    Sampler sampler(o->s);
    StreamDecoder dec(*tok);
    if (!o->ids) std::fputs(o->prompt.c_str(), stdout);
    std::fflush(stdout);
    auto t0 = std::chrono::steady_clock::now();
    engine.feed(seq, ids.data(), int64_t(ids.size()), false);
    auto t1 = std::chrono::steady_clock::now();
    int64_t produced = 0;
    while (produced < o->n) {
      int32_t next = sampler.sample(engine.logits(0), V);
      if (next == model->cfg.eos_id) break;
      if (o->ids) std::printf(produced ? " %d" : "%d", next);
      else std::fputs(dec.push(next).c_str(), stdout);
      std::fflush(stdout);
      produced++;
      if (produced == o->n || engine.length(seq) >= engine.max_length()) break;
      engine.feed(seq, &next, 1, false);
    }
    if (!o->ids) std::fputs(dec.flush().c_str(), stdout);
    std::fputc('\n', stdout);
    auto t2 = std::chrono::steady_clock::now();
    if (o->stats) {
      double pp = std::chrono::duration<double>(t1 - t0).count(), tg = std::chrono::duration<double>(t2 - t1).count();
      std::fprintf(stderr, "prompt: %zu tokens in %.3f s (%.1f tok/s); generated %lld tokens in %.3f s (%.2f tok/s)\n",
                   ids.size(), pp, ids.size() / pp, (long long)produced, tg, produced / tg);
    }
  });
}

}  // namespace sq::cli
