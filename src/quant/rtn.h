// Round-to-nearest uniform quantization expressed as lookup tables (formats/lut.h), the baseline
// SqueezeLLM's non-uniform tables are compared with in the same format family.
//
// Per row (group_size <= 0 or >= cols) or per group of group_size consecutive columns:
// asymmetric min-max levels  level_q = f16(min + q·scale), scale = (max − min) / (2^bits − 1),
// q = 0 .. 2^bits − 1. Every weight gets the code of the nearest table entry *after* F16 rounding, so
// dequantization reproduces exactly what the error was measured on. Levels beyond the F16 range are
// clamped to ±65504.
#pragma once
#include <cstdint>

#include "core/context.h"
#include "formats/lut.h"

namespace sq {

// W f32 [rows, cols] row-major -> LutMatrix (bits 2..8, no sparse part). Rows run in parallel on
// ctx.pool (null = serial). Non-finite weights throw sq::Error.
LutMatrix quantize_rtn_lut(const float* W, int64_t rows, int64_t cols, int bits, int64_t group_size,
                           const ExecContext& ctx);

}  // namespace sq
