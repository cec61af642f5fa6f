// GPTQ-compatible int4 groups: the on-disk convention (pinned by hand-built tensors), write -> load
// round trips, act-order g_idx, the scalar matmul, bad-input errors, and RTN quantization.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <random>

#include "core/dtype.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "formats/int4_group.h"
#include "io/safetensors.h"
#include "quant/int4_quant.h"
#include "test_util.h"

namespace {

using sq::Int4Matrix;
using nlohmann::json;

void expect_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected sq::Error containing '" << needle << "'";
  } catch (const sq::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

Int4Matrix random_matrix(int64_t rows, int64_t cols, int64_t gs, uint32_t seed) {
  std::mt19937 rng(seed);
  Int4Matrix m;
  m.rows = rows;
  m.cols = cols;
  m.group_size = gs;
  const int64_t G = m.n_groups();
  m.q.resize(size_t(rows * cols));
  m.zeros.resize(size_t(G * rows));
  m.scales.resize(size_t(G * rows));
  std::uniform_int_distribution<int> code(0, 15), zero(1, 15);
  std::uniform_real_distribution<float> scale(0.001f, 0.2f);
  for (auto& v : m.q) v = uint8_t(code(rng));
  for (auto& v : m.zeros) v = uint8_t(zero(rng));
  for (auto& v : m.scales) v = sq::f32_to_f16(scale(rng));
  return m;
}

std::vector<float> random_vec(size_t n, uint32_t seed, float amp = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, amp);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

const std::string kPrefix = "model.layers.0.mlp.down_proj";

std::unique_ptr<sq::LinearWeight> write_and_load(const sqtest::TempDir& dir, const Int4Matrix& m, bool desc_act,
                                                 json cfg = json()) {
  sq::SafetensorsWriter w;
  sq::write_int4_linear(w, kPrefix, m);
  w.write(dir / "model.safetensors");
  sq::Checkpoint ck(dir.path);
  if (cfg.is_null()) cfg = sq::gptq_quantization_config(int(m.group_size), desc_act, false);
  return sq::load_int4_linear(ck, kPrefix, m.rows, m.cols, cfg);
}

const sq::Int4Packed& packed_of(const sq::LinearWeight& l) {
  auto* p = dynamic_cast<const sq::Int4Linear*>(&l);
  EXPECT_NE(p, nullptr);
  return p->packed();
}

// Y = X Wᵀ in double from an explicit W (the independent reference for matmul).
std::vector<double> ref_matmul(const std::vector<float>& W, int64_t rows, int64_t cols, const std::vector<float>& x,
                               int64_t n, std::vector<double>* abs_sum) {
  std::vector<double> y(size_t(n * rows), 0.0);
  abs_sum->assign(size_t(n * rows), 0.0);
  for (int64_t t = 0; t < n; t++)
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < cols; c++) {
        double p = double(W[size_t(r * cols + c)]) * double(x[size_t(t * cols + c)]);
        y[size_t(t * rows + r)] += p;
        (*abs_sum)[size_t(t * rows + r)] += std::fabs(p);
      }
  return y;
}

void expect_matmul_matches(const sq::LinearWeight& l, const std::vector<float>& W, int64_t n, uint32_t seed) {
  const int64_t rows = l.rows(), cols = l.cols();
  auto x = random_vec(size_t(n * cols), seed);
  std::vector<double> abs_sum;
  auto yref = ref_matmul(W, rows, cols, x, n, &abs_sum);
  sq::ThreadPool pool(2);
  sq::ExecContext ctx{&pool, sq::Isa::kScalar};
  std::vector<float> y(size_t(n * rows), -1.0f), y_serial(size_t(n * rows), -2.0f), y_ref(size_t(n * rows), -3.0f);
  l.matmul(x.data(), n, y.data(), ctx);
  l.matmul(x.data(), n, y_serial.data(), sq::ExecContext{nullptr, sq::Isa::kScalar});
  sq::int4_matmul_ref(packed_of(l), x.data(), n, y_ref.data());
  for (size_t i = 0; i < y.size(); i++) {
    // f32 accumulation of `cols` products: error <= ~cols * eps * Σ|w x|.
    EXPECT_NEAR(y[i], yref[i], 2.0 * double(cols) * 6e-8 * abs_sum[i] + 1e-30) << "element " << i;
    EXPECT_EQ(y[i], y_ref[i]) << "threaded matmul differs from int4_matmul_ref at " << i;
    EXPECT_EQ(y[i], y_serial[i]) << "threaded matmul differs from serial at " << i;
  }
}

std::vector<float> dequant_all(const Int4Matrix& m) {
  std::vector<float> W(size_t(m.rows * m.cols));
  for (int64_t r = 0; r < m.rows; r++)
    for (int64_t c = 0; c < m.cols; c++) W[size_t(r * m.cols + c)] = m.dequant(r, c);
  return W;
}

int32_t as_i32(uint32_t u) {
  int32_t v;
  std::memcpy(&v, &u, 4);
  return v;
}

// ---- the convention, pinned by hand ----------------------------------------------------------

// in = 16, out = 8, group_size = 8: qweight [2, 8], qzeros [2, 1], scales [2, 8].
struct HandBuilt {
  std::vector<int32_t> qweight, qzeros;
  std::vector<uint16_t> scales;
  HandBuilt() {
    qweight.assign(16, as_i32(0x11111111u));                                         // row 0: codes 1
    for (int o = 0; o < 8; o++) qweight[size_t(8 + o)] = as_i32(0x22222222u);       // row 1: codes 2
    qweight[0] = as_i32(0x76543210u);      // output 0, inputs 0..7: codes 0,1,...,7 (lowest bits first)
    qweight[8] = as_i32(0xFEDCBA98u);      // output 0, inputs 8..15: codes 8..15
    qweight[1] = as_i32(0x0000000Fu);      // output 1: input 0 code 15, inputs 1..7 code 0
    qweight[9] = as_i32(0x10000000u);      // output 1: input 15 code 1, inputs 8..14 code 0
    qzeros = {as_i32(0x76543210u),         // group 0: stored nibble of output o is o -> zero o + 1 (v1)
              as_i32(0x00000000u)};        // group 1: stored 0 -> zero 1
    scales.assign(16, 0x3C00);             // group 0: 1.0
    for (int o = 0; o < 8; o++) scales[size_t(8 + o)] = 0x3800;  // group 1: 0.5
  }
  void write(const std::filesystem::path& dir) const {
    sq::SafetensorsWriter w;
    w.add("L.qweight", sq::DType::I32, {2, 8}, qweight.data(), 64);
    w.add("L.qzeros", sq::DType::I32, {2, 1}, qzeros.data(), 8);
    w.add("L.scales", sq::DType::F16, {2, 8}, scales.data(), 32);
    std::vector<int32_t> g_idx(16);
    for (int i = 0; i < 16; i++) g_idx[size_t(i)] = i / 8;
    w.add("L.g_idx", sq::DType::I32, {16}, g_idx.data(), 64);
    w.write(dir / "model.safetensors");
  }
};

// The lane layout: every row starts on a cache line (the decode kernels' 64-byte loads then never
// straddle two), scales and zero points in front of the codes, for every shape including odd ones.
TEST(Int4Group, LaneRowsStartOnCacheLines) {
  for (int64_t cols : {int64_t(64), int64_t(100), int64_t(128), int64_t(320), int64_t(4096)})
    for (int64_t gs : {int64_t(64), int64_t(128), int64_t(-1)}) {
      const Int4Matrix m = random_matrix(5, cols, gs, uint32_t(cols + gs));
      auto lin = sq::make_int4_linear(m);
      const sq::Int4Packed& p = packed_of(*lin);
      const std::string what = "cols " + std::to_string(cols) + " g " + std::to_string(gs);
      ASSERT_FALSE(p.lanes.empty()) << what;
      for (int64_t r = 0; r < p.rows; r++) {
        EXPECT_EQ(reinterpret_cast<uintptr_t>(p.lane_scales(r)) % 64, 0u) << what;
        EXPECT_EQ(reinterpret_cast<uintptr_t>(p.lane_codes(r)) % 64, 0u) << what;
        for (int64_t g = 0; g < p.n_groups; g++) {
          const size_t gi = size_t(g * m.rows + r);
          EXPECT_EQ(p.scale(r, g), sq::f16_to_f32(m.scales[gi])) << what;
          EXPECT_EQ(p.zero(r, g), m.zeros[gi]) << what;
        }
      }
    }
}

TEST(Int4Group, HandBuiltTensorsPinBitOrderAndZeroMinusOne) {
  sqtest::TempDir dir;
  HandBuilt hb;
  hb.write(dir.path);
  sq::Checkpoint ck(dir.path);
  auto l = sq::load_int4_linear(ck, "L", 8, 16, sq::gptq_quantization_config(8, false, false));
  // W[o, i] = scale * (code - (stored + 1)), worked out by hand.
  const std::vector<float> row0 = {-1, 0, 1, 2, 3, 4, 5, 6, 3.5, 4, 4.5, 5, 5.5, 6, 6.5, 7};
  const std::vector<float> row1 = {13, -2, -2, -2, -2, -2, -2, -2, -0.5, -0.5, -0.5, -0.5, -0.5, -0.5, -0.5, 0};
  const std::vector<float> row5 = {-5, -5, -5, -5, -5, -5, -5, -5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
  std::vector<float> got(16);
  l->dequant_row(0, got.data());
  EXPECT_EQ(got, row0);
  l->dequant_row(1, got.data());
  EXPECT_EQ(got, row1);
  l->dequant_row(5, got.data());
  EXPECT_EQ(got, row5);

  // The packer produces exactly these words from the same codes.
  Int4Matrix m;
  m.rows = 8;
  m.cols = 16;
  m.group_size = 8;
  m.q.assign(128, 0);
  m.zeros.assign(16, 1);
  m.scales.assign(16, 0x3C00);
  for (int o = 2; o < 8; o++)
    for (int i = 0; i < 16; i++) m.q[size_t(o * 16 + i)] = i < 8 ? 1 : 2;
  for (int i = 0; i < 16; i++) m.q[size_t(i)] = uint8_t(i);
  m.q[16 + 0] = 15;
  m.q[16 + 15] = 1;
  for (int o = 0; o < 8; o++) m.zeros[size_t(o)] = uint8_t(o + 1);
  EXPECT_EQ(sq::pack_gptq_qweight(m), hb.qweight);
  EXPECT_EQ(sq::pack_gptq_qzeros(m), hb.qzeros);

  // Matmul against the hand-written rows.
  std::vector<float> x(16);
  for (int i = 0; i < 16; i++) x[size_t(i)] = 0.25f * float(i) - 1.0f;
  std::vector<float> y(8);
  l->matmul(x.data(), 1, y.data(), sq::ExecContext{nullptr, sq::Isa::kScalar});
  auto dot = [&](const std::vector<float>& w) {
    double s = 0;
    for (int i = 0; i < 16; i++) s += double(w[size_t(i)]) * x[size_t(i)];
    return s;
  };
  EXPECT_NEAR(y[0], dot(row0), 1e-5);
  EXPECT_NEAR(y[1], dot(row1), 1e-5);
  EXPECT_NEAR(y[5], dot(row5), 1e-5);
  EXPECT_EQ(l->describe(), "int4 g8");
  EXPECT_EQ(l->weight_bytes(), size_t(64 + 8 + 32));  // qweight + qzeros + scales (g_idx is trivial)
}

TEST(Int4Group, GptqV2StoresZeroWithoutOffset) {
  sqtest::TempDir dir;
  HandBuilt hb;
  hb.write(dir.path);
  sq::Checkpoint ck(dir.path);
  json cfg = sq::gptq_quantization_config(8, false, false);
  cfg["checkpoint_format"] = "gptq_v2";
  auto l = sq::load_int4_linear(ck, "L", 8, 16, cfg);
  std::vector<float> got(16);
  l->dequant_row(0, got.data());  // zero = stored nibble = 0 for group 0 and group 1
  const std::vector<float> row0 = {0, 1, 2, 3, 4, 5, 6, 7, 4, 4.5, 5, 5.5, 6, 6.5, 7, 7.5};
  EXPECT_EQ(got, row0);
}

// ---- round trips -----------------------------------------------------------------------------

struct Shape {
  int64_t rows, cols, gs;
};

TEST(Int4Group, WriteLoadRoundTripIsExact) {
  // Includes stories260K's 172-wide shapes (not multiples of 8: padded), a partial last group,
  // group_size -1 and a group larger than the row.
  for (Shape s : {Shape{24, 64, 16}, Shape{172, 64, 64}, Shape{64, 172, 64}, Shape{40, 48, -1}, Shape{16, 40, 128},
                  Shape{9, 13, 4}}) {
    SCOPED_TRACE(testing::Message() << "rows " << s.rows << " cols " << s.cols << " g " << s.gs);
    Int4Matrix m = random_matrix(s.rows, s.cols, s.gs, uint32_t(s.rows * 1000 + s.cols));
    const int64_t G = m.n_groups(), in8 = (s.cols + 7) / 8, out8 = (s.rows + 7) / 8;
    sqtest::TempDir dir;
    auto l = write_and_load(dir, m, false);

    // The stored tensors, decoded here with the documented formulas (independent of the loader).
    sq::SafetensorsFile f(dir / "model.safetensors");
    const auto& qw = f.get(kPrefix + ".qweight");
    const auto& qz = f.get(kPrefix + ".qzeros");
    const auto& sc = f.get(kPrefix + ".scales");
    const auto& gi = f.get(kPrefix + ".g_idx");
    ASSERT_EQ(qw.shape, (std::vector<int64_t>{in8, s.rows}));
    ASSERT_EQ(qz.shape, (std::vector<int64_t>{G, out8}));
    ASSERT_EQ(sc.shape, (std::vector<int64_t>{G, s.rows}));
    ASSERT_EQ(gi.shape, (std::vector<int64_t>{s.cols}));
    EXPECT_EQ(sc.dtype, sq::DType::F16);
    auto word = [](const sq::TensorView& t, int64_t i) {
      uint32_t u;
      std::memcpy(&u, static_cast<const uint8_t*>(t.data) + 4 * i, 4);
      return u;
    };
    for (int64_t r = 0; r < s.rows; r++)
      for (int64_t c = 0; c < s.cols; c++)
        ASSERT_EQ((word(qw, (c / 8) * s.rows + r) >> (4 * (c % 8))) & 15u, m.q[size_t(r * s.cols + c)]);
    for (int64_t c = s.cols; c < in8 * 8; c++)  // padding inputs hold code 0
      for (int64_t r = 0; r < s.rows; r++) ASSERT_EQ((word(qw, (c / 8) * s.rows + r) >> (4 * (c % 8))) & 15u, 0u);
    for (int64_t g = 0; g < G; g++)
      for (int64_t r = 0; r < s.rows; r++) {
        ASSERT_EQ(((word(qz, g * out8 + r / 8) >> (4 * (r % 8))) & 15u) + 1, m.zeros[size_t(g * s.rows + r)]);
        uint16_t h;
        std::memcpy(&h, static_cast<const uint8_t*>(sc.data) + 2 * (g * s.rows + r), 2);
        ASSERT_EQ(h, m.scales[size_t(g * s.rows + r)]);
      }
    for (int64_t c = 0; c < s.cols; c++)
      ASSERT_EQ(int32_t(word(gi, c)), s.gs == -1 ? 0 : int32_t(c / s.gs));

    // Loaded layout == in-memory layout built from the same matrix.
    auto mem = sq::make_int4_linear(m);
    const auto& a = packed_of(*l);
    const auto& b = packed_of(*mem);
    EXPECT_EQ(a.codes, b.codes);
    EXPECT_EQ(a.lanes, b.lanes);
    EXPECT_EQ(a.scales, b.scales);
    EXPECT_EQ(a.zeros, b.zeros);
    EXPECT_EQ(a.group_begin, b.group_begin);
    EXPECT_EQ(a.perm, b.perm);
    EXPECT_TRUE(a.perm.empty());

    // Dequantized rows equal scale * (q - zero) computed from the Int4Matrix, bit for bit.
    std::vector<float> row(static_cast<size_t>(s.cols));
    for (int64_t r = 0; r < s.rows; r++) {
      l->dequant_row(r, row.data());
      for (int64_t c = 0; c < s.cols; c++) ASSERT_EQ(row[size_t(c)], m.dequant(r, c)) << "r " << r << " c " << c;
    }
    EXPECT_EQ(l->weight_bytes(), qw.nbytes + qz.nbytes + sc.nbytes);
    EXPECT_EQ(l->describe(), "int4 g" + std::to_string(s.gs));
  }
}

TEST(Int4Group, MatmulEqualsDequantizedProduct) {
  Int4Matrix m = random_matrix(37, 96, 32, 7);
  auto l = sq::make_int4_linear(m);
  auto W = dequant_all(m);
  expect_matmul_matches(*l, W, 1, 11);
  expect_matmul_matches(*l, W, 7, 12);
  // Padded shape through the file path.
  Int4Matrix m2 = random_matrix(172, 64, 64, 8);
  sqtest::TempDir dir;
  auto l2 = write_and_load(dir, m2, false);
  expect_matmul_matches(*l2, dequant_all(m2), 3, 13);
}

TEST(Int4Group, ActOrderShuffledGidx) {
  const int64_t rows = 24, cols = 64, gs = 16;
  Int4Matrix m = random_matrix(rows, cols, gs, 21);
  m.g_idx.resize(size_t(cols));
  for (int64_t c = 0; c < cols; c++) m.g_idx[size_t(c)] = int32_t(c / gs);
  std::mt19937 rng(5);
  std::shuffle(m.g_idx.begin(), m.g_idx.end(), rng);
  sqtest::TempDir dir;
  auto l = write_and_load(dir, m, true);
  const auto& p = packed_of(*l);
  EXPECT_FALSE(p.perm.empty());
  EXPECT_TRUE(p.has_g_idx);
  EXPECT_EQ(l->describe(), "int4 g16 act-order");
  // Every stored group is contiguous and holds exactly the columns g_idx assigns to it.
  for (int64_t g = 0; g < p.n_groups; g++)
    for (int64_t k = p.group_begin[size_t(g)]; k < p.group_begin[size_t(g + 1)]; k++)
      ASSERT_EQ(m.g_idx[size_t(p.perm[size_t(k)])], g);
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; r++) {
    l->dequant_row(r, row.data());
    for (int64_t c = 0; c < cols; c++) {
      // scale and zero of the group g_idx names, written out explicitly.
      size_t gi = size_t(m.g_idx[size_t(c)]) * size_t(rows) + size_t(r);
      float expect = sq::f16_to_f32(m.scales[gi]) * float(int(m.q[size_t(r * cols + c)]) - int(m.zeros[gi]));
      ASSERT_EQ(row[size_t(c)], expect);
    }
  }
  expect_matmul_matches(*l, dequant_all(m), 4, 22);
  sq::SafetensorsFile f(dir / "model.safetensors");
  EXPECT_EQ(l->weight_bytes(), f.get(kPrefix + ".qweight").nbytes + f.get(kPrefix + ".qzeros").nbytes +
                                   f.get(kPrefix + ".scales").nbytes + f.get(kPrefix + ".g_idx").nbytes);

  // Uneven groups (one group empty) work in memory too.
  Int4Matrix u = random_matrix(8, 40, 10, 23);
  u.g_idx.resize(40);
  std::uniform_int_distribution<int> pick(0, 2);  // group 3 stays empty
  for (auto& v : u.g_idx) v = pick(rng);
  auto lu = sq::make_int4_linear(u);
  expect_matmul_matches(*lu, dequant_all(u), 2, 24);
}

TEST(Int4Group, MissingGidxMeansInputOrderGroups) {
  Int4Matrix m = random_matrix(16, 48, 16, 31);
  sqtest::TempDir dir;
  sq::SafetensorsWriter w;
  auto qw = sq::pack_gptq_qweight(m);
  auto qz = sq::pack_gptq_qzeros(m);
  w.add("L.qweight", sq::DType::I32, {6, 16}, qw.data(), qw.size() * 4);
  w.add("L.qzeros", sq::DType::I32, {3, 2}, qz.data(), qz.size() * 4);
  w.add("L.scales", sq::DType::F16, {3, 16}, m.scales.data(), m.scales.size() * 2);
  w.write(dir / "model.safetensors");
  sq::Checkpoint ck(dir.path);
  auto l = sq::load_int4_linear(ck, "L", 16, 48, sq::gptq_quantization_config(16, false, false));
  std::vector<float> row(48);
  for (int64_t r = 0; r < 16; r++) {
    l->dequant_row(r, row.data());
    for (int64_t c = 0; c < 48; c++) ASSERT_EQ(row[size_t(c)], m.dequant(r, c));
  }
}

// ---- configuration and bad input -------------------------------------------------------------

TEST(Int4Group, QuantizationConfig) {
  json c = sq::gptq_quantization_config(128, false, false);
  EXPECT_EQ(c["quant_method"], "gptq");
  EXPECT_EQ(c["bits"], 4);
  EXPECT_EQ(c["group_size"], 128);
  EXPECT_EQ(c["desc_act"], false);
  EXPECT_EQ(c["sym"], false);
  EXPECT_EQ(c["checkpoint_format"], "gptq");
  EXPECT_GT(c["damp_percent"].get<double>(), 0.0);  // transformers requires 0 < damp_percent < 1
  EXPECT_LT(c["damp_percent"].get<double>(), 1.0);
  auto p = sq::parse_gptq_config(c, "cfg");
  EXPECT_EQ(p.group_size, 128);
  EXPECT_EQ(p.zero_offset, 1);
  EXPECT_EQ(sq::parse_gptq_config(sq::gptq_quantization_config(-1, true, true), "cfg").group_size, -1);
  // Minimal configs from other tools: AutoGPTQ's quantize_config.json has no quant_method.
  EXPECT_EQ(sq::parse_gptq_config(json{{"bits", 4}, {"group_size", 64}}, "cfg").group_size, 64);
  EXPECT_EQ(sq::parse_gptq_config(json{{"bits", 4}, {"group_size", 64}, {"format", "gptq_v2"}}, "cfg").zero_offset, 0);

  auto with = [&](const char* k, json v) {
    json j = c;
    j[k] = v;
    return j;
  };
  expect_error([&] { sq::parse_gptq_config(with("bits", 8), "cfg"); }, "bits 8");
  expect_error([&] { sq::parse_gptq_config(with("bits", 3), "cfg"); }, "bits 3");
  expect_error([&] { sq::parse_gptq_config(with("quant_method", "awq"), "cfg"); }, "awq");
  expect_error([&] { sq::parse_gptq_config(with("quant_method", "bitsandbytes"), "cfg"); }, "bitsandbytes");
  expect_error([&] { sq::parse_gptq_config(with("checkpoint_format", "marlin"), "cfg"); }, "marlin");
  expect_error([&] { sq::parse_gptq_config(with("is_marlin_format", true), "cfg"); }, "Marlin");
  expect_error([&] { sq::parse_gptq_config(with("group_size", 0), "cfg"); }, "group_size 0");
  expect_error([&] { sq::parse_gptq_config(with("pack_dtype", "int64"), "cfg"); }, "pack_dtype");
  expect_error([&] { sq::parse_gptq_config(with("dynamic", json{{"-:.*down.*", json::object()}}), "cfg"); },
               "dynamic");
  expect_error([&] { sq::parse_gptq_config(json(), "cfg"); }, "cfg");
  expect_error([&] { sq::parse_gptq_config(json{{"group_size", 128}}, "cfg"); }, "bits");
  expect_error([] { sq::gptq_quantization_config(0, false, false); }, "group_size");
}

// Writes a checkpoint holding the given tensors for prefix "L" (rows 16, cols 32).
struct BadCase {
  std::string name;
  std::function<void(sq::SafetensorsWriter&)> add;
  std::string needle;
};

// group_size 2^63 - 1 overflowed ceil(cols / group_size) computed as (cols + gs - 1) / gs (issue 18;
// UBSan reports it): any group at least as wide as the row is one group.
TEST(Int4Group, HugeGroupSizeIsOneGroup) {
  const int64_t huge = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(sq::parse_gptq_config(json{{"bits", 4}, {"group_size", huge}}, "cfg").group_size, huge);
  EXPECT_EQ(sq::int4_num_groups(4096, huge), 1);
  EXPECT_EQ(sq::int4_num_groups(4096, huge - 1), 1);
  EXPECT_EQ(sq::int4_num_groups(4096, 4096), 1);
  EXPECT_EQ(sq::int4_num_groups(4097, 4096), 2);
  EXPECT_EQ(sq::int4_num_groups(5, 2), 3);
  EXPECT_EQ(sq::int4_num_groups(5, -1), 1);
}

TEST(Int4Group, LoaderRejectsBadTensors) {
  Int4Matrix m = random_matrix(16, 32, 16, 41);
  auto qw = sq::pack_gptq_qweight(m);   // [4, 16]
  auto qz = sq::pack_gptq_qzeros(m);    // [2, 2]
  std::vector<int32_t> gi(32);
  for (int c = 0; c < 32; c++) gi[size_t(c)] = c / 16;
  auto good_qw = [&](sq::SafetensorsWriter& w) { w.add("L.qweight", sq::DType::I32, {4, 16}, qw.data(), 256); };
  auto good_qz = [&](sq::SafetensorsWriter& w) { w.add("L.qzeros", sq::DType::I32, {2, 2}, qz.data(), 16); };
  auto good_sc = [&](sq::SafetensorsWriter& w) { w.add("L.scales", sq::DType::F16, {2, 16}, m.scales.data(), 64); };
  std::vector<float> f32(64, 1.0f);
  std::vector<int32_t> big(64, 0), big8(128, 0);
  std::vector<uint16_t> inf_scales(m.scales);
  inf_scales[3] = 0x7C00;
  std::vector<BadCase> cases = {
      {"qweight F32", [&](auto& w) { w.add("L.qweight", sq::DType::F32, {4, 16}, f32.data(), 256); good_qz(w); good_sc(w); },
       "L.qweight"},
      {"AWQ-like qweight", [&](auto& w) { w.add("L.qweight", sq::DType::I32, {32, 2}, big.data(), 256); good_qz(w); good_sc(w); },
       "output dimension"},
      {"8-bit qweight", [&](auto& w) { w.add("L.qweight", sq::DType::I32, {8, 16}, big8.data(), 512); good_qz(w); good_sc(w); },
       "L.qweight"},
      {"qzeros groups", [&](auto& w) { good_qw(w); w.add("L.qzeros", sq::DType::I32, {4, 2}, big.data(), 32); good_sc(w); },
       "L.qzeros"},
      {"scales shape", [&](auto& w) { good_qw(w); good_qz(w); w.add("L.scales", sq::DType::F16, {16, 2}, m.scales.data(), 64); },
       "L.scales"},
      {"scales dtype", [&](auto& w) { good_qw(w); good_qz(w); w.add("L.scales", sq::DType::I32, {2, 16}, big.data(), 128); },
       "L.scales"},
      {"scales inf", [&](auto& w) { good_qw(w); good_qz(w); w.add("L.scales", sq::DType::F16, {2, 16}, inf_scales.data(), 64); },
       "not finite"},
      {"g_idx range", [&](auto& w) {
         good_qw(w); good_qz(w); good_sc(w);
         auto bad = gi;
         bad[7] = 2;
         w.add("L.g_idx", sq::DType::I32, {32}, bad.data(), 128);
       }, "L.g_idx"},
      {"g_idx negative", [&](auto& w) {
         good_qw(w); good_qz(w); good_sc(w);
         auto bad = gi;
         bad[0] = -1;
         w.add("L.g_idx", sq::DType::I32, {32}, bad.data(), 128);
       }, "L.g_idx"},
      {"g_idx shape", [&](auto& w) { good_qw(w); good_qz(w); good_sc(w); w.add("L.g_idx", sq::DType::I32, {16}, gi.data(), 64); },
       "L.g_idx"},
      {"missing qzeros", [&](auto& w) { good_qw(w); good_sc(w); }, "L.qzeros"},
  };
  for (const auto& bc : cases) {
    SCOPED_TRACE(bc.name);
    sqtest::TempDir dir;
    sq::SafetensorsWriter w;
    bc.add(w);
    w.write(dir / "model.safetensors");
    sq::Checkpoint ck(dir.path);
    expect_error([&] { sq::load_int4_linear(ck, "L", 16, 32, sq::gptq_quantization_config(16, false, false)); },
                 bc.needle);
  }
  // A good checkpoint with an unsupported config, and with shapes that do not match the model.
  sqtest::TempDir dir;
  sq::SafetensorsWriter w;
  good_qw(w);
  good_qz(w);
  good_sc(w);
  w.write(dir / "model.safetensors");
  sq::Checkpoint ck(dir.path);
  json c8 = sq::gptq_quantization_config(16, false, false);
  c8["bits"] = 8;
  expect_error([&] { sq::load_int4_linear(ck, "L", 16, 32, c8); }, "bits 8");
  expect_error([&] { sq::load_int4_linear(ck, "L", 16, 32, json()); }, "quantization_config");
  expect_error([&] { sq::load_int4_linear(ck, "L", 16, 40, sq::gptq_quantization_config(16, false, false)); },
               "L.qweight");
  expect_error([&] { sq::load_int4_linear(ck, "L", 16, 32, sq::gptq_quantization_config(32, false, false)); },
               "L.qzeros");
  EXPECT_NO_THROW(sq::load_int4_linear(ck, "L", 16, 32, sq::gptq_quantization_config(16, false, false)));
}

TEST(Int4Group, WriterRejectsInvalidMatrices) {
  sq::SafetensorsWriter w;
  Int4Matrix m = random_matrix(8, 16, 8, 51);
  m.zeros[3] = 0;
  expect_error([&] { sq::write_int4_linear(w, "L", m); }, "zero point 0");
  EXPECT_NO_THROW(sq::make_int4_linear(m));  // zero 0 is fine in memory
  m = random_matrix(8, 16, 8, 52);
  m.q[5] = 16;
  expect_error([&] { sq::write_int4_linear(w, "L", m); }, "code 16");
  m = random_matrix(8, 16, 8, 53);
  m.scales.pop_back();
  expect_error([&] { sq::write_int4_linear(w, "L", m); }, "scales");
  m = random_matrix(8, 16, 8, 54);
  m.g_idx.assign(16, 0);
  m.g_idx[2] = 5;
  expect_error([&] { sq::make_int4_linear(m); }, "g_idx");
  m = random_matrix(8, 16, 8, 55);
  m.group_size = 0;
  expect_error([&] { sq::make_int4_linear(m); }, "group_size");
}

// ---- RTN quantization ------------------------------------------------------------------------

TEST(Int4Quant, RtnErrorBoundAndZeroRange) {
  const int64_t rows = 32, cols = 200, gs = 64;  // last group has 8 inputs
  auto W = random_vec(size_t(rows * cols), 61, 0.05f);
  for (int64_t r = 0; r < rows; r++) W[size_t(r * cols + 5)] *= 20.0f;  // an outlier column
  sq::ThreadPool pool(2);
  sq::ExecContext ctx{&pool, sq::Isa::kScalar};
  Int4Matrix m = sq::quantize_int4_rtn(W.data(), rows, cols, int(gs), false, ctx);
  sq::validate_int4_matrix(m, "rtn");
  ASSERT_EQ(m.n_groups(), 4);
  for (int64_t g = 0; g < 4; g++)
    for (int64_t r = 0; r < rows; r++) {
      int z = m.zeros[size_t(g * rows + r)];
      float s = sq::f16_to_f32(m.scales[size_t(g * rows + r)]);
      EXPECT_GE(z, 1);
      EXPECT_LE(z, 15);
      // scale is (hi - lo) / 15 rounded to F16, with [lo, hi] the group's range including 0.
      float lo = 0, hi = 0;
      for (int64_t c = g * gs; c < std::min(cols, (g + 1) * gs); c++) {
        lo = std::min(lo, W[size_t(r * cols + c)]);
        hi = std::max(hi, W[size_t(r * cols + c)]);
      }
      if (z > 1) {
        EXPECT_NEAR(s, (hi - lo) / 15.0f, (hi - lo) / 15.0f * 1e-3f);
      }
      for (int64_t c = g * gs; c < std::min(cols, (g + 1) * gs); c++)
        ASSERT_LE(std::fabs(m.dequant(r, c) - W[size_t(r * cols + c)]), 0.51f * s) << "r " << r << " c " << c;
    }
  // Deterministic: serial == threaded.
  Int4Matrix m2 = sq::quantize_int4_rtn(W.data(), rows, cols, int(gs), false, sq::ExecContext{});
  EXPECT_EQ(m.q, m2.q);
  EXPECT_EQ(m.zeros, m2.zeros);
  EXPECT_EQ(m.scales, m2.scales);
}

TEST(Int4Quant, RtnEdgeGroups) {
  // One row per case, group of 8.
  const std::vector<std::vector<float>> rows = {
      {1.0f, 1.25f, 1.5f, 1.75f, 2.0f, 1.1f, 1.9f, 1.3f},          // all positive: zero 0 would be needed
      {-1.0f, -1.25f, -1.5f, -1.75f, -2.0f, -1.1f, -1.9f, -1.3f},  // all negative: zero 15
      {0, 0, 0, 0, 0, 0, 0, 0},                                    // all zero
      {0.001f, 0, 0, 0, 0, 0, 0, 0},                               // a single non-zero
      {-3.0f, 0.5f, 7.0f, -0.25f, 2.0f, 1.0f, -1.0f, 0.0f}};
  for (const auto& w : rows) {
    Int4Matrix m = sq::quantize_int4_rtn(w.data(), 1, 8, 8, false, sq::ExecContext{});
    float s = sq::f16_to_f32(m.scales[0]);
    EXPECT_GE(m.zeros[0], 1);
    for (int c = 0; c < 8; c++) EXPECT_LE(std::fabs(m.dequant(0, c) - w[size_t(c)]), 0.51f * s + 1e-12f) << c;
    sq::SafetensorsWriter sw;
    EXPECT_NO_THROW(sq::write_int4_linear(sw, "L", m));  // every group is storable in GPTQ v1
  }
  Int4Matrix pos = sq::quantize_int4_rtn(rows[0].data(), 1, 8, 8, false, sq::ExecContext{});
  EXPECT_EQ(pos.zeros[0], 1);
  EXPECT_EQ(pos.scales[0], sq::f32_to_f16(2.0f / 14.0f));
  Int4Matrix neg = sq::quantize_int4_rtn(rows[1].data(), 1, 8, 8, false, sq::ExecContext{});
  EXPECT_EQ(neg.zeros[0], 15);
  Int4Matrix zero = sq::quantize_int4_rtn(rows[2].data(), 1, 8, 8, false, sq::ExecContext{});
  for (int c = 0; c < 8; c++) EXPECT_EQ(zero.dequant(0, c), 0.0f);

  std::vector<float> bad = {1, 2, NAN, 4};
  expect_error([&] { sq::quantize_int4_rtn(bad.data(), 1, 4, 4, false, sq::ExecContext{}); }, "not finite");
  std::vector<float> huge = {-1e6f, 1e6f};
  expect_error([&] { sq::quantize_int4_rtn(huge.data(), 1, 2, 2, false, sq::ExecContext{}); }, "F16");
  expect_error([&] { sq::quantize_int4_rtn(bad.data(), 1, 4, 0, false, sq::ExecContext{}); }, "group_size");
}

TEST(Int4Quant, ClipSearchNeverIncreasesGroupError) {
  const int64_t rows = 16, cols = 256, gs = 128;
  // Heavy-tailed weights (Student-t like) where clipping matters.
  std::mt19937 rng(71);
  std::normal_distribution<float> n01(0, 1);
  std::gamma_distribution<float> chi(1.5f, 2.0f);
  std::vector<float> W(size_t(rows * cols));
  for (auto& v : W) v = 0.02f * n01(rng) / std::sqrt(chi(rng) / 3.0f);
  Int4Matrix a = sq::quantize_int4_rtn(W.data(), rows, cols, int(gs), false, sq::ExecContext{});
  Int4Matrix b = sq::quantize_int4_rtn(W.data(), rows, cols, int(gs), true, sq::ExecContext{});
  double ea_total = 0, eb_total = 0;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t g = 0; g < 2; g++) {
      double ea = 0, eb = 0;
      for (int64_t c = g * gs; c < (g + 1) * gs; c++) {
        double w = W[size_t(r * cols + c)];
        ea += (a.dequant(r, c) - w) * (a.dequant(r, c) - w);
        eb += (b.dequant(r, c) - w) * (b.dequant(r, c) - w);
      }
      EXPECT_LE(eb, ea * (1 + 1e-9)) << "row " << r << " group " << g;
      ea_total += ea;
      eb_total += eb;
    }
  EXPECT_LT(eb_total, ea_total);  // heavy tails: clipping helps on the whole
}

TEST(Int4Quant, QuantizeWriteLoadMatmul) {
  const int64_t rows = 48, cols = 172, gs = 64;
  auto W = random_vec(size_t(rows * cols), 81, 0.1f);
  sq::ThreadPool pool(2);
  sq::ExecContext ctx{&pool, sq::Isa::kScalar};
  Int4Matrix m = sq::quantize_int4_rtn(W.data(), rows, cols, int(gs), false, ctx);
  sqtest::TempDir dir;
  auto l = write_and_load(dir, m, false);
  std::vector<float> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; r++) {
    l->dequant_row(r, row.data());
    for (int64_t c = 0; c < cols; c++) ASSERT_EQ(row[size_t(c)], m.dequant(r, c));
  }
  // The quantized product stays close to the float one: per-weight error <= scale/2 (~0.03 here).
  auto x = random_vec(size_t(cols), 82);
  std::vector<float> y(static_cast<size_t>(rows));
  l->matmul(x.data(), 1, y.data(), ctx);
  for (int64_t r = 0; r < rows; r++) {
    double yf = 0, bound = 0;
    for (int64_t c = 0; c < cols; c++) {
      yf += double(W[size_t(r * cols + c)]) * x[size_t(c)];
      size_t gi = size_t(c / gs) * size_t(rows) + size_t(r);
      bound += 0.51 * sq::f16_to_f32(m.scales[gi]) * std::fabs(x[size_t(c)]);
    }
    EXPECT_NEAR(y[size_t(r)], yf, bound + 1e-4) << r;
  }
}

}  // namespace
