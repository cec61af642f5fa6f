// Picks the weight format of one linear layer from the tensors stored under its prefix.
#include "core/error.h"
#include "formats/dense.h"
#include "formats/int4_group.h"
#include "formats/linear.h"
#include "formats/lut.h"
#include "io/safetensors.h"

namespace sq {

std::unique_ptr<LinearWeight> load_linear(const Checkpoint& ckpt, const std::string& prefix, int64_t rows,
                                          int64_t cols, const nlohmann::json& quant_config) {
  // One format per linear: a checkpoint holding two would run whichever this function tried first.
  const char* formats[] = {".weight", ".qcodes", ".qweight"};
  std::string found;
  for (const char* f : formats)
    if (ckpt.has(prefix + f)) found += (found.empty() ? "" : " and ") + prefix + f;
  if (found.find(" and ") != std::string::npos)
    fail(ckpt.dir().string(), ": linear layer '", prefix, "' is stored twice (", found,
         "); a checkpoint holds one weight format per layer");
  if (const TensorView* w = ckpt.find(prefix + ".weight")) {
    if (w->shape.size() != 2 || w->shape[0] != rows || w->shape[1] != cols)
      fail(w->file, ": tensor '", w->name, "' has shape ", w->shape_str(), ", expected [", rows, ", ", cols,
           "] from config.json");
    return make_dense_linear(*w);
  }
  if (ckpt.has(prefix + ".qcodes")) {
    if (quant_config.is_object() && quant_config.contains("format_version")) {
      const auto& v = quant_config["format_version"];
      if (!v.is_number_integer() || v.get<int>() < 1 || v.get<int>() > kLutFormatVersion)
        fail(ckpt.dir().string(), "/config.json: quantization_config format_version ", v.dump(),
             " is not supported by this squeeze (it reads lut format versions 1..", kLutFormatVersion, ")");
    }
    return load_lut_linear(ckpt, prefix, rows, cols);
  }
  if (ckpt.has(prefix + ".qweight")) return load_int4_linear(ckpt, prefix, rows, cols, quant_config);
  fail(ckpt.dir().string(), ": no weight for linear layer '", prefix, "' (looked for ", prefix, ".weight, ",
       prefix, ".qcodes and ", prefix, ".qweight)");
}

}  // namespace sq
