// Quantized kernels (kernels/lut.h, kernels/int4.h, kernels/sparse.h): every fast path against the
// scalar references of formats/lut.h and formats/int4_group.h (which are themselves checked against an
// independent float64 product of the dequantized matrix), on shapes that are not multiples of the
// vector width, packing unit or group size; every ISA this CPU has; 1-, 2- and 3-thread pools.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "formats/int4_group.h"
#include "formats/lut.h"
#include "kernels/int4.h"
#include "kernels/lut.h"
#include "kernels/q8.h"
#include "kernels/sparse.h"
#include "kernels/split_rows.h"

using namespace sq;

namespace {

// 1000 and 1300: several lane blocks (64/128/256 columns) plus a partial one; 1300 spans two 1024-column
// tiles of the prompt path.
constexpr int64_t kCols[] = {1, 7, 31, 64, 129, 172, 1000, 1300};
constexpr int64_t kRows[] = {1, 3, 65};
constexpr int64_t kBatch[] = {1, 2, 3, 5, 8, 9, 64, 67};  // 2..8: small-batch kernels; 9+: tiles

// ||a - b||₂ / ||b||₂ (b all zero: ||a||₂).
double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); i++) {
    num += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
    den += double(b[i]) * double(b[i]);
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Error of products y[j, r] = W[r] · x[j] relative to Σ (|W[r]| |x[j]|)²: int4 sums s·Σ code·x − s·z·Σ x
// cancel, so a single output may be far smaller than its terms, and a plain relative error of one
// value measures that cancellation, not the kernel (f32 rounding is bounded by |W[r]| |x[j]|).
double dot_err(const std::vector<float>& y, const std::vector<float>& ref, const std::vector<float>& w,
               const std::vector<float>& x, int64_t rows, int64_t cols) {
  const int64_t n = int64_t(ref.size()) / rows;
  double num = 0, den = 0;
  for (int64_t j = 0; j < n; j++)
    for (int64_t r = 0; r < rows; r++) {
      double wn = 0, xn = 0;
      for (int64_t k = 0; k < cols; k++) {
        wn += double(w[size_t(r * cols + k)]) * w[size_t(r * cols + k)];
        xn += double(x[size_t(j * cols + k)]) * x[size_t(j * cols + k)];
      }
      const double d = double(y[size_t(j * rows + r)]) - ref[size_t(j * rows + r)];
      num += d * d;
      den += wn * xn;
    }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

std::vector<float> random_x(int64_t n, int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(size_t(n * cols));
  for (auto& v : x) v = g(rng);
  return x;
}

// Y = X · Wᵀ in float64 from a dequantized W [rows, cols].
std::vector<float> product_f64(const std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<float>& x,
                               int64_t n) {
  std::vector<float> y(size_t(n * rows));
  for (int64_t t = 0; t < n; t++)
    for (int64_t r = 0; r < rows; r++) {
      double s = 0;
      for (int64_t c = 0; c < cols; c++) s += double(w[size_t(r * cols + c)]) * double(x[size_t(t * cols + c)]);
      y[size_t(t * rows + r)] = float(s);
    }
  return y;
}

// A random lookup-table matrix: sorted random F16 tables, uniform codes, and (sparse_frac > 0) random
// sparse positions with large exact values (outliers), concentrated in the first rows so that
// balancing by non-zeros differs from balancing by rows.
LutMatrix random_lut(int64_t rows, int64_t cols, int bits, int64_t group_size, double sparse_frac,
                     std::mt19937& rng) {
  LutMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.bits = bits;
  m.group_size = group_size;
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int> code(0, (1 << bits) - 1);
  m.codes.resize(size_t(rows * cols));
  for (auto& c : m.codes) c = uint8_t(code(rng));
  m.lut.resize(size_t(rows * m.n_groups() * m.levels()));
  for (auto& t : m.lut) t = f32_to_f16(u(rng) * 0.1f);
  if (sparse_frac > 0) {
    std::bernoulli_distribution pick_hot(std::min(1.0, sparse_frac * 4)), pick_cold(sparse_frac / 4);
    m.indptr.push_back(0);
    for (int64_t r = 0; r < rows; r++) {
      const bool hot = r < std::max<int64_t>(1, rows / 4);
      for (int64_t c = 0; c < cols; c++)
        if (hot ? pick_hot(rng) : pick_cold(rng)) {
          m.indices.push_back(int32_t(c));
          m.values.push_back(u(rng) * 4.0f);
        }
      m.indptr.push_back(int32_t(m.indices.size()));
    }
    if (m.values.empty()) m.indptr.clear();
  }
  return m;
}

// A random int4 matrix; act_order: g_idx is the natural i / g assignment shuffled.
Int4Matrix random_int4(int64_t rows, int64_t cols, int64_t group_size, bool act_order, std::mt19937& rng) {
  Int4Matrix m;
  m.rows = rows;
  m.cols = cols;
  m.group_size = group_size;
  const int64_t G = m.n_groups();
  std::uniform_int_distribution<int> code(0, 15), zero(1, 15);
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  m.q.resize(size_t(rows * cols));
  for (auto& q : m.q) q = uint8_t(code(rng));
  m.zeros.resize(size_t(G * rows));
  for (auto& z : m.zeros) z = uint8_t(zero(rng));
  m.scales.resize(size_t(G * rows));
  for (auto& s : m.scales) s = f32_to_f16(scale(rng));
  if (act_order) {
    m.g_idx.resize(size_t(cols));
    for (int64_t c = 0; c < cols; c++) m.g_idx[size_t(c)] = group_size == -1 ? 0 : int32_t(c / group_size);
    std::shuffle(m.g_idx.begin(), m.g_idx.end(), rng);
  }
  return m;
}

class QuantKernels : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!isa_supported(GetParam()))
      GTEST_SKIP() << "SKIPPED: this CPU does not support " << isa_name(GetParam()) << "; not tested";
  }
};

std::string param_name(const ::testing::TestParamInfo<Isa>& info) { return isa_name(info.param); }

// Every fast LUT path (bits 2/3/4, dense-only and dense+sparse) equals lut_matmul_ref, and gives the same
// bits with 1, 2 and 3 threads.
TEST_P(QuantKernels, LutMatchesReference) {
  const Isa isa = GetParam();
  std::mt19937 rng(1234);
  ThreadPool p1(1), p2(2), p3(3);
  int cases = 0;
  for (int bits : {2, 3, 4})
    for (double sp : {0.0, 0.02})
      for (int64_t cols : kCols)
        for (int64_t rows : kRows) {
          LutMatrix m = random_lut(rows, cols, bits, cols, sp, rng);
          auto lin = make_lut_linear(m);
          const LutView v = static_cast<const LutLinear&>(*lin).view();
          ASSERT_TRUE(kernels::lut_fast_supported(v));
          for (int64_t n : kBatch) {
            const std::vector<float> x = random_x(n, cols, rng);
            std::vector<float> ref(size_t(n * rows)), y1(ref.size(), NAN), y2(ref.size(), NAN), y3(ref.size(), NAN);
            lut_matmul_ref(v, x.data(), n, ref.data(), 0, rows);
            kernels::lut_matmul(v, x.data(), n, y1.data(), ExecContext{&p1, isa});
            kernels::lut_matmul(v, x.data(), n, y2.data(), ExecContext{&p2, isa});
            lin->matmul(x.data(), n, y3.data(), ExecContext{&p3, isa});
            const std::string what = "bits " + std::to_string(bits) + " sparse " + std::to_string(v.nnz) + " [" +
                                     std::to_string(rows) + ", " + std::to_string(cols) + "] n " + std::to_string(n);
            ASSERT_LE(rel_err(y1, ref), 1e-5) << what;
            ASSERT_EQ(y1, y2) << what << ": 1 vs 2 threads";
            ASSERT_EQ(y1, y3) << what << ": 1 vs 3 threads";
            cases++;
          }
        }
  EXPECT_EQ(cases, 3 * 2 * std::size(kCols) * std::size(kRows) * std::size(kBatch));
}

// The references the fast paths are held to agree with an independent float64 product.
TEST(QuantKernelsRef, ReferencesMatchFloat64) {
  std::mt19937 rng(7);
  for (int bits : {2, 3, 4})
    for (int64_t cols : {int64_t(172), int64_t(1000)}) {  // lut_dequantize reads the unpacked codes
      LutMatrix m = random_lut(65, cols, bits, cols, 0.02, rng);
      auto lin = make_lut_linear(m);
      const std::vector<float> x = random_x(5, cols, rng);
      std::vector<float> y(size_t(5 * 65));
      lut_matmul_ref(static_cast<const LutLinear&>(*lin).view(), x.data(), 5, y.data(), 0, 65);
      EXPECT_LE(rel_err(y, product_f64(lut_dequantize(m), 65, cols, x, 5)), 1e-5) << "bits " << bits;
    }
  Int4Matrix m = random_int4(65, 172, 32, true, rng);
  auto lin = make_int4_linear(m);
  const std::vector<float> x = random_x(5, 172, rng);
  std::vector<float> y(5 * 65);
  int4_matmul_ref(static_cast<const Int4Linear&>(*lin).packed(), x.data(), 5, y.data());
  EXPECT_LE(rel_err(y, product_f64(lin->dequantize(), 65, 172, x, 5)), 1e-5);
}

// int4 groups: g 32 / 128 / -1, with and without act-order, plus g 24 (group starts not on 16-column
// blocks: the reference fallback) against int4_matmul_ref; 1/2/3 threads give the same bits.
TEST_P(QuantKernels, Int4MatchesReference) {
  const Isa isa = GetParam();
  std::mt19937 rng(99);
  ThreadPool p1(1), p2(2), p3(3);
  for (int64_t g : {int64_t(32), int64_t(128), int64_t(-1), int64_t(24)})
    for (bool act : {false, true})
      for (int64_t cols : kCols)
        for (int64_t rows : kRows) {
          Int4Matrix m = random_int4(rows, cols, g, act, rng);
          auto lin = make_int4_linear(m);
          const Int4Packed& p = static_cast<const Int4Linear&>(*lin).packed();
          if (g % 16 == 0 || g == -1) {
            ASSERT_TRUE(kernels::int4_fast_supported(p)) << "g " << g;
          }
          // Both in-memory layouts are exercised: lanes for g128 / g-1, nibble blocks for g32.
          if (cols > 64) {
            ASSERT_EQ(p.lanes.empty(), g == 32 || g == 24) << "g " << g;
          }
          const std::vector<float> w = lin->dequantize();
          for (int64_t n : kBatch) {
            const std::vector<float> x = random_x(n, cols, rng);
            std::vector<float> ref(size_t(n * rows)), y1(ref.size(), NAN), y2(ref.size(), NAN), y3(ref.size(), NAN);
            int4_matmul_ref(p, x.data(), n, ref.data());
            kernels::int4_matmul(p, x.data(), n, y1.data(), ExecContext{&p1, isa});
            kernels::int4_matmul(p, x.data(), n, y2.data(), ExecContext{&p2, isa});
            lin->matmul(x.data(), n, y3.data(), ExecContext{&p3, isa});
            const std::string what = "g " + std::to_string(g) + (act ? " act-order" : "") + " [" +
                                     std::to_string(rows) + ", " + std::to_string(cols) + "] n " + std::to_string(n);
            ASSERT_LE(dot_err(y1, ref, w, x, rows, cols), 1e-5) << what;
            ASSERT_EQ(y1, y2) << what << ": 1 vs 2 threads";
            ASSERT_EQ(y1, y3) << what << ": 1 vs 3 threads";
          }
        }
}

// Layouts without a fast kernel (group tables, 5..8 bits) still dispatch to the reference.
TEST_P(QuantKernels, LutFallbackLayouts) {
  const Isa isa = GetParam();
  std::mt19937 rng(5);
  ThreadPool p2(2);
  struct Case {
    int bits;
    int64_t group;
  };
  for (Case c : {Case{4, 32}, Case{3, 64}, Case{5, 129}, Case{8, 129}}) {
    LutMatrix m = random_lut(65, 129, c.bits, c.group, 0.02, rng);
    auto lin = make_lut_linear(m);
    const LutView v = static_cast<const LutLinear&>(*lin).view();
    EXPECT_FALSE(kernels::lut_fast_supported(v) && c.group < 129);
    for (int64_t n : {int64_t(1), int64_t(5)}) {
      const std::vector<float> x = random_x(n, 129, rng);
      std::vector<float> ref(size_t(n * 65)), y(ref.size(), NAN);
      lut_matmul_ref(v, x.data(), n, ref.data(), 0, 65);
      lin->matmul(x.data(), n, y.data(), ExecContext{&p2, isa});
      EXPECT_LE(rel_err(y, ref), 1e-5) << "bits " << c.bits << " g " << c.group << " n " << n;
    }
  }
}

// The f32-activation kernels; avx512vnni runs them too except for decode (tested below, Q8.*).
INSTANTIATE_TEST_SUITE_P(Isas, QuantKernels, ::testing::Values(Isa::kScalar, Isa::kAvx2, Isa::kAvx512), param_name);

// ---- int8-activation decode (kernels/q8.h) -----------------------------------------------------------

// Shapes for the int8 path: partial 128/256/512-column blocks, a 512-block whose second half is padding
// (300, 700), and LLaMA-like 11008 (21.5 blocks of 512).
constexpr int64_t kQ8Cols[] = {1, 7, 64, 129, 256, 300, 700, 1000, 1300, 11008};

bool have_vnni() { return isa_supported(Isa::kAvx512Vnni); }

// The fast activation quantizer gives the reference's bits (values, scales, sums), tails and zero blocks too.
TEST(Q8, QuantizeMatchesReference) {
  if (!have_vnni()) GTEST_SKIP() << "SKIPPED: this CPU lacks AVX-512 VBMI/VNNI; the fast quantizer is not tested";
  std::mt19937 rng(3);
  for (int64_t block : {kernels::kQ8Int4Block, kernels::kQ8LutBlock})
    for (int64_t cols : kQ8Cols) {
      std::vector<float> x = random_x(1, cols, rng);
      if (cols > block) std::fill(x.begin(), x.begin() + block, 0.0f);  // an all-zero block
      x[size_t(cols - 1)] = 1000.0f;                                    // an outlier
      kernels::Q8Act a;
      kernels::q8_quantize_ref(x.data(), cols, block, a);
      std::vector<int8_t> q(size_t(a.padded), 7);
      std::vector<float> d(a.d.size(), NAN);
      std::vector<int32_t> sum(a.sum.size(), 7);
      kernels::q8_avx512::quantize(x.data(), cols, block, a.padded, q.data(), d.data(), sum.data());
      EXPECT_EQ(q, a.q) << "cols " << cols;
      EXPECT_EQ(d, a.d) << "cols " << cols;
      EXPECT_EQ(sum, a.sum) << "cols " << cols;
      for (int64_t c = 0; c < cols; c++)  // |x - d q| <= d / 2 (+ rounding of x · 127 / max)
        ASSERT_LE(std::fabs(x[size_t(c)] - a.d[size_t(c / block)] * a.q[size_t(c)]),
                  0.5f * a.d[size_t(c / block)] * 1.0001f + 1e-30f);
    }
}

// The int8 path against its scalar reference (≤ 1e-5, the order of float additions differs), through
// lut_matmul's dispatch too; the same bits with 1, 2 and 3 threads.
TEST(Q8, LutMatchesReference) {
  if (!have_vnni()) GTEST_SKIP() << "SKIPPED: this CPU lacks AVX-512 VBMI/VNNI; the int8 kernels are not tested";
  std::mt19937 rng(4321);
  ThreadPool p1(1), p2(2), p3(3);
  for (int bits : {3, 4})
    for (double sp : {0.0, 0.02})
      for (int64_t cols : kQ8Cols)
        for (int64_t rows : kRows) {
          LutMatrix m = random_lut(rows, cols, bits, cols, sp, rng);
          auto lin = make_lut_linear(m);
          const LutView v = static_cast<const LutLinear&>(*lin).view();
          ASSERT_TRUE(kernels::lut_q8_supported(v));
          const std::vector<float> x = random_x(1, cols, rng);
          std::vector<float> ref(static_cast<size_t>(rows)), y1(ref.size(), NAN), y2(ref.size(), NAN), y3(ref.size(), NAN);
          kernels::lut_matvec_q8(v, x.data(), ref.data(), ExecContext{&p2, Isa::kScalar});
          kernels::lut_matvec_q8(v, x.data(), y1.data(), ExecContext{&p1, Isa::kAvx512Vnni});
          kernels::lut_matmul(v, x.data(), 1, y2.data(), ExecContext{&p2, Isa::kAvx512Vnni});
          lin->matmul(x.data(), 1, y3.data(), ExecContext{&p3, Isa::kAvx512Vnni});
          const std::string what = "bits " + std::to_string(bits) + " sparse " + std::to_string(v.nnz) + " [" +
                                   std::to_string(rows) + ", " + std::to_string(cols) + "]";
          ASSERT_LE(rel_err(y1, ref), 1e-5) << what;
          ASSERT_EQ(y1, y2) << what << ": 1 vs 2 threads";
          ASSERT_EQ(y1, y3) << what << ": 1 vs 3 threads";
        }
}

TEST(Q8, Int4MatchesReference) {
  if (!have_vnni()) GTEST_SKIP() << "SKIPPED: this CPU lacks AVX-512 VBMI/VNNI; the int8 kernels are not tested";
  std::mt19937 rng(77);
  ThreadPool p1(1), p2(2), p3(3);
  for (int64_t g : {int64_t(128), int64_t(256), int64_t(-1), int64_t(64)})
    for (bool act : {false, true})
      for (int64_t cols : kQ8Cols)
        for (int64_t rows : kRows) {
          Int4Matrix m = random_int4(rows, cols, g, act, rng);
          auto lin = make_int4_linear(m);
          const Int4Packed& p = static_cast<const Int4Linear&>(*lin).packed();
          const std::vector<float> x = random_x(1, cols, rng);
          std::vector<float> f32(static_cast<size_t>(rows)), y2(f32.size(), NAN), y3(f32.size(), NAN);
          int4_matmul_ref(p, x.data(), 1, f32.data());
          const std::string what = "g " + std::to_string(g) + (act ? " act-order" : "") + " [" +
                                   std::to_string(rows) + ", " + std::to_string(cols) + "]";
          if (g == 64 && cols > 128) {  // group starts off the 128-column activation blocks: the f32 kernels
            ASSERT_FALSE(kernels::int4_q8_supported(p)) << what;
            kernels::int4_matmul(p, x.data(), 1, y2.data(), ExecContext{&p2, Isa::kAvx512Vnni});
            ASSERT_LE(rel_err(y2, f32), 1e-5) << what;
            continue;
          }
          ASSERT_TRUE(kernels::int4_q8_supported(p)) << what;
          std::vector<float> ref(f32.size()), y1(f32.size(), NAN);
          kernels::int4_matvec_q8(p, x.data(), ref.data(), ExecContext{&p2, Isa::kScalar});
          kernels::int4_matvec_q8(p, x.data(), y1.data(), ExecContext{&p1, Isa::kAvx512Vnni});
          kernels::int4_matmul(p, x.data(), 1, y2.data(), ExecContext{&p2, Isa::kAvx512Vnni});
          lin->matmul(x.data(), 1, y3.data(), ExecContext{&p3, Isa::kAvx512Vnni});
          ASSERT_LE(rel_err(y1, ref), 1e-5) << what;
          ASSERT_EQ(y1, y2) << what << ": 1 vs 2 threads";
          ASSERT_EQ(y1, y3) << what << ": 1 vs 3 threads";
        }
}

// Several rows of X at once (batched decode, prompt chunks: n = 2 .. 19, more than one group of
// kQ8MaxCols): each row's result is the matvec's, bit for bit (so a sequence decodes the same in a batch
// as alone), within 1e-5 of the scalar reference row by row, and the same with 1 and 3 threads.
TEST(Q8, SeveralRowsEqualTheMatvecBitForBit) {
  if (!have_vnni()) GTEST_SKIP() << "SKIPPED: this CPU lacks AVX-512 VBMI/VNNI; the int8 kernels are not tested";
  std::mt19937 rng(99);
  ThreadPool p1(1), p3(3);
  auto check = [&](const LinearWeight& lin, int64_t rows, int64_t cols, const std::string& what) {
    for (int64_t n : {int64_t(2), int64_t(5), int64_t(8), int64_t(19)}) {
      const std::vector<float> x = random_x(n, cols, rng);
      std::vector<float> y1(size_t(n * rows), NAN), y3(y1.size(), NAN), one(static_cast<size_t>(rows));
      lin.matmul(x.data(), n, y1.data(), ExecContext{&p1, Isa::kAvx512Vnni});
      lin.matmul(x.data(), n, y3.data(), ExecContext{&p3, Isa::kAvx512Vnni});
      ASSERT_EQ(y1, y3) << what << " n " << n << ": 1 vs 3 threads";
      for (int64_t j = 0; j < n; j++) {
        lin.matmul(x.data() + j * cols, 1, one.data(), ExecContext{&p3, Isa::kAvx512Vnni});
        const std::vector<float> got(y1.begin() + j * rows, y1.begin() + (j + 1) * rows);
        ASSERT_EQ(got, one) << what << " n " << n << ": row " << j << " differs from its matvec";
      }
    }
  };
  for (int bits : {3, 4})
    for (double sp : {0.0, 0.02})
      for (int64_t cols : {int64_t(7), int64_t(300), int64_t(700), int64_t(1300)}) {
        LutMatrix m = random_lut(37, cols, bits, cols, sp, rng);
        auto lin = make_lut_linear(m);
        const LutView v = static_cast<const LutLinear&>(*lin).view();
        check(*lin, 37, cols, "lut" + std::to_string(bits) + (sp > 0 ? " sparse" : "") + " cols " + std::to_string(cols));
        // Against the int8 reference, row by row.
        const std::vector<float> x = random_x(11, cols, rng);
        std::vector<float> y(size_t(11 * 37)), ref(y.size());
        kernels::lut_matmul_q8(v, x.data(), 11, y.data(), ExecContext{&p3, Isa::kAvx512Vnni});
        kernels::lut_matmul_q8(v, x.data(), 11, ref.data(), ExecContext{&p3, Isa::kScalar});
        ASSERT_LE(rel_err(y, ref), 1e-5) << "lut" << bits << " cols " << cols;
      }
  for (int64_t g : {int64_t(128), int64_t(-1)})
    for (bool act : {false, true})
      for (int64_t cols : {int64_t(129), int64_t(700), int64_t(1300)}) {
        Int4Matrix m = random_int4(29, cols, g, act, rng);
        auto lin = make_int4_linear(m);
        const Int4Packed& p = static_cast<const Int4Linear&>(*lin).packed();
        ASSERT_TRUE(kernels::int4_q8_supported(p));
        check(*lin, 29, cols, "int4 g" + std::to_string(g) + (act ? " act-order" : "") + " cols " + std::to_string(cols));
        const std::vector<float> x = random_x(11, cols, rng);
        std::vector<float> y(size_t(11 * 29)), ref(y.size());
        kernels::int4_matmul_q8(p, x.data(), 11, y.data(), ExecContext{&p3, Isa::kAvx512Vnni});
        kernels::int4_matmul_q8(p, x.data(), 11, ref.data(), ExecContext{&p3, Isa::kScalar});
        ASSERT_LE(rel_err(y, ref), 1e-5) << "int4 g" << g << " cols " << cols;
      }
}

// What int8 activations and int8 tables cost in accuracy: the scalar int8 reference against the f32
// reference, on Gaussian activations (relative error about 1%).
TEST(Q8, ReferenceCloseToF32) {
  std::mt19937 rng(11);
  ThreadPool p2(2);
  for (int bits : {3, 4})
    for (int64_t cols : {int64_t(300), int64_t(4096)}) {
      LutMatrix m = random_lut(64, cols, bits, cols, 0.0, rng);
      auto lin = make_lut_linear(m);
      const LutView v = static_cast<const LutLinear&>(*lin).view();
      const std::vector<float> x = random_x(1, cols, rng);
      std::vector<float> f32(64), q8(64);
      lut_matmul_ref(v, x.data(), 1, f32.data(), 0, 64);
      kernels::lut_matvec_q8(v, x.data(), q8.data(), ExecContext{&p2, Isa::kScalar});
      const double e = rel_err(q8, f32);
      EXPECT_LE(e, 0.02) << "bits " << bits << " cols " << cols;
      EXPECT_GT(e, 0.0) << "bits " << bits << ": int8 rounding should show";
    }
  Int4Matrix m = random_int4(64, 4096, 128, true, rng);
  auto lin = make_int4_linear(m);
  const Int4Packed& p = static_cast<const Int4Linear&>(*lin).packed();
  const std::vector<float> x = random_x(1, 4096, rng);
  std::vector<float> f32(64), q8(64);
  int4_matmul_ref(p, x.data(), 1, f32.data());
  kernels::int4_matvec_q8(p, x.data(), q8.data(), ExecContext{&p2, Isa::kScalar});
  EXPECT_LE(rel_err(q8, f32), 0.02);
}

// The int8 path is only taken for decode at kAvx512Vnni; asking it for another ISA is an error.
TEST(Q8, RefusesOtherIsas) {
  std::mt19937 rng(1);
  auto lin = make_lut_linear(random_lut(4, 64, 3, 64, 0.0, rng));
  const LutView v = static_cast<const LutLinear&>(*lin).view();
  std::vector<float> x(64, 1.0f), y(4);
  ThreadPool p1(1);
  EXPECT_THROW(kernels::lut_matvec_q8(v, x.data(), y.data(), ExecContext{&p1, Isa::kAvx2}), Error);
}

// csr_add_matmul adds exactly the sparse product, threaded or not.
TEST(SparseKernel, AddsSparseProduct) {
  std::mt19937 rng(3);
  const int64_t rows = 300, cols = 77, n = 3;
  std::vector<int32_t> indptr{0}, indices;
  std::vector<float> vals;
  std::uniform_real_distribution<float> u(-1, 1);
  for (int64_t r = 0; r < rows; r++) {
    for (int64_t c = 0; c < cols; c++)
      if ((r < 30 && c % 2 == 0) || (c == r % cols)) {
        indices.push_back(int32_t(c));
        vals.push_back(u(rng));
      }
    indptr.push_back(int32_t(indices.size()));
  }
  const std::vector<float> x = random_x(n, cols, rng);
  std::vector<float> dense(size_t(rows * cols), 0.0f);
  for (int64_t r = 0; r < rows; r++)
    for (int32_t j = indptr[size_t(r)]; j < indptr[size_t(r) + 1]; j++) dense[size_t(r * cols + indices[j])] = vals[j];
  std::vector<float> want = product_f64(dense, rows, cols, x, n);
  for (auto& w : want) w += 1.0f;
  ThreadPool p3(3);
  for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &p3}) {
    std::vector<float> y(size_t(n * rows), 1.0f);
    kernels::csr_add_matmul(rows, cols, indptr.data(), indices.data(), vals.data(), x.data(), n, y.data(), pool);
    EXPECT_LE(rel_err(y, want), 1e-6);
  }
}

// Many activation rows take the transposed-block path: equal to the gather loop (the reference) and to
// float64, for n spanning whole blocks of 64 and a partial one, threaded or not.
TEST(SparseKernel, ManyRowsMatchGatherLoop) {
  std::mt19937 rng(5);
  const int64_t rows = 203, cols = 517;
  std::vector<int32_t> indptr{0}, indices;
  std::vector<float> vals;
  std::uniform_real_distribution<float> u(-1, 1);
  std::bernoulli_distribution pick(0.03);
  for (int64_t r = 0; r < rows; r++) {
    for (int64_t c = 0; c < cols; c++)
      if (pick(rng) || (r < 5 && c % 3 == 0)) {
        indices.push_back(int32_t(c));
        vals.push_back(u(rng));
      }
    indptr.push_back(int32_t(indices.size()));
  }
  std::vector<float> dense(size_t(rows * cols), 0.0f);
  for (int64_t r = 0; r < rows; r++)
    for (int32_t j = indptr[size_t(r)]; j < indptr[size_t(r) + 1]; j++) dense[size_t(r * cols + indices[j])] = vals[j];
  ThreadPool p2(2);
  for (int64_t n : {8, 16, 20, 33, 64, 130}) {
    const std::vector<float> x = random_x(n, cols, rng);
    std::vector<float> want = product_f64(dense, rows, cols, x, n);
    for (auto& w : want) w += 0.25f;
    std::vector<float> ref(size_t(n * rows), 0.25f);
    kernels::csr_add_rows(rows, cols, indptr.data(), indices.data(), vals.data(), x.data(), n, ref.data(), 0, rows);
    for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), static_cast<ThreadPool*>(&p2)}) {
      std::vector<float> y(size_t(n * rows), 0.25f);
      kernels::csr_add_matmul(rows, cols, indptr.data(), indices.data(), vals.data(), x.data(), n, y.data(), pool);
      EXPECT_LE(rel_err(y, ref), 1e-6) << "n = " << n;
      EXPECT_LE(rel_err(y, want), 1e-6) << "n = " << n;
    }
  }
}

// The AVX-512 sparse rows of the int8 decode path equal the scalar loop (rows of 0..40 non-zeros: whole
// steps of 16, masked tails, empty rows), on a sub-range of rows only.
TEST(SparseKernel, Avx512RowsMatchScalar) {
  if (!have_vnni()) GTEST_SKIP() << "SKIPPED: this CPU lacks AVX-512 VBMI/VNNI; the int8 kernels are not tested";
  std::mt19937 rng(9);
  const int64_t rows = 120, cols = 3000;
  std::vector<int32_t> indptr{0}, indices;
  std::vector<float> vals;
  std::uniform_real_distribution<float> u(-1, 1);
  for (int64_t r = 0; r < rows; r++) {
    std::vector<int32_t> c(static_cast<size_t>(cols));
    std::iota(c.begin(), c.end(), 0);
    std::shuffle(c.begin(), c.end(), rng);
    c.resize(static_cast<size_t>(r % 41));
    std::sort(c.begin(), c.end());
    for (int32_t k : c) {
      indices.push_back(k);
      vals.push_back(u(rng));
    }
    indptr.push_back(int32_t(indices.size()));
  }
  const std::vector<float> x = random_x(1, cols, rng);
  std::vector<float> want(static_cast<size_t>(rows), 0.5f), got(want);
  kernels::csr_add_rows(rows, cols, indptr.data(), indices.data(), vals.data(), x.data(), 1, want.data(), 7, 113);
  kernels::q8_avx512::csr_rows(indptr.data(), indices.data(), vals.data(), x.data(), got.data(), 7, 113);
  for (int64_t r = 0; r < rows; r++) {
    float mag = 0.5f;
    for (int32_t j = indptr[size_t(r)]; j < indptr[size_t(r) + 1]; j++)
      mag += std::fabs(vals[size_t(j)] * x[size_t(indices[size_t(j)])]);
    if (r < 7 || r >= 113) {
      EXPECT_EQ(got[size_t(r)], 0.5f) << "row " << r << " outside the range was touched";
    }
    EXPECT_NEAR(got[size_t(r)], want[size_t(r)], 1e-6f * mag) << "row " << r;
  }
}

// Guided chunks cover the rows in order, on quantum boundaries, largest first, with equal work per
// chunk where rows carry unequal work (a few heavy rows, as clustered sparse non-zeros).
TEST(SplitRows, GuidedChunksByWork) {
  const size_t rows = 1003, quantum = 4;
  auto heavy = [](size_t r) { return r < 40 ? size_t(100) : size_t(1); };
  std::vector<size_t> cum{0};
  for (size_t r = 0; r < rows; r++) cum.push_back(cum.back() + 1000 + heavy(r) * 500);
  auto work = [&](size_t r) { return cum[r]; };
  for (int threads : {2, 3, 8}) {
    size_t arr[kernels::kMaxChunks + 1];
    const size_t k = kernels::guided_chunks(rows, quantum, work, 5000, threads, arr);
    const std::vector<size_t> b(arr, arr + k + 1);
    ASSERT_GE(b.size(), 3u);
    EXPECT_EQ(b.front(), 0u);
    EXPECT_EQ(b.back(), rows);
    size_t prev_work = cum[rows];
    for (size_t i = 0; i + 1 < b.size(); i++) {
      ASSERT_LT(b[i], b[i + 1]);
      if (i + 2 < b.size()) {
        EXPECT_EQ(b[i + 1] % quantum, 0u);
      }
      const size_t w = cum[b[i + 1]] - cum[b[i]];
      // Each chunk about (remaining work) / (2 · threads), within one quantum of rows; never growing.
      const size_t remaining = cum[rows] - cum[b[i]];
      const size_t want = std::max<size_t>(5000, remaining / (2 * size_t(threads)));
      if (i + 2 < b.size()) {
        EXPECT_GE(w, want) << "chunk " << i;
        EXPECT_LE(w, want + quantum * (1000 + 100 * 500)) << "chunk " << i;
      }
      EXPECT_LE(w, prev_work + quantum * (1000 + 100 * 500)) << "chunk " << i;
      prev_work = w;
    }
    // The heavy rows (~60% of the work) do not all land in the first chunk, as an equal-rows split would.
    EXPECT_LT(b[1], 40u);
  }
  // Little work: one chunk.
  size_t arr[kernels::kMaxChunks + 1];
  ASSERT_EQ(kernels::guided_chunks(10, 4, [](size_t r) { return r; }, 5000, 2, arr), 1u);
  EXPECT_EQ(arr[1], 10u);
  // More chunks than kMaxChunks would give: the last one takes the rest.
  const size_t k = kernels::guided_chunks(100000, 1, [](size_t r) { return r * 1000; }, 1000, 64, arr);
  EXPECT_EQ(k, kernels::kMaxChunks);
  EXPECT_EQ(arr[k], 100000u);
  for (size_t i = 0; i < k; i++) EXPECT_LT(arr[i], arr[i + 1]);
}

}  // namespace
