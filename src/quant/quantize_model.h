// Per-method model drivers behind quantize_model() (quant/pipeline.h).
#pragma once
#include <optional>

#include "quant/pipeline.h"

namespace sq {

// SmoothQuant+: smoothing at strength alpha (nullopt = none) then int4 RTN of every linear (or, with
// o.smooth_only, the smoothed weights as DenseMatrix f32 and a null quant_config).
QuantizedModel smoothquant_at(Model& m, const QuantizeOptions& o, const Sensitivity& sens, std::optional<double> alpha,
                              const ExecContext& ctx);
// The alpha search (or one given alpha); report holds the sweep and the chosen alpha.
QuantizedModel quantize_smoothquant_plus(Model& m, const QuantizeOptions& o, const Sensitivity* sens,
                                         const std::vector<std::vector<int32_t>>& calib, const ExecContext& ctx);
// SqueezeLLM lookup tables (Fisher-weighted k-means, optional dense-and-sparse).
QuantizedModel quantize_squeezellm(Model& m, const QuantizeOptions& o, const Sensitivity* sens, const ExecContext& ctx);
// The untied head alone at o.head_bits (Fisher-weighted when sens has the head's values).
LutMatrix squeezellm_quantize_head(Model& m, const QuantizeOptions& o, const Sensitivity* sens, const ExecContext& ctx);
// Round-to-nearest baselines: int4 groups (GPTQ format) or uniform lookup tables.
QuantizedModel quantize_rtn(Model& m, const QuantizeOptions& o, const ExecContext& ctx);

// Whether the method writes GPTQ int4 groups (smoothquant+, rtn at 4 bits with a group size) rather
// than lut tables.
bool writes_int4(const QuantizeOptions& o);
// Round-to-nearest uniform lookup tables for W [rows, cols] f32 (group_size 0 = per row).
LutMatrix rtn_lut_matrix(const float* W, int64_t rows, int64_t cols, int bits, int64_t group_size,
                         const ExecContext& ctx);
// config.json "quantization_config" of a lut-format checkpoint (format name and version included).
nlohmann::json lut_quantization_config(const std::string& method, int bits, int64_t group_size, double sparsity);

}  // namespace sq
