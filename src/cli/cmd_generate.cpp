// squeeze generate -m DIR [-p TEXT] [-n N] [--temperature T] [--top-k K] [--top-p P] [--seed S]
// Written against the public API (include/squeeze/squeeze.h) only, as an application would be.
#include <squeeze/squeeze.h>

#include <chrono>
#include <cstdio>

#include "cli/commands.h"

namespace sq::cli {

void add_generate(CLI::App& app) {
  struct Opts {
    std::string model, prompt;
    int64_t n = 256, ctx = 0, kv_memory = 0;
    squeeze::SamplerOptions s;
    bool ids = false, stats = false;
    ExecFlags exec;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("generate", "generate text, streamed to stdout");
  cmd->add_option("-m,--model", o->model, "model directory (Hugging Face layout)")->required();
  cmd->add_option("-p,--prompt", o->prompt, "prompt text (default: start from BOS alone)");
  cmd->add_option("-n,--n-tokens", o->n, "tokens to generate")->check(CLI::NonNegativeNumber);
  cmd->add_option("--ctx", o->ctx, "KV cache positions (default: the model's context)")->check(CLI::PositiveNumber);
  cmd->add_option("--kv-memory", o->kv_memory, "KV cache size in bytes, e.g. 512M or 2G (the smaller of this and --ctx)")
      ->transform(CLI::AsSizeValue(false));
  cmd->add_option("--temperature", o->s.temperature, "0 = greedy")->check(finite_number() & CLI::NonNegativeNumber);
  cmd->add_option("--top-k", o->s.top_k, "keep the k most likely tokens (0 = off)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-p", o->s.top_p, "nucleus sampling threshold (1 = off)")
      ->check(finite_number() & CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", o->s.seed, "random seed");
  cmd->add_flag("--ids", o->ids, "print token ids (one line) instead of text");
  cmd->add_flag("--stats", o->stats, "print timing to stderr at the end");
  o->exec.add(cmd);
  cmd->callback([o] {
    auto model = squeeze::Model::load(o->model);
    auto tok = squeeze::Tokenizer::load(*model);
    squeeze::Engine engine(model, {.kv_tokens = o->ctx, .kv_bytes = o->kv_memory, .threads = o->exec.threads,
                                   .isa = o->exec.isa});
    std::vector<int32_t> ids = tok->encode(o->prompt, true);  // BOS first when the tokenizer expects it
    if (ids.empty()) ids.push_back(model->info().bos_id);       // no prompt: start from BOS alone
    if (int64_t(ids.size()) >= engine.max_sequence_length())
      throw squeeze::Error("prompt has " + std::to_string(ids.size()) + " tokens, the context is " +
                           std::to_string(engine.max_sequence_length()));
    const squeeze::SeqId seq = engine.add_sequence();
    squeeze::Sampler sampler(o->s);
    squeeze::TextStream stream(*tok, ids);  // continues the prompt's text (keeps the next word's space)
    if (!o->ids) std::fputs(o->prompt.c_str(), stdout);
    std::fflush(stdout);
    std::vector<squeeze::Token> rows;
    for (size_t i = 0; i < ids.size(); i++) rows.push_back({ids[i], int64_t(i), seq, i + 1 == ids.size()});
    auto t0 = std::chrono::steady_clock::now();
    engine.step(rows);
    auto t1 = std::chrono::steady_clock::now();
    int64_t produced = 0;
    while (produced < o->n) {
      const int32_t next = sampler.sample(engine.logits(0));
      if (next == model->info().eos_id) break;
      if (o->ids) std::printf(produced ? " %d" : "%d", next);
      else std::fputs(stream.push(next).c_str(), stdout);
      std::fflush(stdout);
      produced++;
      const int64_t pos = engine.sequence_length(seq);
      if (produced == o->n || pos >= engine.max_sequence_length()) break;
      const squeeze::Token row{next, pos, seq, true};
      engine.step({&row, 1});
    }
    if (!o->ids) std::fputs(stream.flush().c_str(), stdout);
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
