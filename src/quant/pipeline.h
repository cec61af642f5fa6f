// Whole-model quantization: picks a method, runs it over every linear layer of a loaded model, and
// either installs the result in memory (to evaluate it) or writes a quantized checkpoint directory.
//
//   squeezellm   per-row lookup tables from Fisher-weighted k-means (+ optional dense-and-sparse) -> lut format
//   rtn          round-to-nearest uniform: --bits 4 with a group size -> GPTQ int4 format;
//                otherwise per row / per group uniform tables -> lut format
//   smoothquant+ smoothing with a searched strength alpha, then group-wise int4 RTN -> GPTQ int4 format
#pragma once
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>
#include <vector>

#include "core/context.h"
#include "core/dtype.h"
#include "core/output_path.h"
#include "formats/int4_group.h"
#include "formats/lut.h"
#include "model/model.h"

namespace sq {

class Sensitivity;

struct QuantizeOptions {
  std::string method = "squeezellm";  // squeezellm | rtn | smoothquant+
  int bits = 3;
  double sparsity = 0.0;    // squeezellm: percent of all quantized weights kept exact in CSR (0.45 = 0.45%)
  double sensitive = 0.05;  // squeezellm: percent of each matrix kept by top Fisher value (when sparsity > 0)
  int64_t group_size = 0;   // 0 = per row; smoothquant+ and int4 rtn default to 128
  int head_bits = 0;        // 0 = keep the head as stored; 2..8 = quantize it too (lut: these bits; int4: 4)
  bool kmeans_exact = false;
  uint64_t seed = 0;
  std::string alpha = "auto";  // smoothquant+: "auto" (search), "none", or a number in [0, 1]
  double alpha_step = 0.05;    // grid step of the search
  bool clip_search = false;    // int4: shrink each group's range to minimise its squared error
  bool smooth_up_down = true;  // smoothquant+: also fold scales up_proj/fc1 rows -> down_proj/fc2 columns
  bool smooth_v_o = true;      // smoothquant+: also fold v_proj rows -> o_proj/out_proj columns
  bool smooth_only = false;    // smoothquant+: smooth but keep the weights dense f32 (DenseMatrix); a
                               // check of the folds (the model's function must not change), not a format
  bool progress = true;
};

// A linear kept dense after a transformation (smoothing without quantization): W [rows, cols]
// row-major f32, installed in memory as f32 and written to a checkpoint as `prefix.weight` in `dtype`
// (F32 keeps it bit-exact; F16/BF16 round to nearest even).
struct DenseMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<float> values;  // [rows * cols]
  DType dtype = DType::F32;
};

using QuantMatrix = std::variant<LutMatrix, Int4Matrix, DenseMatrix>;

struct QuantizedModel {
  std::map<std::string, QuantMatrix> linears;          // by linear prefix ("model.layers.0.mlp.up_proj")
  std::map<std::string, std::vector<float>> replaced;  // full tensor names of changed unquantized tensors
  nlohmann::json quant_config;                         // config.json "quantization_config"
  nlohmann::json report;                               // method-specific figures (alpha sweep, timings)
};

// Quantizes every linear layer of `model` (which must be unquantized). `sens` supplies Fisher values
// (squeezellm; null = uniform) and activation max |x| (smoothquant+, required). `calib` holds the
// calibration windows the smoothquant+ alpha search scores (required for alpha=auto). `model` is
// restored to its original weights before returning.
QuantizedModel quantize_model(Model& model, const QuantizeOptions& opts, const Sensitivity* sens,
                              const std::vector<std::vector<int32_t>>& calib, const ExecContext& ctx);

// Swaps quantized weights and replaced tensors into a model; revert() (or destruction) puts the
// originals back. Used to evaluate a quantized model without writing it.
class ModelPatch {
 public:
  ModelPatch(Model& model, const QuantizedModel& q);
  ~ModelPatch() { revert(); }
  ModelPatch(const ModelPatch&) = delete;
  ModelPatch& operator=(const ModelPatch&) = delete;
  void revert();
  // Keeps the patched weights for good (the model owns them from now on).
  void commit() { linears_.clear(); vectors_.clear(); }

 private:
  std::vector<std::pair<std::unique_ptr<LinearWeight>*, std::unique_ptr<LinearWeight>>> linears_;
  std::vector<std::pair<std::vector<float>*, std::vector<float>>> vectors_;
};

// The f32 vector of the model that holds tensor `name` (norm weights/biases, opt biases); throws if none.
std::vector<float>* model_vector(Model& model, const std::string& name);
std::unique_ptr<LinearWeight>* model_linear(Model& model, const std::string& prefix);

// Writes a checkpoint directory like the source: config.json with quantization_config (left out when
// q.quant_config is null), tokenizer and generation files copied, model.safetensors with quantized
// linears in their format, DenseMatrix linears as `prefix.weight` in their dtype and every other
// tensor as stored (replaced tensors in their original dtype). A GPTQ checkpoint also gets
// quantize_config.json (autogptq_quantize_config) for AutoGPTQ's from_quantized. Written to
// OUT.tmp.<pid> and renamed.
//
// `policy` (core/output_path.h): the source model's directory is always among its inputs.
void write_quantized_checkpoint(const Model& src, const QuantizedModel& q, const std::filesystem::path& out_dir,
                                const OutputPolicy& policy = {});

// AutoGPTQ's quantize_config.json for a GPTQ "quantization_config": only BaseQuantizeConfig's fields
// (bits, group_size, damp_percent, desc_act, static_groups, sym, true_sequential, model_name_or_path,
// model_file_base_name, quant_method, checkpoint_format), so AutoGPTQ reads it without warnings.
nlohmann::json autogptq_quantize_config(const nlohmann::json& quant_config);

// Mean over windows of each window's mean next-token cross-entropy, with the engine.
double calibration_loss(const Model& model, const std::vector<std::vector<int32_t>>& windows, const ExecContext& ctx);

}  // namespace sq
