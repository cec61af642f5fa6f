// squeeze synth --like llama-7b|llama-13b|mistral-7b|opt-6.7b [--layers N] [--dtype f16|bf16] -o DIR
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/error.h"
#include "core/output_path.h"
#include "model/synth.h"

namespace sq::cli {

void add_synth(CLI::App& app) {
  struct Opts {
    SynthOptions s;
    std::string out, dtype = "f16";
    bool quiet = false, force = false;
    ExecFlags exec;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("synth", "write a checkpoint of a real model's shapes with synthetic weights");
  cmd->add_option("--like", o->s.like, "llama-7b, llama-13b, mistral-7b or opt-6.7b")->required();
  cmd->add_option("--layers", o->s.layers, "number of layers (default: all)")->check(CLI::PositiveNumber);
  cmd->add_option("--dtype", o->dtype, "f16 or bf16")->check(CLI::IsMember({"f16", "bf16", "f32"}));
  cmd->add_option("--seed", o->s.seed, "random seed");
  cmd->add_option("--tokenizer", o->s.tokenizer, "tokenizer.model to copy in (optional)");
  cmd->add_option("-o,--output", o->out, "output directory")->required();
  cmd->add_flag("--force", o->force, "replace an earlier squeeze output at -o");
  cmd->add_flag("-q,--quiet", o->quiet, "no progress bar");
  o->exec.add(cmd);
  cmd->callback([o] {
    o->s.dtype = o->dtype == "f16" ? DType::F16 : o->dtype == "bf16" ? DType::BF16 : DType::F32;
    o->s.progress = !o->quiet;
    auto ctx = o->exec.make();
    const std::filesystem::path out = output_path(o->out);
    size_t bytes = write_synthetic_model(o->s, out, ctx.ctx, OutputPolicy{{}, o->force, "synth"});
    std::printf("wrote %s: %s shapes, %s, %.2f GiB\n", o->out.c_str(), o->s.like.c_str(), o->dtype.c_str(),
                bytes / double(1 << 30));
  });
}

}  // namespace sq::cli
