// A linear layer's weight W[out, in] (PyTorch's nn.Linear layout: y = W x + b) in whichever format the
// checkpoint stores: dense F32/F16/BF16 (formats/dense.h), SqueezeLLM lookup tables with an optional CSR
// sparse part (formats/lut.h), or GPTQ-style int4 groups (formats/int4_group.h). The engine and the
// calibration code only use this interface; each format file owns its bit layout, its scalar reference
// and its dispatch to the fast kernels in kernels/.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/context.h"

namespace sq {

class Checkpoint;

// Version of the lut checkpoint format (docs/FORMAT-lut.md), written as quantization_config
// "format_version"; readers refuse newer versions instead of misreading them.
inline constexpr int kLutFormatVersion = 1;

class LinearWeight {
 public:
  virtual ~LinearWeight() = default;
  int64_t rows() const { return rows_; }  // out features
  int64_t cols() const { return cols_; }  // in features

  // Y[n, rows] = X[n, cols] · Wᵀ, all row-major f32, f32 accumulation. n = 1 is decode (matvec);
  // n > 1 is prompt processing / batched decode. Y is overwritten (no bias here).
  virtual void matmul(const float* x, int64_t n, float* y, const ExecContext& ctx) const = 0;
  // Row r of W as f32 (reference dequantization; used by calibration, smoothing and tests).
  virtual void dequant_row(int64_t r, float* out) const = 0;
  // Bytes a full matvec reads: codes + tables + scales + sparse arrays (for bandwidth figures).
  virtual size_t weight_bytes() const = 0;
  // Short description for `inspect`: "F16", "lut3 +0.45% sparse", "int4 g128".
  virtual std::string describe() const = 0;

  // Whole matrix as f32 [rows, cols]; convenience built on dequant_row.
  std::vector<float> dequantize() const;

 protected:
  int64_t rows_ = 0, cols_ = 0;
};

// Loads the weight stored under `prefix` (e.g. "model.layers.0.self_attn.q_proj"): `prefix.weight`
// (dense), `prefix.qcodes` + `prefix.lut` (+ CSR) (SqueezeLLM/RTN lookup tables) or `prefix.qweight`
// + `prefix.qzeros` + `prefix.scales` (+ `prefix.g_idx`) (GPTQ int4). Checks the shape is [rows, cols].
// `quant_config` is config.json's "quantization_config" object (null for unquantized checkpoints).
std::unique_ptr<LinearWeight> load_linear(const Checkpoint& ckpt, const std::string& prefix, int64_t rows,
                                          int64_t cols, const nlohmann::json& quant_config);

}  // namespace sq
