// squeeze calibrate -m DIR --data FILE -o OUT [--samples N] [--seqlen L] [--sampling random|sequential]
//                   [--seed S] [--f64] [--json] [-q]
// Fisher diagonal (SqueezeLLM sensitivity) and per-channel activation statistics of every linear,
// written to one safetensors file that `squeeze quantize --sensitivity OUT` reads.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/calib_common.h"
#include "core/error.h"

namespace sq::cli {

namespace {
// Fails on an unwritable destination before the (long) computation rather than after it.
void check_output_file(const std::string& out) {
  std::error_code ec;
  const std::filesystem::path p(out);
  if (std::filesystem::is_directory(p, ec)) fail(out, ": is a directory, expected an output file name");
  const auto parent = p.has_parent_path() ? p.parent_path() : std::filesystem::path(".");
  if (!std::filesystem::is_directory(parent, ec))
    fail(out, ": cannot write: directory ", parent.string(), " does not exist");
  if (::access(parent.c_str(), W_OK) != 0) fail(out, ": cannot write: directory ", parent.string(), " is not writable");
}
}  // namespace

void add_calibrate(CLI::App& app) {
  struct Opts {
    std::string model, out;
    CalibFlags calib;
    bool json = false, quiet = false, f64 = false;
    ExecFlags exec;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("calibrate", "Fisher sensitivities and activation statistics of every linear layer");
  cmd->add_option("-m,--model", o->model, "model directory (unquantized)")->required();
  cmd->add_option("-o,--out", o->out, "output .safetensors file")->required();
  o->calib.add(cmd, /*data_required=*/true);
  cmd->add_flag("--f64", o->f64, "compute in double precision (slower; a reference)");
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->add_flag("-q,--quiet", o->quiet, "no progress bar");
  o->exec.add(cmd);
  cmd->callback([o] {
    check_output_file(o->out);
    auto model = Model::load(o->model);
    const auto windows = load_calibration_windows(*model, o->calib);
    auto ctx = o->exec.make();
    CalibOptions opts = o->calib.opts;
    opts.progress = !o->quiet;
    opts.f64 = o->f64;
    const CalibResult r = calibrate(model->cfg, *model->ckpt, windows, ctx.ctx, opts);
    auto meta = calibration_metadata(*model, o->calib, r);
    meta["precision"] = opts.f64 ? "f64" : "f32";
    write_calibration(o->out, r, meta);
    const double tps = r.seconds > 0 ? double(r.tokens) / r.seconds : 0;
    if (o->json) {
      nlohmann::json j = {{"out", o->out},       {"linears", r.linears.size()}, {"samples", windows.size()},
                          {"seqlen", opts.seqlen}, {"tokens", r.tokens},       {"mean_loss", r.mean_loss},
                          {"seconds", r.seconds}, {"tokens_per_s", tps}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("wrote %s: %zu linears, %zu windows x %lld tokens, mean loss %.4f, %.1f s (%.0f tok/s)\n",
                  o->out.c_str(), r.linears.size(), windows.size(), (long long)opts.seqlen, r.mean_loss, r.seconds,
                  tps);
    }
  });
}

}  // namespace sq::cli
