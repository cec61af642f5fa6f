// The lookup-table weight format: bit packing, write -> read -> load round trip, the scalar matmul
// against a naive product, describe/bytes, and corrupted checkpoints rejected with sq::Error.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/threadpool.h"
#include "formats/lut.h"
#include "kernels/q8.h"
#include "io/safetensors.h"
#include "quant/kmeans.h"
#include "test_util.h"

namespace {

using sq::LutMatrix;

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  double uniform() { return sq::uniform01(s); }
  uint32_t below(uint32_t n) { return uint32_t(uniform() * n); }
  float normal() {
    double u1 = std::max(uniform(), 1e-300), u2 = uniform();
    return float(std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
};

// A random well-formed matrix: sorted random tables, random codes, and a random sparse part whose
// dense code is the entry nearest zero (as the quantizer writes it).
LutMatrix random_matrix(Rng& rng, int64_t rows, int64_t cols, int bits, int64_t group_size, double sparse_frac,
                        sq::DType vdt = sq::DType::F32) {
  LutMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.bits = bits;
  m.group_size = group_size;
  m.values_dtype = vdt;
  const int L = m.levels();
  m.lut.resize(size_t(rows * m.n_groups() * L));
  for (int64_t t = 0; t < rows * m.n_groups(); t++) {
    std::vector<float> v(L);
    for (float& x : v) x = 0.05f * rng.normal();
    std::sort(v.begin(), v.end());
    for (int q = 0; q < L; q++) m.lut[size_t(t * L + q)] = sq::f32_to_f16(v[q]);
  }
  m.codes.resize(size_t(rows * cols));
  for (auto& c : m.codes) c = uint8_t(rng.below(uint32_t(L)));
  if (sparse_frac > 0) {
    m.indptr.push_back(0);
    for (int64_t r = 0; r < rows; r++) {
      for (int64_t c = 0; c < cols; c++) {
        if (rng.uniform() < sparse_frac) {
          m.indices.push_back(int32_t(c));
          float v = rng.normal();
          if (vdt == sq::DType::F16) v = sq::f16_to_f32(sq::f32_to_f16(v));
          if (vdt == sq::DType::BF16) v = sq::bf16_to_f32(sq::f32_to_bf16(v));
          m.values.push_back(v);
          // the code nearest zero in this row's group table
          const uint16_t* t = m.lut.data() + size_t((r * m.n_groups() + c / group_size) * L);
          int best = 0;
          for (int q = 1; q < L; q++)
            if (std::fabs(sq::f16_to_f32(t[q])) < std::fabs(sq::f16_to_f32(t[best]))) best = q;
          m.codes[size_t(r * cols + c)] = uint8_t(best);
        }
      }
      m.indptr.push_back(int32_t(m.indices.size()));
    }
  }
  return m;
}

// Naive W (from the struct, by the format's definition) times x.
std::vector<double> naive_product(const LutMatrix& m, const std::vector<float>& x, int64_t n) {
  std::vector<float> W = sq::lut_dequantize(m);
  std::vector<double> y(size_t(n * m.rows));
  for (int64_t t = 0; t < n; t++)
    for (int64_t r = 0; r < m.rows; r++) {
      double s = 0;
      for (int64_t c = 0; c < m.cols; c++) s += double(W[size_t(r * m.cols + c)]) * x[size_t(t * m.cols + c)];
      y[size_t(t * m.rows + r)] = s;
    }
  return y;
}

TEST(LutFormat, PackUnpackRoundTripEveryWidth) {
  Rng rng(1);
  for (int bits = 1; bits <= 8; bits++) {
    for (size_t n : {size_t(0), size_t(1), size_t(7), size_t(13), size_t(1001)}) {
      std::vector<uint8_t> codes(n);
      for (auto& c : codes) c = uint8_t(rng.below(1u << bits));
      std::vector<uint8_t> packed = sq::pack_codes(codes.data(), n, bits);
      ASSERT_EQ(packed.size(), (n * bits + 7) / 8) << "exactly bits per weight, < 1 byte slack";
      EXPECT_EQ(sq::unpack_codes(packed, n, bits), codes) << "bits " << bits << " n " << n;
      // Independent check of the LSB-first stream layout: bit i of element e is stream bit e*bits+i.
      for (size_t e = 0; e < n; e++)
        for (int i = 0; i < bits; i++) {
          size_t p = e * bits + i;
          ASSERT_EQ((packed[p / 8] >> (p % 8)) & 1, (codes[e] >> i) & 1);
        }
      // Sub-ranges starting at any element (rows of a matrix start mid-byte).
      for (size_t first = 0; first < n; first += 1 + n / 5) {
        size_t cnt = std::min<size_t>(n - first, 17);
        std::vector<uint8_t> part(cnt);
        sq::unpack_codes(packed.data(), first, cnt, bits, part.data());
        for (size_t i = 0; i < cnt; i++) ASSERT_EQ(part[i], codes[first + i]);
      }
    }
  }
  uint8_t bad = 4;
  EXPECT_THROW(sq::pack_codes(&bad, 1, 2), sq::Error);
}

void write_checkpoint(const std::filesystem::path& dir, const std::string& prefix, const LutMatrix& m) {
  sq::SafetensorsWriter w;
  sq::write_lut_linear(w, prefix, m);
  w.write(dir / "model.safetensors");
}

TEST(LutFormat, WriteReadLoadRoundTrip) {
  Rng rng(2);
  struct Case {
    int64_t rows, cols;
    int bits;
    int64_t gs;
    double sparse;
    sq::DType vdt;
  };
  for (const Case& cs : {Case{5, 13, 3, 13, 0.0, sq::DType::F32}, Case{7, 33, 2, 8, 0.1, sq::DType::F16},
                         Case{3, 100, 5, 100, 0.05, sq::DType::BF16}, Case{4, 19, 8, 19, 0.2, sq::DType::F32},
                         Case{9, 70, 4, 32, 0.0, sq::DType::F32}, Case{2, 11, 7, 4, 0.3, sq::DType::F16}}) {
    LutMatrix m = random_matrix(rng, cs.rows, cs.cols, cs.bits, cs.gs, cs.sparse, cs.vdt);
    sqtest::TempDir dir;
    const std::string prefix = "model.layers.0.mlp.down_proj";
    write_checkpoint(dir.path, prefix, m);
    sq::Checkpoint ckpt(dir.path);
    // The stored tensors, as the header documents them.
    const sq::TensorView& qc = ckpt.get(prefix + ".qcodes");
    EXPECT_EQ(qc.dtype, sq::DType::U8);
    EXPECT_EQ(size_t(qc.numel()), (size_t(cs.rows * cs.cols) * cs.bits + 7) / 8);
    EXPECT_EQ(ckpt.get(prefix + ".lut").shape, (std::vector<int64_t>{cs.rows, m.n_groups(), 1 << cs.bits}));
    EXPECT_EQ(ckpt.has(prefix + ".sparse_values"), m.nnz() > 0);
    if (m.nnz() > 0) {
      EXPECT_EQ(ckpt.get(prefix + ".sparse_values").dtype, cs.vdt);
    }

    auto lin = sq::load_lut_linear(ckpt, prefix, cs.rows, cs.cols);
    ASSERT_EQ(lin->rows(), cs.rows);
    ASSERT_EQ(lin->cols(), cs.cols);
    std::vector<float> want = sq::lut_dequantize(m), row(size_t(cs.cols));
    for (int64_t r = 0; r < cs.rows; r++) {
      lin->dequant_row(r, row.data());
      for (int64_t c = 0; c < cs.cols; c++) {
        // Table value (or the exact sparse value), bit for bit.
        ASSERT_EQ(row[size_t(c)], want[size_t(r * cs.cols + c)]) << "r " << r << " c " << c;
        if (m.indptr.empty() || std::find(m.indices.begin() + m.indptr[r], m.indices.begin() + m.indptr[r + 1],
                                          int32_t(c)) == m.indices.begin() + m.indptr[r + 1]) {
          const int64_t g = c / cs.gs;
          ASSERT_EQ(row[size_t(c)], sq::f16_to_f32(m.lut[size_t((r * m.n_groups() + g) * m.levels() +
                                                                m.codes[size_t(r * cs.cols + c)])]));
        }
      }
    }
    // The same through the in-memory constructor.
    auto mem = sq::make_lut_linear(m);
    EXPECT_EQ(mem->dequantize(), lin->dequantize());
    EXPECT_EQ(mem->weight_bytes(), lin->weight_bytes());
    EXPECT_EQ(mem->describe(), lin->describe());
  }
}

TEST(LutFormat, MatmulEqualsNaiveProduct) {
  Rng rng(3);
  sq::ThreadPool pool(2);
  sq::ExecContext ctx{&pool, sq::Isa::kScalar};
  sq::ExecContext serial{nullptr, sq::Isa::kScalar};
  for (int bits : {2, 3, 4, 8}) {
    for (double sparse : {0.0, 0.02}) {
      const int64_t rows = 37, cols = 301, gs = bits == 4 ? 64 : cols;
      LutMatrix m = random_matrix(rng, rows, cols, bits, gs, sparse);
      auto lin = sq::make_lut_linear(m);
      for (int64_t n : {1, 3}) {
        std::vector<float> x(size_t(n * cols));
        for (float& v : x) v = rng.normal();
        std::vector<double> want = naive_product(m, x, n);
        const std::vector<float> W = sq::lut_dequantize(m);
        for (const sq::ExecContext* c : {&ctx, &serial}) {
          std::vector<float> y(size_t(n * rows), -1.0f);
          lin->matmul(x.data(), n, y.data(), *c);
          // f32 accumulation over cols terms of size |w||x|: bound from the arithmetic.
          for (int64_t t = 0; t < n; t++)
            for (int64_t r = 0; r < rows; r++) {
              double mag = 0;
              for (int64_t cc = 0; cc < cols; cc++)
                mag += std::fabs(W[size_t(r * cols + cc)] * x[size_t(t * cols + cc)]);
              ASSERT_NEAR(y[size_t(t * rows + r)], want[size_t(t * rows + r)], 4 * cols * 6e-8 * mag + 1e-6)
                  << "bits " << bits << " sparse " << sparse << " n " << n;
            }
        }
        // The free scalar reference over a row range leaves other rows alone.
        auto* ll = dynamic_cast<sq::LutLinear*>(lin.get());
        ASSERT_NE(ll, nullptr);
        std::vector<float> y(size_t(n * rows), 7.0f);
        sq::lut_matmul_ref(ll->view(), x.data(), n, y.data(), 5, 9);
        for (int64_t t = 0; t < n; t++)
          for (int64_t r = 0; r < rows; r++)
            if (r < 5 || r >= 9) ASSERT_EQ(y[size_t(t * rows + r)], 7.0f);
            else ASSERT_NEAR(y[size_t(t * rows + r)], want[size_t(t * rows + r)], 1e-4);
      }
    }
  }
}

TEST(LutFormat, DescribeBytesAndBitsPerWeight) {
  Rng rng(4);
  LutMatrix m = random_matrix(rng, 64, 128, 3, 128, 0.0);
  auto lin = sq::make_lut_linear(m);
  EXPECT_EQ(lin->describe(), "lut3");
  EXPECT_EQ(lin->weight_bytes(), size_t(64 * 128 * 3 / 8 + 64 * 8 * 2));
  // 3 bits + 8 F16 entries per 128-weight row + qshape
  EXPECT_NEAR(sq::lut_bits_per_weight(m), 3.0 + 8 * 16.0 / 128 + 96.0 / (64 * 128), 1e-12);

  LutMatrix g = random_matrix(rng, 8, 256, 4, 128, 0.0);
  EXPECT_EQ(sq::make_lut_linear(g)->describe(), "lut4 g128");

  LutMatrix s = random_matrix(rng, 100, 200, 3, 200, 0.0);
  s.indptr.assign(101, 0);
  for (int r = 0; r < 100; r++) {
    if (r < 90) {
      s.indices.push_back(r);
      s.values.push_back(1.5f);
    }
    s.indptr[r + 1] = int32_t(s.indices.size());
  }
  s.values_dtype = sq::DType::BF16;
  auto sl = sq::make_lut_linear(s);
  EXPECT_EQ(sl->describe(), "lut3 +0.45% sparse");
  EXPECT_EQ(sl->weight_bytes(), size_t(100 * 200 * 3 / 8 + 100 * 8 * 2 + 101 * 4 + 90 * 4 + 90 * 2));
}

// The in-memory lane layout holds every code where formats/lut.h says, pads with code 0, and is as
// small as the stream when cols is a multiple of the block.
TEST(LutFormat, LaneLayoutRoundTrip) {
  Rng rng(11);
  for (int bits : {2, 3, 4})
    for (int64_t cols : {int64_t(1), int64_t(8), int64_t(63), int64_t(256), int64_t(300), int64_t(11008)}) {
      const int64_t rows = 3;
      std::vector<uint8_t> codes(size_t(rows * cols));
      for (auto& c : codes) c = uint8_t(rng.below(1u << bits));
      const std::vector<uint32_t> w = sq::pack_lanes(codes.data(), rows, cols, bits);
      const int64_t wpr = sq::lane_words_per_row(cols, bits), bc = sq::lane_block_cols(bits);
      ASSERT_EQ(int64_t(w.size()), rows * wpr);
      if (cols % bc == 0) {
        EXPECT_EQ(size_t(rows * wpr * 4), sq::packed_code_bytes(size_t(rows * cols), bits));
      }
      for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++)
          ASSERT_EQ(sq::lane_code(w.data() + r * wpr, bits, c), codes[size_t(r * cols + c)])
              << bits << "-bit, cols " << cols << ", [" << r << ", " << c << "]";
        for (int64_t c = cols; c < (cols + bc - 1) / bc * bc; c++)
          ASSERT_EQ(sq::lane_code(w.data() + r * wpr, bits, c), 0u) << "padding, " << bits << "-bit, col " << c;
      }
    }
  // The 3-bit byte planes at the documented places (formats/lut.h), independently of lane_code.
  std::vector<uint8_t> one(512, 0);
  one[5] = 3;        // plane 0, byte 5, bits 0..2
  one[64 + 6] = 5;   // plane 0, byte 6, bits 3..5
  one[256 + 7] = 6;  // plane 2, byte 7, bits 0..2
  one[448 + 9] = 5;  // e_9 = 5 << 3 = 0b101000: plane 0 gets bits 0..1 (0), plane 1 bits 2..3 (2), plane 2 bits 4..5 (2)
  const std::vector<uint32_t> w3 = sq::pack_lanes(one.data(), 1, 512, 3);
  const auto* b = reinterpret_cast<const uint8_t*>(w3.data());
  EXPECT_EQ(b[5], 3);
  EXPECT_EQ(b[6], 5 << 3);
  EXPECT_EQ(b[128 + 7], 6);
  EXPECT_EQ(b[9], 0);
  EXPECT_EQ(b[64 + 9], 2 << 6);
  EXPECT_EQ(b[128 + 9], 2 << 6);
  const uint8_t bad = 8;
  EXPECT_THROW(sq::pack_lanes(&bad, 1, 1, 3), sq::Error);
  EXPECT_THROW(sq::pack_lanes(&bad, 1, 1, 5), sq::Error);
}

using Tensors = std::map<std::string, std::pair<sq::DType, std::vector<uint8_t>>>;
using Shapes = std::map<std::string, std::vector<int64_t>>;

// Writes a valid 6x10 3-bit matrix with a sparse part as tensors, lets `corrupt` edit them, loads it
// as [rows, cols]. Returns the sq::Error message, or "" when it loaded.
std::string load_edited(const std::function<void(Tensors&, Shapes&)>& corrupt, int64_t rows = 6, int64_t cols = 10) {
  Rng rng(5);
  LutMatrix m = random_matrix(rng, 6, 10, 3, 10, 0.2);
  EXPECT_GT(m.nnz(), 0);
  const std::string p = "L";
  // Re-create the tensors by hand so each can be edited.
  std::map<std::string, std::pair<sq::DType, std::vector<uint8_t>>> t;
  std::map<std::string, std::vector<int64_t>> shape;
  auto put = [&](const std::string& name, sq::DType dt, std::vector<int64_t> sh, const void* data, size_t nb) {
    const uint8_t* b = static_cast<const uint8_t*>(data);
    t[name] = {dt, std::vector<uint8_t>(b, b + nb)};
    shape[name] = sh;
  };
  std::vector<uint8_t> packed = sq::pack_codes(m.codes.data(), m.codes.size(), 3);
  put(p + ".qcodes", sq::DType::U8, {int64_t(packed.size())}, packed.data(), packed.size());
  put(p + ".lut", sq::DType::F16, {6, 1, 8}, m.lut.data(), m.lut.size() * 2);
  int32_t qs[3] = {6, 10, 10};
  put(p + ".qshape", sq::DType::I32, {3}, qs, 12);
  put(p + ".sparse_indptr", sq::DType::I32, {7}, m.indptr.data(), m.indptr.size() * 4);
  put(p + ".sparse_indices", sq::DType::I32, {m.nnz()}, m.indices.data(), m.indices.size() * 4);
  put(p + ".sparse_values", sq::DType::F32, {m.nnz()}, m.values.data(), m.values.size() * 4);
  corrupt(t, shape);
  sq::SafetensorsWriter w;
  for (auto& [name, v] : t) w.add(name, v.first, shape[name], v.second.data(), v.second.size());
  sqtest::TempDir dir;
  w.write(dir / "model.safetensors");
  sq::Checkpoint ckpt(dir.path);
  try {
    auto lin = sq::load_lut_linear(ckpt, p, rows, cols);
    EXPECT_EQ(lin->dequantize(), sq::lut_dequantize(m));
    return "";
  } catch (const sq::Error& e) {
    return e.what();
  }
}

void expect_load_error(const std::function<void(Tensors&, Shapes&)>& corrupt, const std::string& needle,
                       int64_t rows = 6, int64_t cols = 10) {
  std::string err = load_edited(corrupt, rows, cols);
  EXPECT_FALSE(err.empty()) << "no error; expected one mentioning " << needle;
  EXPECT_NE(err.find(needle), std::string::npos) << err;
}

// Every lane row starts on a cache line (core/aligned.h): the decode kernels read codes 64 bytes at a
// time, and a misaligned row splits every such load over two lines. 3- and 4-bit rows carry their int8
// table and scale (kernels/q8.h) in front.
TEST(LutFormat, LaneRowsStartOnCacheLinesWithTheirInt8Tables) {
  Rng rng(5);
  for (int bits : {2, 3, 4})
    for (int64_t cols : {int64_t(1), int64_t(300), int64_t(4096)}) {
      const LutMatrix m = random_matrix(rng, 7, cols, bits, cols, 0.0);
      auto lin = sq::make_lut_linear(m);
      const sq::LutView v = static_cast<const sq::LutLinear&>(*lin).view();
      const std::string what = std::to_string(bits) + "-bit, cols " + std::to_string(cols);
      ASSERT_NE(v.lanes, nullptr) << what;
      ASSERT_EQ(v.has_q8(), bits != 2) << what;
      for (int64_t r = 0; r < v.rows; r++) {
        EXPECT_EQ(reinterpret_cast<uintptr_t>(v.lane_row(r)) % 64, 0u) << what << ", row " << r;
        if (!v.has_q8()) continue;
        int8_t qlut[16], got[16];
        float qscale;
        sq::kernels::lut_q8_tables(m.lut.data() + (r << bits), 1, bits, qlut, &qscale);
        std::memcpy(got, v.q8_table(r), 16);
        EXPECT_EQ(std::memcmp(got, qlut, 16), 0) << what << ", row " << r;
        EXPECT_EQ(v.q8_scale(r), qscale) << what << ", row " << r;
      }
    }
}

TEST(LutFormat, CorruptedTensorsAreRejected) {
  using T = Tensors;
  using S = Shapes;
  auto i32 = [](T& t, const std::string& n, size_t i) -> int32_t* {
    return reinterpret_cast<int32_t*>(t[n].second.data()) + i;
  };
  // The untouched tensors load (so each failure below is caused by its edit).
  EXPECT_EQ(load_edited([](T&, S&) {}), "");
  expect_load_error([](T&, S&) {}, "qshape", 6, 11);  // shape from config.json differs
  expect_load_error([](T&, S&) {}, "qshape", 7, 10);
  expect_load_error([](T& t, S& s) {  // wrong lut shape
    s["L.lut"] = {6, 2, 4};
  }, "L.lut");
  expect_load_error([](T& t, S& s) {  // lut not a power of two
    t["L.lut"].second.resize(6 * 6 * 2);
    s["L.lut"] = {6, 1, 6};
  }, "L.lut");
  expect_load_error([](T& t, S& s) {  // lut in F32
    std::vector<uint8_t> b(6 * 8 * 4, 0);
    t["L.lut"] = {sq::DType::F32, b};
  }, "F16");
  expect_load_error([](T& t, S& s) {  // a table entry is inf
    t["L.lut"].second[0] = 0x00;
    t["L.lut"].second[1] = 0x7c;
  }, "not finite");
  expect_load_error([](T& t, S& s) {  // short qcodes
    t["L.qcodes"].second.pop_back();
    s["L.qcodes"][0]--;
  }, "L.qcodes");
  expect_load_error([](T& t, S& s) { t.erase("L.qcodes"); s.erase("L.qcodes"); }, "L.qcodes' not found");
  expect_load_error([&](T& t, S& s) { *i32(t, "L.sparse_indptr", 3) = 1000; }, "sparse_indptr");
  expect_load_error([&](T& t, S& s) { *i32(t, "L.sparse_indptr", 0) = 1; }, "sparse_indptr");
  expect_load_error([&](T& t, S& s) { *i32(t, "L.sparse_indptr", 6) -= 1; }, "sparse_indptr");
  expect_load_error([&](T& t, S& s) { *i32(t, "L.sparse_indices", 0) = 10; }, "sparse_indices");
  expect_load_error([&](T& t, S& s) { *i32(t, "L.sparse_indices", 0) = -1; }, "sparse_indices");
  expect_load_error([&](T& t, S& s) {  // values shorter than indices
    t["L.sparse_values"].second.resize(t["L.sparse_values"].second.size() - 4);
    s["L.sparse_values"][0]--;
  }, "sparse_values");
  expect_load_error([&](T& t, S& s) {  // values in I32
    t["L.sparse_values"].first = sq::DType::I32;
  }, "sparse_values");
  expect_load_error([&](T& t, S& s) { t.erase("L.sparse_indices"); s.erase("L.sparse_indices"); },
                    "sparse_indices' not found");
  expect_load_error([&](T& t, S& s) {  // qshape group size 0
    *i32(t, "L.qshape", 2) = 0;
  }, "group_size");
  expect_load_error([&](T& t, S& s) {  // NaN sparse value
    float nan = std::nanf("");
    std::memcpy(t["L.sparse_values"].second.data(), &nan, 4);
  }, "not finite");
}

TEST(LutFormat, BadInMemoryMatricesAreRejected) {
  Rng rng(6);
  LutMatrix m = random_matrix(rng, 4, 9, 3, 9, 0.4);
  EXPECT_NO_THROW(sq::validate_lut_matrix(m));
  LutMatrix a = m;
  a.codes[3] = 8;
  EXPECT_THROW(sq::make_lut_linear(a), sq::Error);
  LutMatrix b = m;
  b.bits = 9;
  EXPECT_THROW(sq::validate_lut_matrix(b), sq::Error);
  LutMatrix c = m;
  c.lut.pop_back();
  EXPECT_THROW(sq::make_lut_linear(c), sq::Error);
  LutMatrix d = m;  // a column listed twice in a row
  bool edited = false;
  for (int64_t r = 0; r < d.rows && !edited; r++)
    if (d.indptr[r + 1] - d.indptr[r] >= 2) d.indices[d.indptr[r] + 1] = d.indices[d.indptr[r]], edited = true;
  ASSERT_TRUE(edited);
  EXPECT_THROW(sq::make_lut_linear(d), sq::Error);
  LutMatrix e = m;
  e.values_dtype = sq::DType::I8;
  EXPECT_THROW(sq::validate_lut_matrix(e), sq::Error);
  auto lin = sq::make_lut_linear(m);
  std::vector<float> row(9);
  EXPECT_THROW(lin->dequant_row(4, row.data()), sq::Error);
}

}  // namespace
