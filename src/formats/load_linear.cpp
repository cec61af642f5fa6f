// Picks the weight format of one linear layer from the tensors stored under its prefix.
#include "core/error.h"
#include "formats/linear.h"
#include "io/safetensors.h"

namespace sq {

// Declared in formats/dense.h, formats/lut.h and formats/int4_group.h.
std::unique_ptr<LinearWeight> make_dense_linear(const TensorView& w);
std::unique_ptr<LinearWeight> load_lut_linear(const Checkpoint& ckpt, const std::string& prefix, int64_t rows,
                                              int64_t cols);
std::unique_ptr<LinearWeight> load_int4_linear(const Checkpoint& ckpt, const std::string& prefix, int64_t rows,
                                               int64_t cols, const nlohmann::json& quant_config);

std::unique_ptr<LinearWeight> load_linear(const Checkpoint& ckpt, const std::string& prefix, int64_t rows,
                                          int64_t cols, const nlohmann::json& quant_config) {
  if (const TensorView* w = ckpt.find(prefix + ".weight")) {
    if (w->shape.size() != 2 || w->shape[0] != rows || w->shape[1] != cols)
      fail(w->file, ": tensor '", w->name, "' has shape ", w->shape_str(), ", expected [", rows, ", ", cols,
           "] from config.json");
    return make_dense_linear(*w);
  }
  if (ckpt.has(prefix + ".qcodes")) return load_lut_linear(ckpt, prefix, rows, cols);
  if (ckpt.has(prefix + ".qweight")) return load_int4_linear(ckpt, prefix, rows, cols, quant_config);
  fail(ckpt.dir().string(), ": no weight for linear layer '", prefix, "' (looked for ", prefix, ".weight, ",
       prefix, ".qcodes and ", prefix, ".qweight)");
}

}  // namespace sq
// TEMPORARY-WEAK: removed once formats/lut.cpp lands.
namespace sq {
__attribute__((weak)) std::unique_ptr<LinearWeight> load_lut_linear(const Checkpoint&, const std::string& prefix,
                                                                    int64_t, int64_t) {
  fail("lut format not built: ", prefix);
}
}  // namespace sq
