// Group-wise asymmetric int4 round-to-nearest quantization (the weight step of SmoothQuant+), producing
// the GPTQ-compatible Int4Matrix of formats/int4_group.h.
//
// Per group of `group_size` consecutive input channels of one output row (the last group may be
// shorter): the range [lo, hi] = [min(w_min, 0), max(w_max, 0)] (0 is always representable, as in
// GPTQ's quantizer, so no clamping error at zero), scale = (hi - lo) / 15 rounded to F16,
// zero = round(-lo / scale), codes q = clamp(round(w / scale) + zero, 0, 15). Codes are computed with
// the F16-rounded scale, so scale * (q - zero) is exactly what the engine computes.
// GPTQ v1 stores zero - 1, so zero must be >= 1: a group whose range rounds to zero = 0 (all weights
// >= -scale/2) uses zero = 1 and scale = hi / 14 instead (grid [-scale, 14 scale] still covers it).
//
// clip_search: additionally tries shrinking [lo, hi] by the factors 1.00, 0.95, ..., 0.55 and keeps
// the one with the least squared error of the group (1.00 is among them, so it never does worse in
// that metric). It trades a larger error on the few extreme weights for a finer grid for the rest.
#pragma once
#include <cstdint>

#include "core/context.h"
#include "formats/int4_group.h"

namespace sq {

// Quantization parameters for the range [lo, hi] (lo <= 0 <= hi): f16 scale bits and zero 1..15.
void int4_params_for_range(float lo, float hi, uint16_t* scale_f16, uint8_t* zero);

// Quantizes w[0..n) as one group with the given parameters; writes codes, returns Σ (dequant - w)².
double int4_quantize_group_with(const float* w, int64_t n, uint16_t scale_f16, uint8_t zero, uint8_t* q);

// Quantizes one group (with or without clip search); writes n codes, *scale_f16, *zero; returns the
// group's squared error.
double int4_quantize_group(const float* w, int64_t n, bool clip_search, uint16_t* scale_f16, uint8_t* zero,
                           uint8_t* q);

// W[rows, cols] row-major f32 (nn.Linear layout: rows = out, cols = in). group_size > 0 or -1 (one
// group over all inputs). Parallel over rows on ctx.pool (serial when null). g_idx is left empty
// (groups follow input order, desc_act = false). Throws sq::Error for non-finite weights or a range
// too large for F16 scales.
Int4Matrix quantize_int4_rtn(const float* W, int64_t rows, int64_t cols, int group_size, bool clip_search,
                             const ExecContext& ctx);

}  // namespace sq
