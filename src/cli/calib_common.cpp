#include "cli/calib_common.h"

#include "core/error.h"
#include "model/tokenizer.h"

namespace sq::cli {

void CalibFlags::add(CLI::App* cmd, bool data_required) {
  auto* d = cmd->add_option(data_required ? "--data" : "--calib", data, "calibration text file");
  if (data_required) d->required();
  cmd->add_option("--samples", opts.samples, "calibration windows")->check(CLI::PositiveNumber);
  cmd->add_option("--seqlen", opts.seqlen, "tokens per window")->check(CLI::PositiveNumber);
  cmd->add_option("--sampling", opts.sampling, "random (seeded offsets) or sequential (first N windows)")
      ->check(CLI::IsMember({"random", "sequential"}));
  cmd->add_option("--seed", opts.seed, "seed for random windows (and k-means)");
}

std::vector<std::vector<int32_t>> load_calibration_windows(const Model& model, const CalibFlags& f) {
  auto tok = Tokenizer::load(model.dir, model.cfg.bos_id, model.cfg.eos_id);
  std::string text = read_data_file(f.data);
  std::vector<int32_t> ids = {int32_t(model.cfg.bos_id)};
  for (int32_t t : tok->encode(text)) ids.push_back(t);
  return calibration_windows(ids, f.opts, f.data, model.cfg.max_pos);
}

std::map<std::string, std::string> calibration_metadata(const Model& model, const CalibFlags& f, const CalibResult& r) {
  return {{"model", model.dir.string()},
          {"data", f.data},
          {"samples", std::to_string(f.opts.samples)},
          {"seqlen", std::to_string(f.opts.seqlen)},
          {"sampling", f.opts.sampling},
          {"seed", std::to_string(f.opts.seed)},
          {"mean_loss", std::to_string(r.mean_loss)},
          {"tokens", std::to_string(r.tokens)}};
}

}  // namespace sq::cli
