// Calibration flags and window construction shared by `squeeze calibrate` and `squeeze quantize`.
#pragma once
#include <string>
#include <vector>

#include "calib/calibrate.h"
#include "cli/commands.h"
#include "model/model.h"

namespace sq::cli {

struct CalibFlags {
  std::string data;
  CalibOptions opts;
  void add(CLI::App* cmd, bool data_required);
};

// [BOS] + tokenize(file), cut into windows as --sampling says. Errors name the file.
std::vector<std::vector<int32_t>> load_calibration_windows(const Model& model, const CalibFlags& f);

// Metadata written beside the statistics: model, data file, samples, seqlen, sampling, seed.
std::map<std::string, std::string> calibration_metadata(const Model& model, const CalibFlags& f, const CalibResult& r);

}  // namespace sq::cli
