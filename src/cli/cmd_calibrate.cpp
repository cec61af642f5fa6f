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
#include "core/output_path.h"

namespace sq::cli {


void add_calibrate(CLI::App& app) {
  struct Opts {
    std::string model, out;
    CalibFlags calib;
    bool json = false, quiet = false, f64 = false, force = false;
    ExecFlags exec;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("calibrate", "Fisher sensitivities and activation statistics of every linear layer");
  cmd->add_option("-m,--model", o->model, "model directory (unquantized)")->required();
  cmd->add_option("-o,--out", o->out, "output .safetensors file")->required();
  o->calib.add(cmd, /*data_required=*/true);
  cmd->add_flag("--f64", o->f64, "compute in double precision (slower; a reference)");
  cmd->add_flag("--force", o->force, "replace an earlier squeeze calibration file at -o");
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->add_flag("-q,--quiet", o->quiet, "no progress bar");
  o->exec.add(cmd);
  cmd->callback([o] {
    // Before the (long) computation rather than after it; write_calibration checks again.
    const std::filesystem::path out = output_path(o->out);
    const OutputPolicy policy{{o->model, o->calib.data}, o->force, "calibrate"};
    check_output_file(out, policy);
    auto model = Model::load(o->model);
    const auto windows = load_calibration_windows(*model, o->calib);
    auto ctx = o->exec.make();
    CalibOptions opts = o->calib.opts;
    opts.progress = !o->quiet;
    opts.f64 = o->f64;
    const CalibResult r = calibrate(model->cfg, *model->ckpt, windows, ctx.ctx, opts);
    auto meta = calibration_metadata(*model, o->calib, r);
    meta["precision"] = opts.f64 ? "f64" : "f32";
    write_calibration(out, r, meta, &policy);
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
