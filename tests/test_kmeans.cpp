// Weighted 1-D k-means: the exact solver against brute force, the fast solver against the exact one,
// equal weights against an independent unweighted Lloyd, lossless cases, determinism, bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "quant/kmeans.h"

namespace {

using sq::KMeans1D;

// Test data from splitmix64 (platform-independent, unlike std distributions).
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  double uniform() { return sq::uniform01(s); }
  double normal() {
    double u1 = std::max(uniform(), 1e-300), u2 = uniform();
    return std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  // Student t with 3 degrees of freedom: heavy tails like LLM weight outliers.
  double student3() {
    double chi = 0;
    for (int i = 0; i < 3; i++) {
      double z = normal();
      chi += z * z;
    }
    return normal() / std::sqrt(chi / 3);
  }
};

// Σ w (x − mean_w)² of one group, in double.
double group_cost(const std::vector<double>& x, const std::vector<double>& w) {
  double sw = 0, swx = 0;
  for (size_t i = 0; i < x.size(); i++) sw += w[i], swx += w[i] * x[i];
  if (sw == 0) return 0;
  double m = swx / sw, c = 0;
  for (size_t i = 0; i < x.size(); i++) c += w[i] * (x[i] - m) * (x[i] - m);
  return c;
}

// Brute force over every assignment of n points to k labels (k^n): no contiguity assumption.
double brute_all_assignments(const std::vector<float>& x, const std::vector<float>& w, int k) {
  const int n = int(x.size());
  std::vector<int> lab(n, 0);
  double best = std::numeric_limits<double>::infinity();
  for (;;) {
    double c = 0;
    for (int g = 0; g < k; g++) {
      std::vector<double> gx, gw;
      for (int i = 0; i < n; i++)
        if (lab[i] == g) gx.push_back(x[i]), gw.push_back(w[i]);
      c += group_cost(gx, gw);
    }
    best = std::min(best, c);
    int i = 0;
    while (i < n && ++lab[i] == k) lab[i++] = 0;
    if (i == n) break;
  }
  return best;
}

// Brute force over every split of the sorted values into at most k contiguous runs.
double brute_contiguous(std::vector<float> x, std::vector<float> w, int k) {
  const int n = int(x.size());
  std::vector<int> idx(n);
  for (int i = 0; i < n; i++) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](int a, int b) { return x[a] < x[b]; });
  std::vector<double> xs(n), ws(n);
  for (int i = 0; i < n; i++) xs[i] = x[idx[i]], ws[i] = w[idx[i]];
  double best = std::numeric_limits<double>::infinity();
  // Bit i of mask set = a cut between sorted positions i and i+1.
  for (uint32_t mask = 0; mask < (1u << (n - 1)); mask++) {
    if (__builtin_popcount(mask) > k - 1) continue;
    double c = 0;
    int start = 0;
    for (int i = 0; i < n; i++) {
      if (i == n - 1 || (mask >> i & 1)) {
        c += group_cost(std::vector<double>(xs.begin() + start, xs.begin() + i + 1),
                        std::vector<double>(ws.begin() + start, ws.begin() + i + 1));
        start = i + 1;
      }
    }
    best = std::min(best, c);
  }
  return best;
}

// Checks the invariants every result must satisfy.
void check_result(const KMeans1D& r, const std::vector<float>& x, const std::vector<float>& w, int k) {
  ASSERT_EQ(int(r.centroids.size()), k);
  ASSERT_EQ(r.assign.size(), x.size());
  EXPECT_TRUE(std::is_sorted(r.centroids.begin(), r.centroids.end()));
  double cost = 0;
  bool uniform = std::all_of(w.begin(), w.end(), [](float v) { return v == 0; });
  for (size_t i = 0; i < x.size(); i++) {
    ASSERT_LT(r.assign[i], k);
    double d = double(x[i]) - r.centroids[r.assign[i]];
    for (float c : r.centroids) ASSERT_LE(std::fabs(d), std::fabs(double(x[i]) - c) + 1e-12) << "not nearest";
    cost += (uniform ? 1.0 : w[i]) * d * d;
  }
  EXPECT_NEAR(r.cost, cost, 1e-9 * (1 + cost));
}

TEST(KMeans, ExactEqualsBruteForceOnSmallInputs) {
  Rng rng(1);
  for (int trial = 0; trial < 300; trial++) {
    int n = 1 + int(rng.uniform() * 10), k = 1 + int(rng.uniform() * 4);
    std::vector<float> x(n), w(n);
    for (int i = 0; i < n; i++) {
      x[i] = float(rng.normal());
      if (i > 0 && rng.uniform() < 0.15) x[i] = x[i - 1];  // some repeated values
      w[i] = float(0.05 + rng.uniform() * 3);
    }
    KMeans1D r = sq::kmeans1d_exact(x, w, k);
    check_result(r, x, w, k);
    double want = brute_contiguous(x, w, k);
    EXPECT_NEAR(r.cost, want, 1e-6 * want + 1e-9) << "trial " << trial << " n=" << n << " k=" << k;
    if (n <= 7) {
      double all = brute_all_assignments(x, w, k);
      EXPECT_NEAR(all, want, 1e-9 * want + 1e-12) << "contiguous optimum differs from full search";
    }
    // The fast solver can never beat the optimum.
    KMeans1D f = sq::kmeans1d_fast(x, w, k, trial);
    check_result(f, x, w, k);
    EXPECT_GE(f.cost, r.cost * (1 - 1e-9) - 1e-12);
  }
}

TEST(KMeans, FastWithinOnePercentOfExactOn4096Rows) {
  Rng rng(7);
  double worst = 0;
  for (int bits = 2; bits <= 4; bits++) {
    const int k = 1 << bits;
    for (int dist = 0; dist < 2; dist++) {
      for (int rep = 0; rep < 4; rep++) {
        std::vector<float> x(4096), w(4096);
        for (int i = 0; i < 4096; i++) {
          x[i] = float(0.02 * (dist == 0 ? rng.normal() : rng.student3()));
          // Positive weights: uniform, or log-normal spread over orders of magnitude (like Fisher).
          w[i] = rep < 2 ? float(1e-3 + rng.uniform()) : float(std::exp((rep == 2 ? 1.5 : 3) * rng.normal()));
        }
        KMeans1D e = sq::kmeans1d_exact(x, w, k);
        KMeans1D f = sq::kmeans1d_fast(x, w, k, 100 + rep);
        check_result(e, x, w, k);
        check_result(f, x, w, k);
        double ratio = f.cost / e.cost;
        worst = std::max(worst, ratio);
        EXPECT_GE(ratio, 1 - 1e-9) << "exact is not optimal: bits " << bits << " dist " << dist;
        EXPECT_LE(ratio, 1.01) << "bits " << bits << " dist " << dist << " rep " << rep;
      }
    }
  }
  std::printf("worst fast/exact cost ratio: %.5f\n", worst);
}

// Plain unweighted Lloyd (O(nk) per iteration, nearest by linear scan), written independently.
std::vector<double> naive_lloyd(const std::vector<float>& x, std::vector<double> c) {
  const size_t k = c.size();
  std::vector<int> lab(x.size(), -1);
  for (int it = 0; it < 1000; it++) {
    bool changed = false;
    for (size_t i = 0; i < x.size(); i++) {
      int best = 0;
      for (size_t j = 1; j < k; j++)
        if (std::fabs(x[i] - c[j]) < std::fabs(x[i] - c[best])) best = int(j);
      if (best != lab[i]) lab[i] = best, changed = true;
    }
    if (!changed) break;
    for (size_t j = 0; j < k; j++) {
      double s = 0;
      int cnt = 0;
      for (size_t i = 0; i < x.size(); i++)
        if (lab[i] == int(j)) s += x[i], cnt++;
      if (cnt) c[j] = s / cnt;
    }
  }
  return c;
}

TEST(KMeans, EqualWeightsReduceToOrdinaryKMeans) {
  Rng rng(3);
  for (int rep = 0; rep < 4; rep++) {
    std::vector<float> x(1000);
    for (float& v : x) v = float(rng.normal());
    const int k = 8;
    std::vector<float> init = sq::kmeans1d_init(x, {}, k, 50 + rep);
    ASSERT_EQ(int(init.size()), k);
    for (float c : init) EXPECT_TRUE(std::find(x.begin(), x.end(), c) != x.end()) << "seeds are data points";
    std::vector<double> want = naive_lloyd(x, std::vector<double>(init.begin(), init.end()));
    std::sort(want.begin(), want.end());
    std::vector<float> equal(x.size(), 2.5f);
    KMeans1D got = sq::kmeans1d_lloyd(x, equal, init, 1000);
    for (int j = 0; j < k; j++) EXPECT_NEAR(got.centroids[j], want[j], 1e-5) << "rep " << rep << " j " << j;
    // Cost with equal weights 2.5 = 2.5 × unweighted SSE computed here.
    double sse = 0;
    for (size_t i = 0; i < x.size(); i++) {
      double d = double(x[i]) - got.centroids[got.assign[i]];
      sse += d * d;
    }
    EXPECT_NEAR(got.cost, 2.5 * sse, 1e-9 * sse);
  }
  // All-zero weights are uniform weights; constant weights give the same clustering as none.
  std::vector<float> x(2000);
  for (float& v : x) v = float(rng.student3());
  KMeans1D a = sq::kmeans1d_fast(x, {}, 8, 9);
  KMeans1D b = sq::kmeans1d_fast(x, std::vector<float>(x.size(), 0.0f), 8, 9);
  KMeans1D c = sq::kmeans1d_fast(x, std::vector<float>(x.size(), 4.0f), 8, 9);
  EXPECT_EQ(a.centroids, b.centroids);
  EXPECT_EQ(a.cost, b.cost);
  for (int j = 0; j < 8; j++) EXPECT_NEAR(a.centroids[j], c.centroids[j], 1e-6);
  EXPECT_NEAR(c.cost, 4 * a.cost, 1e-6 * a.cost);
}

TEST(KMeans, DistinctLevelsAreLossless) {
  Rng rng(11);
  for (int bits = 2; bits <= 8; bits++) {
    const int k = 1 << bits;
    std::vector<float> levels(k);
    for (float& l : levels) l = float(rng.normal());
    std::vector<float> x(4096), w(4096);
    for (int i = 0; i < 4096; i++) {
      x[i] = levels[size_t(rng.uniform() * k)];
      w[i] = float(rng.uniform());
    }
    for (const KMeans1D& r : {sq::kmeans1d_fast(x, w, k, 1), sq::kmeans1d_exact(x, w, k)}) {
      check_result(r, x, w, k);
      EXPECT_EQ(r.cost, 0.0) << "bits " << bits;
      for (size_t i = 0; i < x.size(); i++) ASSERT_EQ(r.centroids[r.assign[i]], x[i]);
    }
  }
  // Fewer distinct values than k: each value its own centroid, table padded, still sorted.
  std::vector<float> x = {0.5f, -1.0f, 0.5f, 3.0f, -1.0f};
  for (const KMeans1D& r : {sq::kmeans1d_fast(x, {}, 8, 0), sq::kmeans1d_exact(x, {}, 8)}) {
    check_result(r, x, {}, 8);
    EXPECT_EQ(r.cost, 0.0);
    EXPECT_EQ(r.centroids[0], -1.0f);
    EXPECT_EQ(r.centroids[1], 0.5f);
    EXPECT_EQ(r.centroids[2], 3.0f);
  }
  // Empty input: a valid all-zero table.
  KMeans1D e = sq::kmeans1d_fast({}, {}, 4, 0);
  EXPECT_EQ(e.centroids, std::vector<float>(4, 0.0f));
  EXPECT_EQ(e.cost, 0.0);
}

TEST(KMeans, ZeroWeightsStillGetNearestCentroids) {
  Rng rng(5);
  std::vector<float> x(3000), w(3000);
  for (int i = 0; i < 3000; i++) {
    x[i] = float(rng.student3());
    w[i] = rng.uniform() < 0.5 ? 0.0f : float(rng.uniform());
  }
  for (int k : {4, 16}) {
    KMeans1D f = sq::kmeans1d_fast(x, w, k, 2), e = sq::kmeans1d_exact(x, w, k);
    check_result(f, x, w, k);
    check_result(e, x, w, k);
    EXPECT_LE(e.cost, f.cost * (1 + 1e-6));
  }
  // Only three values carry weight but k = 8: the others still get centroids (no NaN, no crash).
  std::fill(w.begin(), w.end(), 0.0f);
  w[0] = w[1] = w[2] = 1.0f;
  KMeans1D f = sq::kmeans1d_fast(x, w, 8, 2);
  check_result(f, x, w, 8);
  for (float c : f.centroids) EXPECT_TRUE(std::isfinite(c));
  EXPECT_LT(f.cost, 1e-12);
}

TEST(KMeans, DeterministicForASeed) {
  Rng rng(13);
  std::vector<float> x(4096), w(4096);
  for (int i = 0; i < 4096; i++) x[i] = float(rng.student3()), w[i] = float(rng.uniform());
  KMeans1D a = sq::kmeans1d_fast(x, w, 8, 42), b = sq::kmeans1d_fast(x, w, 8, 42);
  EXPECT_EQ(a.centroids, b.centroids);
  EXPECT_EQ(a.assign, b.assign);
  EXPECT_EQ(a.cost, b.cost);
  EXPECT_EQ(a.iterations, b.iterations);
  // The seeding is what the seed changes.
  EXPECT_NE(sq::kmeans1d_init(x, w, 8, 1), sq::kmeans1d_init(x, w, 8, 2));
  KMeans1D e1 = sq::kmeans1d_exact(x, w, 8), e2 = sq::kmeans1d_exact(x, w, 8);
  EXPECT_EQ(e1.centroids, e2.centroids);
}

TEST(KMeans, NearestCodeMatchesNearestSearch) {
  Rng rng(17);
  for (int n : {1, 2, 5, 8, 16, 17, 64, 256}) {
    std::vector<float> t(n);
    for (float& v : t) v = float(rng.normal());
    std::sort(t.begin(), t.end());
    if (n >= 4) t[2] = t[1] = t[3];  // a run of repeated entries
    std::sort(t.begin(), t.end());
    sq::NearestCode enc(t.data(), n);
    std::vector<float> probes(t.begin(), t.end());  // entries themselves and their midpoints
    for (int j = 0; j + 1 < n; j++) probes.push_back(0.5f * (t[j] + t[j + 1]));
    for (int i = 0; i < 2000; i++) probes.push_back(float(3 * rng.normal()));
    for (float v : probes) {
      int want = sq::kmeans1d_nearest(t.data(), n, v);
      ASSERT_EQ(enc(v), want) << "n " << n << " v " << v;
      // Independent: no entry is strictly nearer, and no lower index is as near.
      for (int j = 0; j < n; j++) {
        ASSERT_GE(std::fabs(double(v) - t[j]), std::fabs(double(v) - t[want]));
        if (j < want) {
          ASSERT_GT(std::fabs(double(v) - t[j]), std::fabs(double(v) - t[want]));
        }
      }
    }
  }
}

TEST(KMeans, BadInputThrows) {
  std::vector<float> x = {1, 2, 3}, w = {1, 1, 1};
  EXPECT_THROW(sq::kmeans1d_fast(x, w, 0, 0), sq::Error);
  EXPECT_THROW(sq::kmeans1d_exact(x, w, 257), sq::Error);
  EXPECT_THROW(sq::kmeans1d_fast(x, std::vector<float>{1, 1}, 2, 0), sq::Error);
  x[1] = std::nanf("");
  EXPECT_THROW(sq::kmeans1d_exact(x, w, 2), sq::Error);
  x[1] = 2;
  w[2] = -1;
  EXPECT_THROW(sq::kmeans1d_fast(x, w, 2, 0), sq::Error);
  w[2] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(sq::kmeans1d_exact(x, w, 2), sq::Error);
}

}  // namespace
