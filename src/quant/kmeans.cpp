#include "quant/kmeans.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace sq {
namespace {

// k-means++ + Lloyd runs per kmeans1d_fast call, besides the run started from the coarse-grid
// optimum (grid_dp_start); the best is kept. Each costs O(k² log n) after the shared sort. Alone,
// k-means++ + Lloyd ends 1-10% above the optimum at 3-4 bits (more with very skewed weights); the
// grid start is what brings fast within 1% (tests/test_kmeans.cpp), these are a cheap second opinion
// (one only above k = 32, where seeding costs O(k² log n)).
constexpr int kRestarts = 2;

void check_inputs(std::span<const float> x, std::span<const float> w, int k) {
  SQ_CHECK(k >= 1 && k <= 256, "kmeans1d: k = ", k, " is outside [1, 256]");
  SQ_CHECK(w.empty() || w.size() == x.size(), "kmeans1d: ", x.size(), " values but ", w.size(), " weights");
  for (size_t i = 0; i < x.size(); i++) SQ_CHECK(std::isfinite(x[i]), "kmeans1d: value ", i, " is not finite");
  for (size_t i = 0; i < w.size(); i++)
    SQ_CHECK(std::isfinite(w[i]) && w[i] >= 0, "kmeans1d: weight ", i, " = ", w[i], " is not finite and >= 0");
}

// The caller's weights as the cost uses them: empty or all zero -> uniform.
bool weights_uniform(std::span<const float> w) {
  return std::all_of(w.begin(), w.end(), [](float v) { return v == 0.0f; });
}

// Distinct values of x ascending, with merged effective weights and prefix sums of w, w·y, w·y²
// where y = value − shift (shift = the median distinct value, which keeps Σw·y² − (Σw·y)²/Σw from
// cancelling catastrophically). Every effective weight is > 0 (see the header for the floor).
struct Sorted {
  std::vector<float> v;            // [m]
  std::vector<double> y, wt;       // [m]
  std::vector<double> p0, p1, p2;  // [m + 1]
  std::vector<uint32_t> order;     // [n] positions of x in ascending order
  double shift = 0;

  int64_t m() const { return int64_t(v.size()); }
  double W(int64_t a, int64_t b) const { return p0[b] - p0[a]; }
  double S1(int64_t a, int64_t b) const { return p1[b] - p1[a]; }
  double S2(int64_t a, int64_t b) const { return p2[b] - p2[a]; }
  // Σ_{a<=i<b} w_i (y_i − c)²
  double cost_about(int64_t a, int64_t b, double c) const {
    return std::max(0.0, S2(a, b) - 2 * c * S1(a, b) + c * c * W(a, b));
  }
  // Same about the weighted mean (the optimal centre of the range).
  double range_cost(int64_t a, int64_t b) const {
    double ww = W(a, b);
    if (!(ww > 0)) return 0;
    double s1 = S1(a, b);
    return std::max(0.0, S2(a, b) - s1 * s1 / ww);
  }
  double mean(int64_t a, int64_t b) const { return S1(a, b) / W(a, b); }
};

// Positions of x in ascending order (stable). LSD radix sort on the order-preserving integer image
// of the floats (3 passes of 11 bits) for long rows, std::sort for short ones.
void sort_order(std::span<const float> x, std::vector<uint32_t>& order) {
  const size_t n = x.size();
  auto key = [](float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  };
  std::vector<uint64_t> a(n);  // key << 32 | position
  for (size_t i = 0; i < n; i++) a[i] = uint64_t(key(x[i])) << 32 | i;
  if (n < 1024) {
    std::sort(a.begin(), a.end());
  } else {
    // All three digit histograms in one pass, then three stable scatters.
    std::vector<uint64_t> tmp(n);
    std::vector<uint32_t> count(3 * 2048, 0);
    for (uint64_t v : a) {
      count[(v >> 32) & 2047]++;
      count[2048 + ((v >> 43) & 2047)]++;
      count[4096 + ((v >> 54) & 2047)]++;
    }
    for (int pass = 0; pass < 3; pass++) {
      uint32_t* cnt = count.data() + 2048 * pass;
      const int shift = 32 + 11 * pass;
      if (cnt[(a[0] >> shift) & 2047] == n) continue;  // one digit value: the pass would not move anything
      uint32_t sum = 0;
      for (int d = 0; d < 2048; d++) {
        uint32_t t = cnt[d];
        cnt[d] = sum;
        sum += t;
      }
      for (uint64_t v : a) tmp[cnt[(v >> shift) & 2047]++] = v;
      a.swap(tmp);
    }
  }
  order.resize(n);
  for (size_t i = 0; i < n; i++) order[i] = uint32_t(a[i]);
}

Sorted prepare(std::span<const float> x, std::span<const float> w) {
  const size_t n = x.size();
  const bool uniform = weights_uniform(w);
  double floor = 0;
  if (!uniform) {
    double sum = 0;
    for (float v : w) sum += v;
    floor = 1e-9 * sum / double(n);
  }
  Sorted s;
  sort_order(x, s.order);
  s.v.reserve(n);
  s.wt.reserve(n);
  for (size_t p = 0; p < n; p++) {
    const uint32_t i = s.order[p];
    const double wi = uniform ? 1.0 : (w[i] > 0 ? double(w[i]) : floor);
    if (!s.v.empty() && s.v.back() == x[i]) {
      s.wt.back() += wi;
    } else {
      s.v.push_back(x[i]);
      s.wt.push_back(wi);
    }
  }
  const int64_t m = s.m();
  s.shift = m ? double(s.v[m / 2]) : 0.0;
  s.y.resize(m);
  s.p0.assign(m + 1, 0);
  s.p1.assign(m + 1, 0);
  s.p2.assign(m + 1, 0);
  for (int64_t i = 0; i < m; i++) {
    double y = double(s.v[i]) - s.shift, ww = s.wt[i];
    s.y[i] = y;
    s.p0[i + 1] = s.p0[i] + ww;
    s.p1[i + 1] = s.p1[i] + ww * y;
    s.p2[i + 1] = s.p2[i] + ww * y * y;
  }
  return s;
}

// Boundaries of the nearest-centre ranges for ascending centres c (y coordinates): cluster j is
// [b[j], b[j+1]); a value exactly on a midpoint goes to the lower centre. b has c.size() + 1 entries.
void boundaries(const Sorted& s, const std::vector<double>& c, std::vector<int64_t>& b) {
  const size_t k = c.size();
  b.resize(k + 1);
  b[0] = 0;
  b[k] = s.m();
  for (size_t j = 1; j < k; j++) {
    double mid = 0.5 * (c[j - 1] + c[j]);
    b[j] = std::upper_bound(s.y.begin(), s.y.end(), mid) - s.y.begin();
  }
}

// The value with the largest w·D² (D = distance to the nearest of the ascending centres c).
int64_t farthest(const Sorted& s, const std::vector<double>& c) {
  std::vector<int64_t> b;
  boundaries(s, c, b);
  int64_t best = 0;
  double best_d = -1;
  for (size_t j = 0; j < c.size(); j++)
    for (int64_t i = b[j]; i < b[j + 1]; i++) {
      double d = s.wt[i] * (s.y[i] - c[j]) * (s.y[i] - c[j]);
      if (d > best_d) best_d = d, best = i;
    }
  return best;
}

// D² sampling: index of a value drawn with probability ∝ w·D² (ascending centres c, at least one).
// Per-range sums come from the prefix sums, and the value inside the chosen range is found by binary
// search on the running sum, so a draw costs O(|c| log m) instead of O(m).
int64_t d2_sample(const Sorted& s, const std::vector<double>& c, uint64_t& rng) {
  std::vector<int64_t> b;
  boundaries(s, c, b);
  const size_t t = c.size();
  std::vector<double> seg(t);
  double total = 0;
  for (size_t j = 0; j < t; j++) total += seg[j] = s.cost_about(b[j], b[j + 1], c[j]);
  int64_t pick = -1;
  if (total > 0) {
    double r = uniform01(rng) * total;
    size_t j = 0;
    while (j + 1 < t && (r >= seg[j] || seg[j] <= 0)) r -= seg[j++];
    // Smallest i in [b[j], b[j+1]) whose running sum Σ_{b[j]<=q<=i} w(y−c)² exceeds r.
    int64_t lo = b[j], hi = b[j + 1] - 1;
    if (lo <= hi) {
      while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (s.cost_about(b[j], mid + 1, c[j]) > r) hi = mid; else lo = mid + 1;
      }
      pick = lo;
    }
  }
  // Rounding in the prefix sums can land on a value that already is a centre; take the farthest.
  if (pick < 0 || std::binary_search(c.begin(), c.end(), s.y[pick])) pick = farthest(s, c);
  return pick;
}

std::vector<double> plusplus(const Sorted& s, int k, uint64_t& rng) {
  const int64_t m = s.m();
  double r = uniform01(rng) * s.p0[m];
  int64_t first = std::upper_bound(s.p0.begin() + 1, s.p0.end(), r) - (s.p0.begin() + 1);
  std::vector<double> c{s.y[std::min(first, m - 1)]};
  while (int(c.size()) < k) {
    double y = s.y[d2_sample(s, c, rng)];
    c.insert(std::upper_bound(c.begin(), c.end(), y), y);
  }
  return c;
}

struct Fit {
  std::vector<double> c;  // ascending, y coordinates
  double cost = 0;        // effective-weight cost of the nearest assignment
  int iters = 0;
};

// Lloyd in O(k log m) per iteration: assignment = k−1 binary searches for the midpoints, update =
// range means from the prefix sums. Stops when the ranges repeat (then c are their means).
Fit lloyd(const Sorted& s, std::vector<double> c, int max_iter, uint64_t& rng) {
  const size_t k = c.size();
  std::vector<int64_t> b, prev;
  Fit f;
  for (;;) {
    std::sort(c.begin(), c.end());
    boundaries(s, c, b);
    if (b == prev || f.iters >= max_iter) break;
    prev = b;
    f.iters++;
    std::vector<size_t> empty;
    for (size_t j = 0; j < k; j++) {
      if (s.W(b[j], b[j + 1]) > 0) c[j] = s.mean(b[j], b[j + 1]);
      else empty.push_back(j);
    }
    if (!empty.empty()) {
      // Re-seed each empty centre by D² sampling against the occupied ones; then iterate again.
      std::vector<double> occupied;
      for (size_t j = 0; j < k; j++)
        if (!std::binary_search(empty.begin(), empty.end(), j)) occupied.push_back(c[j]);
      std::sort(occupied.begin(), occupied.end());
      for (size_t j : empty) {
        double y = s.y[d2_sample(s, occupied, rng)];
        occupied.insert(std::upper_bound(occupied.begin(), occupied.end(), y), y);
        c[j] = y;
      }
      prev.clear();
    }
  }
  for (size_t j = 0; j < k; j++) f.cost += s.cost_about(b[j], b[j + 1], c[j]);
  f.c = std::move(c);
  return f;
}

// Nearest-centroid assignment and cost (caller's weights) for ascending float centroids c. x is
// walked in sorted order, where the nearest index never decreases: O(n + k). Equal distances and
// repeated centroids resolve to the lowest index, as kmeans1d_nearest does.
void assign_sorted(std::span<const float> x, std::span<const float> w, const Sorted& s, KMeans1D& r) {
  const std::vector<float>& c = r.centroids;
  const int k = int(c.size());
  std::vector<int> lowest(k);
  for (int j = 0; j < k; j++) lowest[j] = (j > 0 && c[j - 1] == c[j]) ? lowest[j - 1] : j;
  const bool uniform = weights_uniform(w);
  r.assign.resize(x.size());
  r.cost = 0;
  int j = 0;
  for (uint32_t i : s.order) {
    const double v = x[i];
    while (j + 1 < k && (c[j + 1] == c[j] || std::fabs(c[j + 1] - v) < std::fabs(v - c[j]))) j++;
    r.assign[i] = uint8_t(lowest[j]);
    const double d = v - c[j];
    r.cost += (uniform ? 1.0 : double(w[i])) * d * d;
  }
}

// Turns centres (y coordinates) into the result: float centroids clamped into their cluster's value
// range (so a cluster of equal values gets exactly that value), ascending, then the assignment.
KMeans1D finish(std::span<const float> x, std::span<const float> w, const Sorted& s, std::vector<double> c,
                int iters) {
  std::vector<int64_t> b;
  std::sort(c.begin(), c.end());
  boundaries(s, c, b);
  KMeans1D r;
  r.iterations = iters;
  r.centroids.resize(c.size());
  for (size_t j = 0; j < c.size(); j++) {
    float v = float(c[j] + s.shift);
    if (b[j] < b[j + 1]) v = std::clamp(v, s.v[b[j]], s.v[b[j + 1] - 1]);
    r.centroids[j] = v;
  }
  std::sort(r.centroids.begin(), r.centroids.end());
  assign_sorted(x, w, s, r);
  return r;
}

// At most k distinct values: each is a centroid, the table padded with the largest.
KMeans1D lossless(std::span<const float> x, std::span<const float> w, const Sorted& s, int k) {
  KMeans1D r;
  r.centroids = s.v;
  if (r.centroids.empty()) r.centroids.push_back(0.0f);
  r.centroids.resize(k, r.centroids.back());
  assign_sorted(x, w, s, r);
  return r;
}

// Optimal split of the sorted values into k contiguous clusters whose boundaries lie on `edges`
// (ascending positions into s, from 0 to m, more than k of them). Returns the k + 1 boundaries.
// D[j][i] = best cost of the values before edges[i] in j clusters = min_l D[j−1][l] + cost(l, i).
// The optimal l is monotone in i (the cost satisfies the quadrangle inequality), so each layer is
// solved by divide and conquer: the middle i scans its admissible l range, which bounds the halves.
// O(k B log B) range costs for B = edges.size() − 1.
std::vector<int64_t> dp_partition(const Sorted& s, const std::vector<int64_t>& edges, int k) {
  const int64_t B = int64_t(edges.size()) - 1;
  auto cost = [&](int64_t l, int64_t i) { return s.range_cost(edges[l], edges[i]); };
  std::vector<double> prev(B + 1), cur(B + 1, 0.0);
  for (int64_t i = 1; i <= B; i++) prev[i] = cost(0, i);
  std::vector<int32_t> arg(size_t(k + 1) * size_t(B + 1), 0);  // arg[j][i] = start of the last cluster
  struct Task {
    int64_t lo, hi, olo, ohi;
  };
  std::vector<Task> stack;
  for (int j = 2; j <= k; j++) {
    // j clusters need i >= j edges; the last layer only needs i = B.
    stack.push_back({j == k ? B : j, B, j - 1, B - 1});
    int32_t* argj = arg.data() + size_t(j) * size_t(B + 1);
    while (!stack.empty()) {
      Task t = stack.back();
      stack.pop_back();
      if (t.lo > t.hi) continue;
      int64_t mid = t.lo + (t.hi - t.lo) / 2;
      double best = std::numeric_limits<double>::infinity();
      int64_t bl = t.olo;
      for (int64_t l = t.olo, e = std::min(mid - 1, t.ohi); l <= e; l++) {
        double v = prev[l] + cost(l, mid);
        if (v < best) best = v, bl = l;
      }
      cur[mid] = best;
      argj[mid] = int32_t(bl);
      stack.push_back({t.lo, mid - 1, t.olo, bl});
      stack.push_back({mid + 1, t.hi, bl, t.ohi});
    }
    std::swap(prev, cur);
  }
  std::vector<int64_t> b(k + 1);
  int64_t i = B;
  b[k] = edges[B];
  for (int j = k; j >= 2; j--) {
    i = arg[size_t(j) * size_t(B + 1) + size_t(i)];
    b[j - 1] = edges[i];
  }
  b[0] = 0;
  return b;
}

// Start for Lloyd: the optimal clustering whose boundaries lie on a coarse grid of about B
// candidate positions, the union of three kinds of edges so that no kind of row defeats it:
// equal counts of values (the bulk), equal steps of cumulative weight (isolates heavy points) and equal
// steps of value (spreads edges over long tails). B = 16k up to k = 32 (DP cost k·B·log B, about the
// cost of the sort for 3-bit rows; measured within 1% of the optimum after Lloyd) and 4k above (the
// DP would dominate). Rows with at most B distinct values get the exact DP.
std::vector<double> grid_dp_start(const Sorted& s, int k) {
  const int64_t m = s.m();
  const int64_t B = int64_t(k) * (k <= 32 ? 16 : 4);
  std::vector<int64_t> edges;
  if (m <= B) {
    edges.resize(m + 1);
    for (int64_t i = 0; i <= m; i++) edges[i] = i;
  } else {
    const int64_t b3 = B / 3;  // > k, and m > b3, so the equal-count edges alone are > k + 1 distinct
    const double W = s.p0[m], lo = s.y[0], hi = s.y[m - 1];
    for (int64_t i = 0; i <= b3; i++) edges.push_back(i * m / b3);
    for (int64_t i = 1; i < b3; i++) {
      edges.push_back(std::lower_bound(s.p0.begin(), s.p0.end(), W * double(i) / double(b3)) - s.p0.begin());
      edges.push_back(std::lower_bound(s.y.begin(), s.y.end(), lo + (hi - lo) * double(i) / double(b3)) -
                      s.y.begin());
    }
    for (int64_t& e : edges) e = std::clamp<int64_t>(e, 0, m);
    std::sort(edges.begin(), edges.end());
    edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  }
  std::vector<int64_t> b = dp_partition(s, edges, k);
  std::vector<double> c(k);
  for (int j = 0; j < k; j++) c[j] = s.mean(b[j], b[j + 1]);
  return c;
}

}  // namespace

int kmeans1d_nearest(const float* table, int n, float v) {
  int j = int(std::upper_bound(table, table + n, v) - table);  // table[j-1] <= v < table[j]
  int best;
  if (j == 0) best = 0;
  else if (j == n) best = n - 1;
  else best = (double(v) - table[j - 1] <= double(table[j]) - v) ? j - 1 : j;
  while (best > 0 && table[best - 1] == table[best]) best--;
  return best;
}

double kmeans1d_cost(std::span<const float> x, std::span<const float> w, std::span<const float> centroids) {
  SQ_CHECK(!centroids.empty(), "kmeans1d_cost: no centroids");
  const bool uniform = weights_uniform(w);
  double cost = 0;
  for (size_t i = 0; i < x.size(); i++) {
    double d = double(x[i]) - centroids[kmeans1d_nearest(centroids.data(), int(centroids.size()), x[i])];
    cost += (uniform ? 1.0 : double(w[i])) * d * d;
  }
  return cost;
}

std::vector<float> kmeans1d_init(std::span<const float> x, std::span<const float> w, int k, uint64_t seed) {
  check_inputs(x, w, k);
  Sorted s = prepare(x, w);
  if (s.m() <= k) return lossless(x, w, s, k).centroids;
  uint64_t rng = seed;
  std::vector<double> c = plusplus(s, k, rng);
  std::vector<float> out(c.size());
  for (size_t j = 0; j < c.size(); j++) out[j] = s.v[std::lower_bound(s.y.begin(), s.y.end(), c[j]) - s.y.begin()];
  return out;
}

KMeans1D kmeans1d_lloyd(std::span<const float> x, std::span<const float> w, std::span<const float> init,
                        int max_iter, uint64_t seed) {
  const int k = int(init.size());
  check_inputs(x, w, k);
  for (float c : init) SQ_CHECK(std::isfinite(c), "kmeans1d_lloyd: initial centroid is not finite");
  Sorted s = prepare(x, w);
  if (s.m() <= k) return lossless(x, w, s, k);
  std::vector<double> c(init.begin(), init.end());
  for (double& v : c) v -= s.shift;
  uint64_t rng = seed;
  Fit f = lloyd(s, std::move(c), max_iter, rng);
  return finish(x, w, s, std::move(f.c), f.iters);
}

KMeans1D kmeans1d_fast(std::span<const float> x, std::span<const float> w, int k, uint64_t seed, int max_iter) {
  check_inputs(x, w, k);
  SQ_CHECK(max_iter >= 0, "kmeans1d: max_iter must be >= 0");
  Sorted s = prepare(x, w);
  if (s.m() <= k) return lossless(x, w, s, k);
  uint64_t rng = seed;
  Fit best;
  best.cost = std::numeric_limits<double>::infinity();
  int iters = 0;
  best = lloyd(s, grid_dp_start(s, k), max_iter, rng);
  iters += best.iters;
  for (int r = 0; r < (k <= 32 ? kRestarts : 1); r++) {
    Fit f = lloyd(s, plusplus(s, k, rng), max_iter, rng);
    iters += f.iters;
    if (f.cost < best.cost) best = std::move(f);
  }
  return finish(x, w, s, std::move(best.c), iters);
}

KMeans1D kmeans1d_exact(std::span<const float> x, std::span<const float> w, int k) {
  check_inputs(x, w, k);
  Sorted s = prepare(x, w);
  if (s.m() <= k) return lossless(x, w, s, k);
  std::vector<int64_t> edges(s.m() + 1);
  for (int64_t i = 0; i <= s.m(); i++) edges[i] = i;
  std::vector<int64_t> b = dp_partition(s, edges, k);
  std::vector<double> c(k);
  for (int j = 0; j < k; j++) c[j] = s.mean(b[j], b[j + 1]);
  return finish(x, w, s, std::move(c), 0);
}

}  // namespace sq
