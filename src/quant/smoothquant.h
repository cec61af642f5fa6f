// SmoothQuant+ smoothing math on f32 buffers. A linear group reading the same input X[tokens, in]
// (q/k/v after the attention norm, gate/up after the MLP norm, o_proj after v_proj) gets per-channel
// scales s[in]: the weights' input columns are multiplied by s and the producer of X (the norm's
// weight and bias, or v_proj's output rows) divided by s, so Y = (X / s) (W diag(s))ᵀ = X Wᵀ exactly
// in real arithmetic while the weights' outlier columns (where activations are large) shrink and the
// grid of group-wise int4 serves the rest better.
//
//   s_j = max|X_j|^α / max|W_:,j|^(1-α),  max over every row of every weight in the group.
//
// The pipeline that collects max|X_j| (calib/) and searches α lives elsewhere; these are the pieces.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace sq {

// Limits of a smoothing scale. Any positive s keeps the model's function, but s only leaves
// [1e-5, 1e5] when the statistics are degenerate (a channel that never fired in calibration, an
// absurd outlier) and such a factor would blow the folded norm weight (divided by s) or the weight
// column (multiplied by s) past F16's range (65504) or into its subnormals, so it is clamped.
inline constexpr float kSmoothScaleMin = 1e-5f;
inline constexpr float kSmoothScaleMax = 1e5f;

// act_absmax[in]: max |x_j| over calibration tokens. weights: each [rows_i, in] row-major.
// alpha in [0, 1] (0.5 is SmoothQuant's default; SmoothQuant+ searches it per model).
// Guards: s_j = 1 where act_absmax[j] or the column's weight max is zero, negative or non-finite
// (nothing to balance, or no trustworthy statistic); otherwise clamped to [kSmoothScaleMin, kSmoothScaleMax].
// Throws sq::Error for alpha outside [0, 1], a wrong act_absmax length, or a weight whose size is not
// a multiple of `in`.
std::vector<float> smooth_scales(std::span<const float> act_absmax, const std::vector<std::span<const float>>& weights,
                                 int64_t in, double alpha);

// W[:, j] *= s[j]  (W[rows, cols], s[cols]): the consumers' input columns.
void scale_columns(float* W, int64_t rows, int64_t cols, std::span<const float> s);
// W[i, :] *= s[i]  (W[rows, cols], s[rows]): the producer's output rows. To fold a smoothing scale
// into a previous linear (v_proj before o_proj), pass reciprocal(s).
void scale_rows(float* W, int64_t rows, int64_t cols, std::span<const float> s);
// v[j] /= s[j] for j < s.size(): a norm's weight or bias (v holds s.size() values).
void divide_vector(float* v, std::span<const float> s);
// 1 / s[j] (for scale_rows folding).
std::vector<float> reciprocal(std::span<const float> s);

}  // namespace sq
