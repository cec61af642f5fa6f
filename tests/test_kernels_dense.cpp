// Dense F32/F16/BF16 kernels: every ISA this CPU has against the scalar reference and against an
// independent float64 sum; exact conversion of every F16/BF16 bit pattern; thread-count independence;
// DenseLinear's validation; the ISA names and SQUEEZE_ISA handling of make_context.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/bandwidth.h"
#include "core/context.h"
#include "core/dtype.h"
#include "core/error.h"
#include "formats/dense.h"
#include "io/safetensors.h"
#include "kernels/dense.h"
#include "test_util.h"

using namespace sq;

namespace sq {  // readable test parameters in gtest's output
void PrintTo(Isa isa, std::ostream* os) { *os << isa_name(isa); }
void PrintTo(DType dt, std::ostream* os) { *os << dtype_name(dt); }
}  // namespace sq

namespace {

// Skips the test visibly when the CPU lacks `isa`.
#define SKIP_UNLESS_SUPPORTED(isa)                                                             \
  do {                                                                                         \
    if (!isa_supported(isa))                                                                   \
      GTEST_SKIP() << "SKIPPED: this CPU does not support " << isa_name(isa) << "; not tested"; \
  } while (0)

// W[rows, cols] stored as `dt`, starting `offset` bytes into `storage` (a mapped tensor need not be
// aligned), plus its values as float64 (after rounding to dt) for the independent expectation.
struct Weights {
  std::vector<uint8_t> storage;
  size_t offset = 0;
  std::vector<double> values;
  const void* data() const { return storage.data() + offset; }
};

Weights make_weights(DType dt, size_t rows, size_t cols, std::mt19937& rng, size_t offset = 0) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Weights w;
  w.offset = offset;
  w.storage.resize(offset + rows * cols * dtype_size(dt));
  w.values.resize(rows * cols);
  uint8_t* p = w.storage.data() + offset;
  for (size_t i = 0; i < rows * cols; i++) {
    float v = u(rng);
    if (dt == DType::F32) {
      std::memcpy(p + 4 * i, &v, 4);
    } else {
      uint16_t h = dt == DType::F16 ? f32_to_f16(v) : f32_to_bf16(v);
      std::memcpy(p + 2 * i, &h, 2);
      v = dt == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
    }
    w.values[i] = v;
  }
  return w;
}

std::vector<float> random_x(size_t n, size_t cols, std::mt19937& rng) {
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(n * cols);
  for (auto& v : x) v = g(rng);
  return x;
}

// y[j*rows + r] in float64 and the scale Σ|w||x| the f32 rounding error is proportional to.
void expect_f64(const Weights& w, size_t rows, size_t cols, const std::vector<float>& x, size_t n,
                std::vector<double>* y, std::vector<double>* scale) {
  y->assign(n * rows, 0.0);
  scale->assign(n * rows, 0.0);
  for (size_t j = 0; j < n; j++)
    for (size_t r = 0; r < rows; r++) {
      double s = 0, a = 0;
      for (size_t k = 0; k < cols; k++) {
        double p = w.values[r * cols + k] * double(x[j * cols + k]);
        s += p;
        a += std::fabs(p);
      }
      (*y)[j * rows + r] = s;
      (*scale)[j * rows + r] = a;
    }
}

const char* dt_name(DType dt) { return dt == DType::F32 ? "F32" : dt == DType::F16 ? "F16" : "BF16"; }

// ---- fast paths vs the reference ---------------------------------------------------------------------

class DenseIsaTest : public ::testing::TestWithParam<std::tuple<Isa, DType>> {};

// Relative error (against Σ|w·x|, the scale of the f32 rounding error, so cancellation cannot make a
// correct sum look wrong) between each fast path and the scalar reference, and between both and float64.
TEST_P(DenseIsaTest, MatchesReferenceOnOddShapes) {
  const auto [isa, dt] = GetParam();
  SKIP_UNLESS_SUPPORTED(isa);
  std::mt19937 rng(1234 + int(dt));
  ThreadPool pool1(1);
  const ExecContext fast{&pool1, isa}, ref{&pool1, Isa::kScalar};
  const size_t kCols[] = {1, 7, 31, 64, 172, 1031, 4099};  // 1031: two column blocks, X past L2
  const size_t kRows[] = {1, 3, 65};
  const size_t kN[] = {1, 2, 5, 8, 13, 32, 33, 64, 67};  // matvec, direct 2-3, small batches, tiles
  double worst = 0;
  for (size_t cols : kCols)
    for (size_t rows : kRows) {
      Weights w = make_weights(dt, rows, cols, rng, /*offset=*/2);  // 2-byte aligned, like a packed file
      for (size_t n : kN) {
        if (rows * cols * n > 6'000'000) continue;  // keeps the float64 check fast (4099 × 65 × 1, 2, 5 stay)
        std::vector<float> x = random_x(n, cols, rng);
        std::vector<double> e, scale;
        expect_f64(w, rows, cols, x, n, &e, &scale);
        std::vector<float> y(n * rows, NAN), yr(n * rows, NAN);
        kernels::dense_matmul(dt, w.data(), rows, cols, x.data(), n, y.data(), fast);
        kernels::dense_matmul(dt, w.data(), rows, cols, x.data(), n, yr.data(), ref);
        for (size_t i = 0; i < n * rows; i++) {
          const double tol = 1e-5 * scale[i] + 1e-30;
          const double d_ref = std::fabs(double(y[i]) - double(yr[i]));
          const double d_f64 = std::fabs(double(y[i]) - e[i]);
          worst = std::max(worst, d_ref / (scale[i] + 1e-30));
          ASSERT_LE(d_ref, tol) << dt_name(dt) << " " << isa_name(isa) << " rows " << rows << " cols " << cols
                                << " n " << n << " at j " << i / rows << " r " << i % rows << ": " << y[i]
                                << " vs reference " << yr[i];
          ASSERT_LE(d_f64, tol) << "vs float64, rows " << rows << " cols " << cols << " n " << n;
          ASSERT_LE(std::fabs(double(yr[i]) - e[i]), tol) << "reference vs float64";
        }
      }
    }
  RecordProperty("worst_relative_error", std::to_string(worst));
}

// The kernels never split a sum along k across threads, so the thread count cannot change a result:
// 1-, 2- and 3-thread pools must agree bit for bit (uneven row counts give uneven last chunks).
TEST_P(DenseIsaTest, ThreadCountDoesNotChangeResults) {
  const auto [isa, dt] = GetParam();
  SKIP_UNLESS_SUPPORTED(isa);
  std::mt19937 rng(99);
  ThreadPool p1(1), p2(2), p3(3);
  for (size_t rows : {65, 517}) {
    const size_t cols = 300;
    Weights w = make_weights(dt, rows, cols, rng);
    for (size_t n : {1, 3, 9}) {
      std::vector<float> x = random_x(n, cols, rng);
      std::vector<float> y1(n * rows), y2(n * rows), y3(n * rows);
      kernels::dense_matmul(dt, w.data(), rows, cols, x.data(), n, y1.data(), {&p1, isa});
      kernels::dense_matmul(dt, w.data(), rows, cols, x.data(), n, y2.data(), {&p2, isa});
      kernels::dense_matmul(dt, w.data(), rows, cols, x.data(), n, y3.data(), {&p3, isa});
      for (size_t i = 0; i < n * rows; i++) {
        ASSERT_EQ(y1[i], y2[i]) << "rows " << rows << " n " << n << " i " << i;
        ASSERT_EQ(y1[i], y3[i]) << "rows " << rows << " n " << n << " i " << i;
      }
    }
  }
}

// Every finite F16 (or BF16) bit pattern (F32: random finite patterns), W [1024, 64], times one-hot rows
// of X: each output is one weight times 1 plus exact zeros, so it must equal the scalar conversion
// exactly. n = 64 (identity)
// goes through the tiled path, n = 1 and n = 3 through the streaming path.
TEST_P(DenseIsaTest, ConvertsEveryBitPatternExactly) {
  const auto [isa, dt] = GetParam();
  SKIP_UNLESS_SUPPORTED(isa);
  const size_t rows = 1024, cols = 64;
  std::vector<uint8_t> w(rows * cols * dtype_size(dt));
  std::vector<float> wf(rows * cols);
  std::mt19937 rng(7);
  for (size_t i = 0; i < wf.size(); i++) {
    float f;
    if (dt == DType::F32) {  // random bit patterns: every exponent, subnormals included
      uint32_t u = rng();
      std::memcpy(&f, &u, 4);
      if (!std::isfinite(f)) f = 0;  // inf · 0 would be NaN
      std::memcpy(w.data() + 4 * i, &f, 4);
    } else {
      uint16_t h = uint16_t(i);
      f = dt == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
      if (!std::isfinite(f)) h = 0, f = 0;
      std::memcpy(w.data() + 2 * i, &h, 2);
    }
    wf[i] = f;
  }
  ThreadPool pool(2);
  const ExecContext ctx{&pool, isa};
  std::vector<float> x(cols * cols, 0.0f);
  for (size_t j = 0; j < cols; j++) x[j * cols + j] = 1.0f;
  std::vector<float> y(cols * rows);
  kernels::dense_matmul(dt, w.data(), rows, cols, x.data(), cols, y.data(), ctx);
  for (size_t j = 0; j < cols; j++)
    for (size_t r = 0; r < rows; r++)
      ASSERT_EQ(y[j * rows + r], wf[r * cols + j]) << "pattern 0x" << std::hex << (r * cols + j);
  for (size_t j0 : {0, 5, 61}) {  // n = 1 and n = 3 (columns j0..j0+2)
    for (size_t n : {1, 3}) {
      std::vector<float> y1(n * rows);
      kernels::dense_matmul(dt, w.data(), rows, cols, x.data() + j0 * cols, n, y1.data(), ctx);
      for (size_t c = 0; c < n; c++)
        for (size_t r = 0; r < rows; r++)
          ASSERT_EQ(y1[c * rows + r], wf[r * cols + j0 + c]) << "n " << n << " pattern 0x" << std::hex
                                                              << (r * cols + j0 + c);
    }
  }
}

std::string param_name(const ::testing::TestParamInfo<std::tuple<Isa, DType>>& info) {
  return isa_name(std::get<0>(info.param)) + "_" + dt_name(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(AllIsas, DenseIsaTest,
                         ::testing::Combine(::testing::Values(Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Vnni,
                                                              Isa::kBest),
                                            ::testing::Values(DType::F32, DType::F16, DType::BF16)),
                         param_name);

// ---- edge cases and errors -----------------------------------------------------------------------------

TEST(DenseKernel, EmptyAndDegenerateSizes) {
  ThreadPool pool(2);
  const ExecContext ctx{&pool, Isa::kBest};
  std::vector<uint16_t> w(12, f32_to_f16(1.0f));
  float x[4] = {1, 2, 3, 4};
  float y[3] = {NAN, NAN, NAN};
  kernels::dense_matmul(DType::F16, w.data(), 3, 0, x, 1, y, ctx);  // cols 0: empty sums are 0
  for (float v : y) EXPECT_EQ(v, 0.0f);
  kernels::dense_matmul(DType::F16, w.data(), 3, 4, x, 0, y, ctx);  // n 0: nothing to do
  kernels::dense_matmul(DType::F16, w.data(), 3, 4, x, 1, y, {nullptr, Isa::kBest});  // no pool: serial
  for (float v : y) EXPECT_EQ(v, 10.0f);
}

TEST(DenseKernel, RejectsBadDtypeAndUnsupportedIsa) {
  ThreadPool pool(1);
  std::vector<uint8_t> w(16);
  float x[4] = {}, y[4];
  EXPECT_THROW(kernels::dense_matmul(DType::I8, w.data(), 4, 4, x, 1, y, {&pool, Isa::kScalar}), Error);
  if (isa_supported(Isa::kAvx512)) GTEST_SKIP() << "SKIPPED: CPU has AVX-512, cannot test the refusal";
  try {
    kernels::dense_matmul(DType::F32, w.data(), 1, 4, x, 1, y, {&pool, Isa::kAvx512});
    FAIL() << "forcing an unsupported ISA must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not support"), std::string::npos) << e.what();
  }
}

// ---- DenseLinear ---------------------------------------------------------------------------------------

TEST(DenseLinear, FromTensorViewCopiesAndLeavesOrdinaryMemoryAlone) {
  std::mt19937 rng(5);
  const size_t rows = 37, cols = 45;
  Weights w = make_weights(DType::BF16, rows, cols, rng);
  TensorView tv;
  tv.name = "layers.0.mlp.up_proj.weight";
  tv.file = "model.safetensors";
  tv.dtype = DType::BF16;
  tv.shape = {int64_t(rows), int64_t(cols)};
  tv.data = w.data();
  tv.nbytes = rows * cols * 2;
  auto lin = make_dense_linear(tv);
  EXPECT_EQ(lin->rows(), int64_t(rows));
  EXPECT_EQ(lin->cols(), int64_t(cols));
  EXPECT_EQ(lin->describe(), "BF16");
  EXPECT_EQ(lin->weight_bytes(), rows * cols * 2);
  // A copy (the engine's kernels run on process memory); the source is not a file mapping, so it is
  // left as it was (release_pages would zero ordinary memory).
  EXPECT_NE(static_cast<const DenseLinear&>(*lin).data(), w.data());
  EXPECT_EQ(std::memcmp(static_cast<const DenseLinear&>(*lin).data(), w.data(), rows * cols * 2), 0);
  std::vector<float> row(cols);
  lin->dequant_row(7, row.data());
  for (size_t k = 0; k < cols; k++) EXPECT_EQ(row[k], float(w.values[7 * cols + k]));
  EXPECT_THROW(lin->dequant_row(int64_t(rows), row.data()), Error);

  auto oc = make_context(2, "best");
  std::vector<float> x = random_x(2, cols, rng), y(2 * rows);
  lin->matmul(x.data(), 2, y.data(), oc.ctx);
  std::vector<double> e, scale;
  expect_f64(w, rows, cols, x, 2, &e, &scale);
  for (size_t i = 0; i < y.size(); i++) EXPECT_NEAR(y[i], e[i], 1e-5 * scale[i]);
}

TEST(DenseLinear, RejectsBadTensorsNamingThem) {
  std::vector<uint8_t> buf(4 * 6 * 4);
  TensorView tv;
  tv.name = "lm_head.weight";
  tv.file = "shard-2.safetensors";
  tv.data = buf.data();
  auto expect_error = [&](const char* want) {
    try {
      make_dense_linear(tv);
      ADD_FAILURE() << "expected an error containing '" << want << "'";
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_NE(m.find("shard-2.safetensors"), std::string::npos) << m;
      EXPECT_NE(m.find("lm_head.weight"), std::string::npos) << m;
      EXPECT_NE(m.find(want), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << "one-line message: " << m;
    }
  };
  tv.dtype = DType::F32, tv.shape = {4, 6, 1}, tv.nbytes = 96;
  expect_error("2-D");
  tv.dtype = DType::I32, tv.shape = {4, 6};
  expect_error("F32, F16 or BF16");
  tv.dtype = DType::F16, tv.shape = {4, 6}, tv.nbytes = 96;
  expect_error("expected 48");
  tv.dtype = DType::F16, tv.shape = {0, 6}, tv.nbytes = 0;
  expect_error("empty");
  tv.dtype = DType::F32, tv.shape = {4, 6}, tv.nbytes = 96;
  EXPECT_NO_THROW(make_dense_linear(tv));
}

TEST(DenseLinear, OwnedStorage) {
  std::vector<float> v = {1.5f, -2.0f, 0.25f, 3.0f, 1e-3f, 7.0f};  // [2, 3]
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    auto lin = make_dense_linear_f32(v, 2, 3, dt);
    EXPECT_EQ(lin->describe(), dt_name(dt));
    EXPECT_EQ(lin->weight_bytes(), 6 * dtype_size(dt));
    float x[3] = {1, 2, 4}, y[2];
    auto oc = make_context(1, "scalar");
    lin->matmul(x, 1, y, oc.ctx);
    auto r = [&](float f) {
      return dt == DType::F32 ? f : dt == DType::F16 ? f16_to_f32(f32_to_f16(f)) : bf16_to_f32(f32_to_bf16(f));
    };
    EXPECT_FLOAT_EQ(y[0], r(1.5f) - 2 * r(2.0f) + 4 * r(0.25f));
    EXPECT_FLOAT_EQ(y[1], r(3.0f) + 2 * r(1e-3f) + 4 * r(7.0f));
  }
  EXPECT_THROW(make_dense_linear_owned(DType::F16, 2, 3, std::vector<uint8_t>(11)), Error);
  EXPECT_THROW(make_dense_linear_owned(DType::U8, 2, 3, std::vector<uint8_t>(6)), Error);
  EXPECT_THROW(make_dense_linear_f32(v, 4, 3), Error);
}

// ---- ISA names, make_context, bandwidth ---------------------------------------------------------------

TEST(Isa, NamesRoundTripAndUnknownIsAnError) {
  for (Isa i : {Isa::kBest, Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Vnni})
    EXPECT_EQ(isa_from_name(isa_name(i)), i);
  EXPECT_THROW(isa_from_name("sse9"), Error);
  EXPECT_TRUE(isa_supported(Isa::kScalar));
  EXPECT_TRUE(isa_supported(Isa::kBest));
  EXPECT_TRUE(isa_supported(best_isa()));
  EXPECT_EQ(resolve_isa(Isa::kBest), best_isa());
  EXPECT_EQ(resolve_isa(Isa::kScalar), Isa::kScalar);
  EXPECT_EQ(hwy_isa(Isa::kAvx512Vnni), Isa::kAvx512);
  if (isa_supported(Isa::kAvx512Vnni)) {
    EXPECT_TRUE(isa_supported(Isa::kAvx512));
  }
  std::cout << "CPU supports: scalar" << (isa_supported(Isa::kAvx2) ? " avx2" : "")
            << (isa_supported(Isa::kAvx512) ? " avx512" : "")
            << (isa_supported(Isa::kAvx512Vnni) ? " avx512vnni" : "") << "; best = " << isa_name(best_isa()) << "\n";
}

// Sets SQUEEZE_ISA for one scope and restores the previous value.
struct ScopedEnv {
  std::string name, old;
  bool had;
  ScopedEnv(const char* n, const char* v) : name(n) {
    const char* o = std::getenv(n);
    had = o != nullptr;
    if (had) old = o;
    if (v)
      setenv(n, v, 1);
    else
      unsetenv(n);
  }
  ~ScopedEnv() {
    if (had)
      setenv(name.c_str(), old.c_str(), 1);
    else
      unsetenv(name.c_str());
  }
};

TEST(Isa, MakeContextReadsSqueezeIsa) {
  {
    ScopedEnv e("SQUEEZE_ISA", "scalar");
    auto oc = make_context(3);
    EXPECT_EQ(oc.ctx.isa, Isa::kScalar);
    EXPECT_EQ(oc.ctx.pool->size(), 3);
    EXPECT_EQ(make_context(1, "best").ctx.isa, Isa::kBest);  // an explicit name wins over the environment
  }
  {
    ScopedEnv e("SQUEEZE_ISA", nullptr);
    EXPECT_EQ(make_context(1).ctx.isa, Isa::kBest);
  }
  {
    ScopedEnv e("SQUEEZE_ISA", "sse9");
    try {
      make_context(1);
      FAIL() << "unknown ISA must throw";
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find("SQUEEZE_ISA=sse9"), std::string::npos) << err.what();
    }
  }
  if (isa_supported(Isa::kAvx512)) GTEST_SKIP() << "SKIPPED: CPU has AVX-512, cannot test the refusal";
  ScopedEnv e("SQUEEZE_ISA", "avx512");
  try {
    make_context(1);
    FAIL() << "forcing an unsupported ISA must throw";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("SQUEEZE_ISA=avx512: this CPU does not support it"), std::string::npos)
        << err.what();
  }
}

TEST(Bandwidth, MeasuresSomethingPlausible) {
  ThreadPool pool(2);
  double gbs = measure_read_bandwidth_gbs(pool, size_t(16) << 20, 2);  // small: a smoke test, not a figure
  EXPECT_TRUE(std::isfinite(gbs));
  EXPECT_GT(gbs, 0.1);
  EXPECT_LT(gbs, 10000.0);
  EXPECT_THROW(measure_read_bandwidth_gbs(pool, 100, 1), Error);
}

}  // namespace
