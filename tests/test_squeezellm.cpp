// SqueezeLLM matrix quantization: the global dense-and-sparse selection, exact reconstruction at
// sparse positions, equivalence with plain k-means under uniform sensitivity, weighted error against
// RTN, determinism, bad input; and the RTN lookup-table baseline.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/threadpool.h"
#include "formats/lut.h"
#include "io/safetensors.h"
#include "quant/kmeans.h"
#include "quant/rtn.h"
#include "quant/squeezellm.h"
#include "test_util.h"

namespace {

using sq::LutMatrix;
using sq::SqueezeInput;

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  double uniform() { return sq::uniform01(s); }
  double normal() {
    double u1 = std::max(uniform(), 1e-300), u2 = uniform();
    return std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  double student3() {
    double chi = 0;
    for (int i = 0; i < 3; i++) {
      double z = normal();
      chi += z * z;
    }
    return normal() / std::sqrt(chi / 3);
  }
};

struct Mat {
  int64_t rows, cols;
  std::vector<float> w, f;
  SqueezeInput input(const std::string& name, bool fisher = true) const {
    return SqueezeInput{name, w.data(), fisher ? f.data() : nullptr, rows, cols};
  }
};

// Heavy-tailed weights at a per-matrix scale, log-normal Fisher values.
Mat random_mat(Rng& rng, int64_t rows, int64_t cols, double scale, bool heavy = true) {
  Mat m{rows, cols, std::vector<float>(size_t(rows * cols)), std::vector<float>(size_t(rows * cols))};
  for (auto& v : m.w) v = float(scale * (heavy ? rng.student3() : rng.normal()));
  for (auto& v : m.f) v = float(std::exp(1.5 * rng.normal()));
  return m;
}

// Σ fisher·(w − ŵ)² over the matrix (uniform when fisher is empty).
double weighted_error(const Mat& m, const LutMatrix& q, bool use_fisher = true) {
  std::vector<float> d = sq::lut_dequantize(q);
  double e = 0;
  for (size_t i = 0; i < d.size(); i++) {
    double diff = double(m.w[i]) - d[i];
    e += (use_fisher ? m.f[i] : 1.0) * diff * diff;
  }
  return e;
}

std::set<int64_t> sparse_positions(const LutMatrix& q) {
  std::set<int64_t> s;
  if (q.indptr.empty()) return s;
  for (int64_t r = 0; r < q.rows; r++)
    for (int32_t j = q.indptr[r]; j < q.indptr[r + 1]; j++) s.insert(r * q.cols + q.indices[j]);
  return s;
}

TEST(SqueezeLLM, SparseFractionHitsTargetOverTheModel) {
  Rng rng(1);
  std::vector<Mat> mats;
  const int64_t shapes[][2] = {{64, 96}, {128, 64}, {96, 200}, {40, 300}, {150, 150}, {32, 512}};
  double scale = 0.01;
  for (auto& sh : shapes) {
    mats.push_back(random_mat(rng, sh[0], sh[1], scale, /*heavy=*/mats.size() % 2 == 0));
    scale *= 1.7;
  }
  std::vector<SqueezeInput> in;
  int64_t total = 0;
  for (size_t i = 0; i < mats.size(); i++) {
    in.push_back(mats[i].input("m" + std::to_string(i)));
    total += mats[i].rows * mats[i].cols;
  }
  sq::ThreadPool pool(2);
  sq::ExecContext ctx{&pool, sq::Isa::kScalar};
  for (double target : {0.1, 0.45, 1.0, 3.0}) {
    sq::SparsePlan plan = sq::plan_sparsity(in, target, 0.05, ctx);
    EXPECT_NEAR(plan.sparse_percent(), target, 0.01) << "target " << target;
    EXPECT_GT(plan.total_outliers, 0);
    // Quantize every matrix with its selection and count what actually went sparse.
    sq::SqueezeOptions o;
    o.sparsity = target;
    int64_t nnz = 0;
    std::vector<double> outlier_scores, dense_scores;
    for (size_t i = 0; i < mats.size(); i++) {
      const Mat& m = mats[i];
      LutMatrix q = sq::squeezellm_quantize(in[i], plan.matrices[i], sq::DType::F32, o, ctx);
      nnz += q.nnz();
      ASSERT_EQ(q.nnz(), plan.matrices[i].n_sensitive + plan.matrices[i].n_outliers);
      // Sensitive = exactly the top 0.05% by Fisher (checked against a sort done here).
      const int64_t n = m.rows * m.cols, k = std::llround(0.05 / 100 * double(n));
      EXPECT_EQ(plan.matrices[i].n_sensitive, k);
      std::vector<int64_t> idx(static_cast<size_t>(n));
      for (int64_t e = 0; e < n; e++) idx[size_t(e)] = e;
      std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return m.f[size_t(a)] > m.f[size_t(b)]; });
      std::set<int64_t> sp = sparse_positions(q), sensitive(idx.begin(), idx.begin() + k);
      for (int64_t e : sensitive) EXPECT_TRUE(sp.count(e)) << "top-Fisher weight not sparse";
      // Outliers: the largest |w| / rms(W) among the rest, with one threshold over all matrices.
      double ss = 0;
      for (float v : m.w) ss += double(v) * v;
      const double rms = std::sqrt(ss / double(n));
      for (int64_t e = 0; e < n; e++) {
        if (sensitive.count(e)) continue;
        (sp.count(e) ? outlier_scores : dense_scores).push_back(std::fabs(m.w[size_t(e)]) / rms);
      }
    }
    EXPECT_NEAR(100.0 * double(nnz) / double(total), target, 0.01);
    EXPECT_LE(*std::max_element(dense_scores.begin(), dense_scores.end()),
              *std::min_element(outlier_scores.begin(), outlier_scores.end()) * (1 + 1e-6));
  }
  // sensitive >= sparsity: the sensitive share is capped and there are no outliers.
  sq::SparsePlan capped = sq::plan_sparsity(in, 0.3, 1.0, ctx);
  EXPECT_NEAR(capped.sparse_percent(), 0.3, 0.01);
  EXPECT_EQ(capped.total_outliers, 0);
  EXPECT_DOUBLE_EQ(capped.sensitive_percent, 0.3);
  // sparsity 0: dense only, no sensitive extraction.
  sq::SparsePlan dense = sq::plan_sparsity(in, 0.0, 0.05, ctx);
  EXPECT_EQ(dense.total_sensitive + dense.total_outliers, 0);
  sq::SqueezeOptions o;
  EXPECT_EQ(sq::squeezellm_quantize(in[0], dense.matrices[0], sq::DType::F32, o, ctx).nnz(), 0);
  // Uniform sensitivity (no Fisher): nothing is "sensitive", all sparse weights are outliers.
  std::vector<SqueezeInput> uni;
  for (size_t i = 0; i < mats.size(); i++) uni.push_back(mats[i].input("u", false));
  sq::SparsePlan up = sq::plan_sparsity(uni, 0.45, 0.05, ctx);
  EXPECT_EQ(up.total_sensitive, 0);
  EXPECT_NEAR(up.sparse_percent(), 0.45, 0.01);
}

TEST(SqueezeLLM, DenseAndSparseIsExactAtSparsePositions) {
  Rng rng(2);
  Mat m = random_mat(rng, 48, 160, 0.02);
  for (float& v : m.w) v = sq::bf16_to_f32(sq::f32_to_bf16(v));  // a BF16 checkpoint's weights
  sq::ThreadPool pool(2);
  sq::ExecContext ctx{&pool, sq::Isa::kScalar};
  sq::SqueezeOptions o;
  o.bits = 3;
  o.sparsity = 2.0;
  LutMatrix q = sq::squeezellm_quantize(m.input("mlp.down_proj"), sq::DType::BF16, o, ctx);
  ASSERT_GT(q.nnz(), 0);
  EXPECT_EQ(q.values_dtype, sq::DType::BF16);
  EXPECT_EQ(q.group_size, q.cols);
  std::vector<float> d = sq::lut_dequantize(q);
  for (int64_t r = 0; r < q.rows; r++) {
    const uint16_t* lut = q.lut.data() + r * q.levels();
    int zero = 0;
    for (int c = 1; c < q.levels(); c++)
      if (std::fabs(sq::f16_to_f32(lut[c])) < std::fabs(sq::f16_to_f32(lut[zero]))) zero = c;
    for (int32_t j = q.indptr[r]; j < q.indptr[r + 1]; j++) {
      const size_t e = size_t(r * q.cols + q.indices[j]);
      EXPECT_EQ(d[e], m.w[e]);
      EXPECT_EQ(q.values[j], m.w[e]);
      EXPECT_EQ(q.codes[e], zero) << "dense code at a sparse position is the entry nearest zero";
    }
  }
  // The same through the checkpoint: write (BF16 values), read, load, dequantize and multiply.
  sqtest::TempDir dir;
  sq::SafetensorsWriter w;
  sq::write_lut_linear(w, "L", q);
  w.write(dir / "model.safetensors");
  sq::Checkpoint ckpt(dir.path);
  EXPECT_EQ(ckpt.get("L.sparse_values").dtype, sq::DType::BF16);
  auto lin = sq::load_lut_linear(ckpt, "L", q.rows, q.cols);
  EXPECT_EQ(lin->dequantize(), d);
  EXPECT_NE(lin->describe().find("sparse"), std::string::npos);
  std::vector<float> x(size_t(q.cols)), y(size_t(q.rows));
  for (float& v : x) v = float(rng.normal());
  lin->matmul(x.data(), 1, y.data(), ctx);
  for (int64_t r = 0; r < q.rows; r++) {
    double s = 0, mag = 0;
    for (int64_t c = 0; c < q.cols; c++) {
      s += double(d[size_t(r * q.cols + c)]) * x[size_t(c)];
      mag += std::fabs(double(d[size_t(r * q.cols + c)]) * x[size_t(c)]);
    }
    EXPECT_NEAR(y[size_t(r)], s, 1e-5 * mag + 1e-7);
  }
  // Values not representable in the stated dtype fall back to F32 storage (still exact).
  Mat m2 = random_mat(rng, 8, 64, 0.02);
  LutMatrix q2 = sq::squeezellm_quantize(m2.input("x"), sq::DType::F16, o, ctx);
  ASSERT_GT(q2.nnz(), 0);
  EXPECT_EQ(q2.values_dtype, sq::DType::F32);
}

TEST(SqueezeLLM, UniformSensitivityIsUnweightedKMeans) {
  Rng rng(3);
  Mat m = random_mat(rng, 12, 700, 0.03);
  Mat ones = m;
  std::fill(ones.f.begin(), ones.f.end(), 1.0f);
  sq::ExecContext serial{nullptr, sq::Isa::kScalar};
  for (bool exact : {false, true}) {
    sq::SqueezeOptions o;
    o.bits = 3;
    o.exact = exact;
    o.seed = 77;
    LutMatrix a = sq::squeezellm_quantize(m.input("m", false), sq::DType::F32, o, serial);
    LutMatrix b = sq::squeezellm_quantize(ones.input("m"), sq::DType::F32, o, serial);
    EXPECT_EQ(a.lut, b.lut);
    EXPECT_EQ(a.codes, b.codes);
    for (int64_t r = 0; r < m.rows; r++) {
      std::span<const float> row(m.w.data() + r * m.cols, size_t(m.cols));
      sq::KMeans1D km = exact ? sq::kmeans1d_exact(row, {}, 8)
                              : sq::kmeans1d_fast(row, {}, 8, sq::squeezellm_row_seed(77, r), o.max_iter);
      for (int q = 0; q < 8; q++) EXPECT_EQ(a.lut[size_t(r * 8 + q)], sq::f32_to_f16(km.centroids[q]));
    }
  }
  // A row whose Fisher values are all zero falls back to uniform weights.
  Mat z = m;
  std::fill(z.f.begin() + 3 * z.cols, z.f.begin() + 4 * z.cols, 0.0f);
  sq::SqueezeOptions o;
  o.seed = 5;
  LutMatrix q = sq::squeezellm_quantize(z.input("z"), sq::DType::F32, o, serial);
  sq::KMeans1D km = sq::kmeans1d_fast(std::span<const float>(z.w.data() + 3 * z.cols, size_t(z.cols)), {}, 8,
                                      sq::squeezellm_row_seed(5, 3), o.max_iter);
  for (int c = 0; c < 8; c++) EXPECT_EQ(q.lut[size_t(3 * 8 + c)], sq::f32_to_f16(km.centroids[c]));
}

TEST(SqueezeLLM, WeightedErrorBeatsRtnAndExactBeatsFast) {
  Rng rng(4);
  sq::ThreadPool pool(2);
  sq::ExecContext ctx{&pool, sq::Isa::kScalar};
  for (int bits = 2; bits <= 4; bits++) {
    for (bool heavy : {false, true}) {
      Mat m = random_mat(rng, 32, 512, 0.02, heavy);
      sq::SqueezeOptions o;
      o.bits = bits;
      double sq_fast = weighted_error(m, sq::squeezellm_quantize(m.input("m"), sq::DType::F32, o, ctx));
      o.exact = true;
      double sq_exact = weighted_error(m, sq::squeezellm_quantize(m.input("m"), sq::DType::F32, o, ctx));
      double rtn = weighted_error(m, sq::quantize_rtn_lut(m.w.data(), m.rows, m.cols, bits, 0, ctx));
      EXPECT_LT(sq_fast, rtn) << "bits " << bits << " heavy " << heavy;
      EXPECT_LE(sq_exact, sq_fast * 1.001) << "bits " << bits;  // slack: F16 rounding of the tables
      EXPECT_GE(sq_exact, sq_fast * 0.98) << "fast should be within ~1% of the optimum";
      std::printf("bits %d heavy %d: weighted error squeezellm %.4g (exact %.4g) rtn %.4g\n", bits, heavy, sq_fast,
                  sq_exact, rtn);
    }
  }
}

TEST(SqueezeLLM, DeterministicAndThreadIndependent) {
  Rng rng(5);
  Mat m = random_mat(rng, 40, 256, 0.02);
  sq::SqueezeOptions o;
  o.bits = 3;
  o.sparsity = 0.45;
  o.seed = 9;
  sq::ThreadPool pool(2);
  sq::ExecContext par{&pool, sq::Isa::kScalar}, serial{nullptr, sq::Isa::kScalar};
  int64_t last = 0, calls = 0;
  LutMatrix a = sq::squeezellm_quantize(m.input("m"), sq::DType::F32, o, par, [&](int64_t done) {
    EXPECT_GT(done, last);
    last = done;
    calls++;
  });
  EXPECT_EQ(last, m.rows);
  EXPECT_GE(calls, 1);
  LutMatrix b = sq::squeezellm_quantize(m.input("m"), sq::DType::F32, o, serial);
  EXPECT_EQ(a.lut, b.lut);
  EXPECT_EQ(a.codes, b.codes);
  EXPECT_EQ(a.indices, b.indices);
  EXPECT_EQ(a.values, b.values);
  o.seed = 10;
  LutMatrix c = sq::squeezellm_quantize(m.input("m"), sq::DType::F32, o, par);
  EXPECT_EQ(a.indices, c.indices) << "the sparse selection does not depend on the seed";
}

TEST(SqueezeLLM, BadInputThrows) {
  Rng rng(6);
  Mat m = random_mat(rng, 4, 16, 0.02);
  sq::ExecContext serial{nullptr, sq::Isa::kScalar};
  sq::SqueezeOptions o;
  auto msg = [&](const Mat& mm, const sq::SqueezeOptions& oo) -> std::string {
    try {
      sq::squeezellm_quantize(mm.input("layers.0.q_proj"), sq::DType::F32, oo, serial);
    } catch (const sq::Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(msg(m, o), "");
  Mat a = m;
  a.w[5] = std::nanf("");
  EXPECT_NE(msg(a, o).find("layers.0.q_proj"), std::string::npos);
  Mat b = m;
  b.f[7] = -1;
  EXPECT_NE(msg(b, o).find("Fisher"), std::string::npos);
  o.sparsity = 0.5;
  EXPECT_NE(msg(b, o).find("Fisher"), std::string::npos);
  sq::SqueezeOptions bad = o;
  bad.bits = 9;
  EXPECT_NE(msg(m, bad).find("bits"), std::string::npos);
  bad = o;
  bad.sparsity = 100;
  EXPECT_NE(msg(m, bad).find("sparsity"), std::string::npos);
  bad = o;
  bad.sensitive = -1;
  EXPECT_NE(msg(m, bad).find("sensitive"), std::string::npos);
}

TEST(Rtn, TablesAreRoundedMinMaxLevelsAndCodesNearest) {
  Rng rng(7);
  const int64_t rows = 6, cols = 300;
  std::vector<float> w(size_t(rows * cols));
  for (auto& v : w) v = float(0.05 * rng.student3());
  std::fill(w.begin() + 2 * cols, w.begin() + 3 * cols, 0.25f);  // a constant row
  sq::ThreadPool pool(2);
  sq::ExecContext ctx{&pool, sq::Isa::kScalar};
  for (int bits : {2, 3, 4, 8}) {
    for (int64_t gs : {int64_t(0), int64_t(128)}) {
      LutMatrix q = sq::quantize_rtn_lut(w.data(), rows, cols, bits, gs, ctx);
      ASSERT_NO_THROW(sq::validate_lut_matrix(q));
      const int64_t g = gs ? gs : cols, ng = (cols + g - 1) / g;
      EXPECT_EQ(q.group_size, g);
      EXPECT_EQ(q.nnz(), 0);
      const int L = 1 << bits;
      std::vector<float> d = sq::lut_dequantize(q);
      for (int64_t r = 0; r < rows; r++)
        for (int64_t gi = 0; gi < ng; gi++) {
          const int64_t c0 = gi * g, c1 = std::min(cols, c0 + g);
          float lo = w[size_t(r * cols + c0)], hi = lo;
          for (int64_t c = c0; c < c1; c++) lo = std::min(lo, w[size_t(r * cols + c)]), hi = std::max(hi, w[size_t(r * cols + c)]);
          const double scale = (double(hi) - lo) / (L - 1);
          const uint16_t* t = q.lut.data() + (r * ng + gi) * L;
          for (int k = 0; k < L; k++) EXPECT_EQ(t[k], sq::f32_to_f16(float(lo + k * scale)));
          for (int64_t c = c0; c < c1; c++) {
            const float v = w[size_t(r * cols + c)], got = d[size_t(r * cols + c)];
            for (int k = 0; k < L; k++) ASSERT_LE(std::fabs(double(v) - got), std::fabs(double(v) - sq::f16_to_f32(t[k])));
            // half a step, plus the F16 rounding of the levels (relative 2^-11 of their magnitude)
            ASSERT_LE(std::fabs(double(v) - got), scale / 2 + 1e-3 * (std::fabs(lo) + std::fabs(hi)) + 1e-7);
          }
        }
      for (int64_t c = 0; c < cols; c++) EXPECT_EQ(d[size_t(2 * cols + c)], 0.25f) << "constant row is exact";
    }
  }
  std::vector<float> bad(w);
  bad[3] = INFINITY;
  EXPECT_THROW(sq::quantize_rtn_lut(bad.data(), rows, cols, 3, 0, ctx), sq::Error);
  EXPECT_THROW(sq::quantize_rtn_lut(w.data(), rows, cols, 1, 0, ctx), sq::Error);
}

}  // namespace
