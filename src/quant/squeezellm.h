// SqueezeLLM quantization of weight matrices (Kim et al., "SqueezeLLM: Dense-and-Sparse Quantization"):
// per output row, a lookup table of 2^bits values from Fisher-weighted 1-D k-means; optionally a small
// sparse part (CSR) that keeps some weights exactly. Output: formats/lut.h's LutMatrix.
//
// Dense-and-sparse selection (plan_sparsity), over all matrices of the model at once:
//   - sensitive: in each matrix, the top `sensitive` percent of weights by Fisher value. Ties at the
//     boundary are left out (a constant Fisher, i.e. "uniform sensitivity", selects none).
//   - outliers: among the rest, weights whose score |w| / rms(W) exceeds one global multiplier m.
//     The spread statistic is the matrix's root-mean-square (symmetric around 0, robust to a single
//     extreme value, unlike max |w|), so m means "this many RMS units" in every matrix.
//   - m is chosen by exact selection over all matrices' scores (a 65536-bin histogram of the float
//     bits, then the boundary bin), so that sensitive + outliers = `sparsity` percent of all weights,
//     up to ties and rounding (far below 0.01 percentage points on any real model).
//   - if `sensitive` >= `sparsity`, the sensitive share is capped at `sparsity` and there are no
//     outliers. sparsity = 0 means dense only: nothing is sparse, whatever `sensitive` says.
//
// Per row (rows are independent and run in parallel): weighted k-means over the row's non-sparse
// weights with their Fisher values as weights (sparse weights are excluded, so they do not pull the
// centroids; a row whose remaining Fisher values are all zero falls back to uniform weights). Table
// entries are rounded to F16 and every weight gets the code of the nearest rounded entry; at sparse
// positions the code is the entry nearest zero and the CSR keeps the exact original value.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/dtype.h"
#include "formats/lut.h"

namespace sq {

struct SqueezeOptions {
  int bits = 3;             // 2..8
  double sparsity = 0.0;    // percent of all weights kept exactly (0.45 = 0.45%), sensitive included
  double sensitive = 0.05;  // percent of each matrix kept by top Fisher value (when sparsity > 0)
  bool exact = false;       // optimal k-means by dynamic programming instead of the fast solver
  uint64_t seed = 0;
  int max_iter = 50;        // Lloyd iterations per start (fast solver)
};

// One matrix as the quantizer sees it (views; nothing is copied).
struct SqueezeInput {
  std::string name;                // for error messages
  const float* w = nullptr;        // [rows, cols]
  const float* fisher = nullptr;   // [rows, cols] Fisher diagonal, >= 0; null = uniform sensitivity
  int64_t rows = 0, cols = 0;
};

// Which weights of one matrix go to the sparse part.
struct SparseSelection {
  float fisher_threshold = std::numeric_limits<float>::infinity();  // sensitive <=> fisher > this
  float multiplier = std::numeric_limits<float>::infinity();        // outlier <=> score > this (global m)
  float inv_spread = 0;                                             // 1 / rms(W); score = |w| · inv_spread
  int64_t n_sensitive = 0, n_outliers = 0;                          // counts the selection yields

  // The outlier score, computed the same way by the selection and by the quantizer.
  static float score(float w, float inv_spread) { return std::fabs(w) * inv_spread; }
  // `fisher` is 1 for uniform sensitivity.
  bool is_sparse(float w, float fisher) const {
    return fisher > fisher_threshold || score(w, inv_spread) > multiplier;
  }
};

struct SparsePlan {
  std::vector<SparseSelection> matrices;  // one per input, same order
  double multiplier = std::numeric_limits<double>::infinity();  // global m (inf: no outliers)
  double sensitive_percent = 0;  // the per-matrix sensitive share used (after the cap)
  int64_t total_weights = 0, total_sensitive = 0, total_outliers = 0;
  double sparse_percent() const {
    return total_weights ? 100.0 * double(total_sensitive + total_outliers) / double(total_weights) : 0.0;
  }
};

// The global dense-and-sparse selection described above. Validates the inputs (finite weights, finite
// non-negative Fisher values, 0 <= sparsity < 100, 0 <= sensitive <= 100): sq::Error naming the matrix.
SparsePlan plan_sparsity(std::span<const SqueezeInput> mats, double sparsity_percent, double sensitive_percent,
                         const ExecContext& ctx);

// Quantizes one matrix with its selection. values_dtype: the checkpoint dtype the weights came from
// (F32/F16/BF16; sparse values are stored in it, or in F32 if some value is not exactly representable
// or the dtype is another one). progress(rows_done) is called from worker threads, one call at a time,
// with the running total of finished rows.
LutMatrix squeezellm_quantize(const SqueezeInput& m, const SparseSelection& sel, DType values_dtype,
                              const SqueezeOptions& o, const ExecContext& ctx,
                              const std::function<void(int64_t)>& progress = {});
// One matrix on its own: plans o.sparsity / o.sensitive for this matrix alone, then quantizes.
LutMatrix squeezellm_quantize(const SqueezeInput& m, DType values_dtype, const SqueezeOptions& o,
                              const ExecContext& ctx, const std::function<void(int64_t)>& progress = {});

// The k-means seed of row r (rows are seeded independently, so results do not depend on threads).
uint64_t squeezellm_row_seed(uint64_t seed, int64_t row);

}  // namespace sq
