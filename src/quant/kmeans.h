// Weighted 1-D k-means: the clustering behind SqueezeLLM's per-row lookup tables.
//
// Minimises Σ_i w_i (x_i − c_{a(i)})² over k centroids c and assignments a, with sample weights
// w_i >= 0 (Fisher-information diagonals). In one dimension, for sorted x every cluster of an optimal
// (or Lloyd-stable) solution is a contiguous range, which both solvers exploit:
//   - kmeans1d_fast: Lloyd iterations, each O(k log n) on prefix sums after one sort, from several
//     starts, best kept: the optimum over a coarse grid of ~16k candidate boundaries (a small DP) and
//     k-means++ seedings (weighted D² sampling). O(n log n) overall; within 1% of the optimum at
//     2-5 bits on gaussian and heavy-tailed rows, a few % at 6-8 bits (where the grid is coarser).
//   - kmeans1d_exact: the optimal clustering by dynamic programming with the divide-and-conquer
//     optimisation (the cost satisfies the quadrangle inequality): O(k n log n).
//
// Conventions shared by both:
//   - w may be empty (uniform weights). All-zero weights mean uniform weights. If only some weights
//     are zero, those get a tiny floor (1e-9 × mean weight) so zero-weight values still land on a
//     sensible centroid; the reported cost uses the caller's weights.
//   - If x has at most k distinct values the result is lossless: each distinct value is a centroid
//     (the table is padded by repeating the largest value), cost 0.
//   - Centroids are returned ascending (non-strictly when padded), each inside its cluster's value
//     range, and every x_i is assigned its nearest centroid (ties to the lower index).
//   - Non-finite x or w, negative w, k outside [1, 256] or mismatched sizes throw sq::Error.
//   - Deterministic for a given seed on every platform (own PRNG, no std distributions).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace sq {

struct KMeans1D {
  std::vector<float> centroids;  // [k], ascending
  std::vector<uint8_t> assign;   // [n], index into centroids
  double cost = 0;               // Σ w_i (x_i − centroids[assign_i])², caller's weights (uniform if all 0)
  int iterations = 0;            // Lloyd iterations summed over restarts (0 for exact / lossless)
};

KMeans1D kmeans1d_fast(std::span<const float> x, std::span<const float> w, int k, uint64_t seed,
                       int max_iter = 50);
KMeans1D kmeans1d_exact(std::span<const float> x, std::span<const float> w, int k);

// The two stages of kmeans1d_fast, exposed so tests can compare them with independent code.
// k-means++ seeding (D² sampling weighted by w): k centroids, ascending. Fewer than k distinct values
// returns the lossless table as above.
std::vector<float> kmeans1d_init(std::span<const float> x, std::span<const float> w, int k, uint64_t seed);
// Lloyd iterations from the given centroids until the assignment stops changing or max_iter.
// An emptied cluster is re-seeded by D² sampling from `seed`.
KMeans1D kmeans1d_lloyd(std::span<const float> x, std::span<const float> w, std::span<const float> init,
                        int max_iter, uint64_t seed = 0);

// Index of the entry of the ascending table[0, n) nearest to v; ties and repeated entries resolve to
// the lowest index. (Also how the quantizers choose codes for their F16-rounded tables.)
int kmeans1d_nearest(const float* table, int n, float v);

// The same choice as kmeans1d_nearest for many values against one table, without branches for
// tables of up to 16 entries: the code is the number of midpoints below v (mapped to the lowest index
// of a run of repeated entries). The table must outlive the encoder.
class NearestCode {
 public:
  NearestCode(const float* table, int n) : table_(table), n_(n) {
    if (n > 16) return;  // binary search instead
    for (int j = 0; j < n; j++) lowest_[j] = uint8_t((j > 0 && table[j - 1] == table[j]) ? lowest_[j - 1] : j);
    for (int j = 0; j + 1 < n; j++) mid_[j] = 0.5 * (double(table[j]) + double(table[j + 1]));
  }
  uint8_t operator()(float v) const {
    if (n_ > 16) return uint8_t(kmeans1d_nearest(table_, n_, v));
    const double d = v;
    int c = 0;
    for (int j = 0; j + 1 < n_; j++) c += d > mid_[j];
    return lowest_[c];
  }

 private:
  const float* table_;
  int n_;
  double mid_[16];
  uint8_t lowest_[16];
};

// Weighted squared error of quantizing x to its nearest centroid (centroids ascending).
double kmeans1d_cost(std::span<const float> x, std::span<const float> w, std::span<const float> centroids);

// splitmix64 (Steele, Lea, Flood 2014): the small, portable PRNG used for seeding.
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
// Uniform double in [0, 1) from the top 53 bits.
inline double uniform01(uint64_t& state) { return double(splitmix64(state) >> 11) * 0x1.0p-53; }

}  // namespace sq
