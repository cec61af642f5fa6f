// squeeze quantize -m DIR -o OUT --method squeezellm|rtn|smoothquant+ --bits B [--sparsity P]
//   [--sensitive P] [--group-size G] [--kmeans fast|exact] [--alpha A|auto|none]
//   [--sensitivity FILE|uniform | --calib FILE --samples N --seqlen L]
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/calib_common.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/output_path.h"
#include "quant/pipeline.h"

namespace sq::cli {

void add_quantize(CLI::App& app) {
  struct Opts {
    std::string model, out, sensitivity, kmeans = "fast";
    QuantizeOptions q;
    CalibFlags calib;
    bool json = false, quiet = false, force = false;
    ExecFlags exec;
  };
  auto o = std::make_shared<Opts>();
  o->calib.opts.samples = 128;
  auto* cmd = app.add_subcommand("quantize", "quantize a model and write a checkpoint directory");
  cmd->add_option("-m,--model", o->model, "model directory (unquantized)")->required();
  cmd->add_option("-o,--output", o->out, "output directory")->required();
  cmd->add_option("--method", o->q.method, "squeezellm, rtn or smoothquant+")
      ->check(CLI::IsMember({"squeezellm", "rtn", "smoothquant+"}));
  cmd->add_option("--bits", o->q.bits, "bits per weight (2..8; smoothquant+: 4)");
  cmd->add_option("--sparsity", o->q.sparsity, "squeezellm: percent of weights kept exact in CSR (e.g. 0.45; 0 = dense only)");
  cmd->add_option("--sensitive", o->q.sensitive, "squeezellm: percent of each matrix kept by top Fisher value");
  cmd->add_option("--group-size", o->q.group_size, "input channels per group (0 = per row; int4 default 128)");
  cmd->add_option("--head-bits", o->q.head_bits,
                  "also quantize the output head (lm_head): 0 = keep it dense (default), 2..8 bits (int4 methods: 4)");
  cmd->add_option("--kmeans", o->kmeans, "fast (Lloyd, k-means++) or exact (dynamic programming)")
      ->check(CLI::IsMember({"fast", "exact"}));
  cmd->add_option("--alpha", o->q.alpha, "smoothquant+: auto (search), none, or a strength in [0, 1]");
  cmd->add_option("--alpha-step", o->q.alpha_step, "smoothquant+: grid step of the alpha search (0.005 .. 1)")
      ->check(finite_number() & CLI::Range(0.005, 1.0));  // at most 201 candidates
  cmd->add_flag("--clip-search", o->q.clip_search, "int4: shrink group ranges to minimise squared error");
  cmd->add_option("--sensitivity", o->sensitivity, "calibration file from `squeeze calibrate`, or 'uniform'");
  o->calib.add(cmd, false);
  cmd->add_flag("--force", o->force, "replace an earlier squeeze output at -o");
  cmd->add_flag("--json", o->json, "print a JSON report");
  cmd->add_flag("-q,--quiet", o->quiet, "no progress bars");
  o->exec.add(cmd);
  cmd->callback([o] {
    // Checked before the long work, and again when the result is moved into place.
    const std::filesystem::path out = output_path(o->out);
    OutputPolicy policy{{o->model}, o->force, "quantize"};
    if (!o->sensitivity.empty() && o->sensitivity != "uniform") policy.inputs.push_back(o->sensitivity);
    if (!o->calib.data.empty()) policy.inputs.push_back(o->calib.data);
    check_output_directory(out, policy);
    auto model = Model::load(o->model);
    auto ctx = o->exec.make();
    QuantizeOptions q = o->q;
    q.kmeans_exact = o->kmeans == "exact";
    q.seed = o->calib.opts.seed;
    q.progress = !o->quiet;
    o->calib.opts.progress = !o->quiet;
    const bool needs_stats = q.method == "smoothquant+" || (q.method == "squeezellm" && o->sensitivity != "uniform");
    std::vector<std::vector<int32_t>> windows;
    if (!o->calib.data.empty()) windows = load_calibration_windows(*model, o->calib);
    Sensitivity sens;
    bool have_sens = false;
    std::filesystem::path tmp_stats;
    if (!o->sensitivity.empty() && o->sensitivity != "uniform") {
      sens = load_sensitivity(o->sensitivity, model->cfg, *model->ckpt);
      have_sens = true;
    } else if (needs_stats && o->sensitivity.empty()) {
      if (windows.empty())
        fail("--method ", q.method, " needs calibration: give --sensitivity FILE (from squeeze calibrate), "
             "--calib FILE, or --sensitivity uniform");
      CalibResult r = calibrate(model->cfg, *model->ckpt, windows, ctx.ctx, o->calib.opts);
      tmp_stats = std::filesystem::temp_directory_path() / cat("squeeze-calib-", ::getpid(), ".safetensors");
      write_calibration(tmp_stats, r, calibration_metadata(*model, o->calib, r));
      sens = load_sensitivity(tmp_stats, model->cfg, *model->ckpt);
      have_sens = true;
    } else if (q.method == "smoothquant+") {
      fail("--method smoothquant+ needs activation statistics; --sensitivity uniform has none");
    }
    struct RemoveTmp {
      std::filesystem::path p;
      ~RemoveTmp() {
        std::error_code ec;
        if (!p.empty()) std::filesystem::remove(p, ec);
      }
    } remove_tmp{tmp_stats};
    QuantizedModel qm = quantize_model(*model, q, have_sens ? &sens : nullptr, windows, ctx.ctx);
    if (have_sens) {
      nlohmann::json prov;
      for (auto& [k, v] : sens.metadata()) prov[k] = v;
      qm.quant_config["calibration"] = prov;
    } else {
      qm.quant_config["calibration"] = "uniform sensitivity (no calibration)";
    }
    write_quantized_checkpoint(*model, qm, out, policy);
    auto out_model = Model::load(out);  // validates what was written
    size_t lin_bytes = 0;
    int64_t lin_params = 0;
    for (size_t i = 0; i < out_model->layers.size(); i++)
      for (auto& [name, w] : out_model->layers[i].linears(out_model->names, int64_t(i))) {
        lin_bytes += (*w)->weight_bytes();
        lin_params += (*w)->rows() * (*w)->cols();
      }
    nlohmann::json rep = qm.report;
    rep["output"] = o->out;
    rep["bits_per_weight"] = 8.0 * double(lin_bytes) / double(lin_params);
    rep["bytes_on_disk"] = out_model->ckpt->bytes_on_disk();
    rep["quantization_config"] = qm.quant_config;
    if (o->json) {
      std::printf("%s\n", rep.dump().c_str());
      return;
    }
    std::printf("wrote %s: %s, %.3f bits per weight (incl. tables, scales, sparse), %zu bytes, %.1f s\n",
                o->out.c_str(), q.method.c_str(), rep["bits_per_weight"].get<double>(), out_model->ckpt->bytes_on_disk(),
                rep["seconds"].get<double>());
    if (rep.contains("alpha_sweep")) {
      std::printf("alpha   calib loss\n");
      for (auto& e : rep["alpha_sweep"])
        std::printf("%-7s %.4f\n", e["alpha"].is_string() ? "none" : cat(e["alpha"].get<double>()).c_str(),
                    e["calib_loss"].get<double>());
      std::printf("chosen alpha: %s\n", rep["alpha"].dump().c_str());
    }
  });
}

}  // namespace sq::cli
