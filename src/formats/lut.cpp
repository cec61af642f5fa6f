#include "formats/lut.h"

#include "kernels/scratch.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "core/mmap_file.h"
#include "io/safetensors.h"
#include "kernels/lut.h"
#include "kernels/q8.h"

namespace sq {
namespace {

bool f16_finite(uint16_t h) { return (h & 0x7c00) != 0x7c00; }

bool sparse_dtype_ok(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// Reads an LSB-first stream of `bits`-bit codes starting at element `first`. Loads a byte only when
// the next code needs it, so it never reads past the byte holding the last requested code.
struct BitReader {
  const uint8_t* p;
  uint64_t acc = 0;
  int nb = 0, skip, bits;
  uint32_t mask;
  BitReader(const uint8_t* packed, size_t first, int bits_)
      : p(packed + first * size_t(bits_) / 8), skip(int(first * size_t(bits_) % 8)), bits(bits_),
        mask((1u << bits_) - 1) {}
  uint32_t next() {
    while (nb < bits) {
      acc |= uint64_t(*p++) << nb;
      nb += 8;
      if (skip) {
        acc >>= skip;
        nb -= skip;
        skip = 0;
      }
    }
    uint32_t c = uint32_t(acc) & mask;
    acc >>= bits;
    nb -= bits;
    return c;
  }
};

uint32_t code_at(const uint8_t* packed, size_t e, int bits) { return BitReader(packed, e, bits).next(); }

// CSR structure: indptr [rows+1] from 0, non-decreasing, ending at nnz; indices in [0, cols) and
// strictly increasing within a row (so no position is listed twice).
void check_csr(int64_t rows, int64_t cols, const std::vector<int32_t>& indptr, const std::vector<int32_t>& indices,
               const std::string& indptr_name, const std::string& indices_name) {
  const int64_t nnz = int64_t(indices.size());
  SQ_CHECK(int64_t(indptr.size()) == rows + 1, indptr_name, ": has ", indptr.size(), " entries, expected rows + 1 = ",
           rows + 1);
  SQ_CHECK(indptr[0] == 0, indptr_name, ": first entry is ", indptr[0], ", expected 0");
  for (int64_t r = 0; r < rows; r++)
    SQ_CHECK(indptr[r + 1] >= indptr[r] && indptr[r + 1] <= nnz, indptr_name, ": entry ", r + 1, " = ",
             indptr[r + 1], " is decreasing or past nnz = ", nnz);
  SQ_CHECK(indptr[rows] == nnz, indptr_name, ": last entry is ", indptr[rows], ", expected nnz = ", nnz);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = indptr[r]; j < indptr[r + 1]; j++) {
      SQ_CHECK(indices[j] >= 0 && indices[j] < cols, indices_name, ": entry ", j, " = ", indices[j],
               " is outside [0, ", cols, ")");
      SQ_CHECK(j == indptr[r] || indices[j] > indices[j - 1], indices_name, ": row ", r,
               " columns are not strictly increasing at entry ", j);
    }
}

void check_dims(int64_t rows, int64_t cols, int64_t group_size, int bits, const std::string& what) {
  SQ_CHECK(bits >= 2 && bits <= 8, what, ": bits = ", bits, " is outside [2, 8]");
  SQ_CHECK(rows >= 1 && cols >= 1 && rows <= (int64_t(1) << 31) && cols <= (int64_t(1) << 31), what,
           ": bad shape [", rows, ", ", cols, "]");
  SQ_CHECK(group_size >= 1 && group_size <= cols, what, ": group_size = ", group_size, " is outside [1, cols = ",
           cols, "]");
}

// Dot product with four interleaved f32 partial sums (a fixed, documented order).
float dot_ref(const float* a, const float* b, int64_t n) {
  float s[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int l = 0; l < 4; l++) s[l] += a[i + l] * b[i + l];
  for (; i < n; i++) s[0] += a[i] * b[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

}  // namespace

size_t packed_code_bytes(size_t n, int bits) { return (n * size_t(bits) + 7) / 8; }

std::vector<uint8_t> pack_codes(const uint8_t* codes, size_t n, int bits) {
  SQ_CHECK(bits >= 1 && bits <= 8, "pack_codes: bits = ", bits, " is outside [1, 8]");
  std::vector<uint8_t> out(packed_code_bytes(n, bits), 0);
  uint64_t acc = 0;
  int nb = 0;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    SQ_CHECK(codes[i] >> bits == 0, "pack_codes: code ", int(codes[i]), " at ", i, " does not fit in ", bits, " bits");
    acc |= uint64_t(codes[i]) << nb;
    nb += bits;
    while (nb >= 8) {
      out[o++] = uint8_t(acc);
      acc >>= 8;
      nb -= 8;
    }
  }
  if (nb > 0) out[o++] = uint8_t(acc);
  return out;
}

void unpack_codes(const uint8_t* packed, size_t first, size_t n, int bits, uint8_t* out) {
  SQ_CHECK(bits >= 1 && bits <= 8, "unpack_codes: bits = ", bits, " is outside [1, 8]");
  BitReader br(packed, first, bits);
  for (size_t i = 0; i < n; i++) out[i] = uint8_t(br.next());
}

std::vector<uint8_t> unpack_codes(const std::vector<uint8_t>& packed, size_t n, int bits) {
  SQ_CHECK(packed.size() >= packed_code_bytes(n, bits), "unpack_codes: ", packed.size(), " bytes hold fewer than ",
           n, " codes of ", bits, " bits");
  std::vector<uint8_t> out(n);
  unpack_codes(packed.data(), 0, n, bits, out.data());
  return out;
}

void validate_lut_matrix(const LutMatrix& m, const std::string& what) {
  check_dims(m.rows, m.cols, m.group_size, m.bits, what);
  const size_t numel = size_t(m.rows) * size_t(m.cols);
  SQ_CHECK(m.codes.size() == numel, what, ": ", m.codes.size(), " codes, expected rows * cols = ", numel);
  for (size_t i = 0; i < numel; i++)
    SQ_CHECK(m.codes[i] >> m.bits == 0, what, ": code ", int(m.codes[i]), " at ", i, " needs more than ", m.bits,
             " bits");
  SQ_CHECK(m.lut.size() == size_t(m.rows * m.n_groups() * m.levels()), what, ": ", m.lut.size(),
           " table entries, expected rows * n_groups * 2^bits = ", m.rows * m.n_groups() * m.levels());
  for (size_t i = 0; i < m.lut.size(); i++) SQ_CHECK(f16_finite(m.lut[i]), what, ": table entry ", i, " is not finite");
  SQ_CHECK(sparse_dtype_ok(m.values_dtype), what, ": sparse values dtype ", dtype_name(m.values_dtype),
           " is not F32, F16 or BF16");
  SQ_CHECK(m.indices.size() == m.values.size(), what, ": ", m.indices.size(), " sparse indices but ",
           m.values.size(), " values");
  if (m.indptr.empty()) {
    SQ_CHECK(m.values.empty(), what, ": sparse values without indptr");
  } else {
    check_csr(m.rows, m.cols, m.indptr, m.indices, what + " indptr", what + " indices");
  }
  for (size_t j = 0; j < m.values.size(); j++)
    SQ_CHECK(std::isfinite(m.values[j]), what, ": sparse value ", j, " is not finite");
}

std::vector<float> lut_dequantize(const LutMatrix& m) {
  validate_lut_matrix(m);
  const int64_t L = m.levels(), ng = m.n_groups();
  std::vector<float> w(size_t(m.rows) * size_t(m.cols));
  for (int64_t r = 0; r < m.rows; r++) {
    for (int64_t c = 0; c < m.cols; c++) {
      size_t e = size_t(r * m.cols + c);
      w[e] = f16_to_f32(m.lut[size_t((r * ng + c / m.group_size) * L + m.codes[e])]);
    }
    if (!m.indptr.empty())
      for (int32_t j = m.indptr[r]; j < m.indptr[r + 1]; j++) w[size_t(r * m.cols + m.indices[j])] = m.values[j];
  }
  return w;
}

double lut_bits_per_weight(int64_t rows, int64_t cols, int64_t group_size, int bits, int64_t nnz,
                           DType values_dtype) {
  const int64_t ng = (cols + group_size - 1) / group_size;
  double total = 8.0 * double(packed_code_bytes(size_t(rows) * size_t(cols), bits));
  total += 16.0 * double(rows) * double(ng) * double(1 << bits);  // F16 tables
  total += 3 * 32;                                                // qshape
  if (nnz > 0) total += 32.0 * double(rows + 1) + double(nnz) * (32.0 + 8.0 * double(dtype_size(values_dtype)));
  return total / (double(rows) * double(cols));
}

double lut_bits_per_weight(const LutMatrix& m) {
  return lut_bits_per_weight(m.rows, m.cols, m.group_size, m.bits, m.nnz(), m.values_dtype);
}

void write_lut_linear(SafetensorsWriter& w, const std::string& prefix, const LutMatrix& m) {
  validate_lut_matrix(m, prefix);
  std::vector<uint8_t> packed = pack_codes(m.codes.data(), m.codes.size(), m.bits);
  w.add(prefix + ".qcodes", DType::U8, {int64_t(packed.size())}, packed.data(), packed.size());
  w.add(prefix + ".lut", DType::F16, {m.rows, m.n_groups(), int64_t(m.levels())}, m.lut.data(), m.lut.size() * 2);
  const int32_t qshape[3] = {int32_t(m.rows), int32_t(m.cols), int32_t(m.group_size)};
  w.add(prefix + ".qshape", DType::I32, {3}, qshape, sizeof(qshape));
  if (m.nnz() == 0) return;
  const int64_t nnz = m.nnz();
  w.add(prefix + ".sparse_indptr", DType::I32, {m.rows + 1}, m.indptr.data(), m.indptr.size() * 4);
  w.add(prefix + ".sparse_indices", DType::I32, {nnz}, m.indices.data(), m.indices.size() * 4);
  if (m.values_dtype == DType::F32) {
    w.add(prefix + ".sparse_values", DType::F32, {nnz}, m.values.data(), m.values.size() * 4);
  } else {
    std::vector<uint16_t> h(m.values.size());
    for (size_t j = 0; j < h.size(); j++)
      h[j] = m.values_dtype == DType::F16 ? f32_to_f16(m.values[j]) : f32_to_bf16(m.values[j]);
    w.add(prefix + ".sparse_values", m.values_dtype, {nnz}, h.data(), h.size() * 2);
  }
}

// ---- lane-interleaved codes -----------------------------------------------------------------------

bool lane_layout_supported(int bits, int64_t cols, int64_t group_size) {
  return bits >= 2 && bits <= 4 && group_size == cols && cols > 0;
}
int64_t lane_block_cols(int bits) { return bits == 4 ? 64 : bits == 2 ? 128 : 512; }
int64_t lane_block_words(int bits) { return bits == 3 ? 48 : 8; }
int64_t lane_words_per_row(int64_t cols, int bits) {
  const int64_t bc = lane_block_cols(bits);
  return (cols + bc - 1) / bc * lane_block_words(bits);
}

void pack_lanes_row(const uint8_t* codes, int64_t cols, int bits, uint32_t* out) {
  SQ_CHECK(bits >= 2 && bits <= 4, "lane layout: ", bits, "-bit codes are not supported");
  const int64_t bc = lane_block_cols(bits), bw = lane_block_words(bits);
  std::fill(out, out + lane_words_per_row(cols, bits), 0u);
  for (int64_t c = 0; c < cols; c++) {
    uint32_t* blk = out + (c / bc) * bw;
    const int64_t off = c % bc;
    const uint32_t q = codes[c];
    SQ_CHECK(q < (1u << bits), "lane layout: code ", q, " does not fit in ", bits, " bits");
    if (bits != 3) {
      blk[off % 8] |= q << (bits * (off / 8));
      continue;
    }
    // 3-bit: three 64-byte planes; see formats/lut.h.
    uint8_t* b = reinterpret_cast<uint8_t*>(blk);
    const int64_t p = off % 64, h = off / 64;  // h = 0..7: which 64-column run of the block
    if (h < 6) {
      b[64 * (h / 2) + p] |= uint8_t(q << (3 * (h % 2)));
    } else {  // e = code(384 + p) | code(448 + p) << 3, two bits in the top of each plane's byte p
      const uint32_t e = q << (3 * (h - 6));
      for (int plane = 0; plane < 3; plane++) b[64 * plane + p] |= uint8_t(((e >> (2 * plane)) & 3u) << 6);
    }
  }
}

std::vector<uint32_t> pack_lanes(const uint8_t* codes, int64_t rows, int64_t cols, int bits) {
  SQ_CHECK(bits >= 2 && bits <= 4, "lane layout: ", bits, "-bit codes are not supported");
  const int64_t wpr = lane_words_per_row(cols, bits);
  std::vector<uint32_t> out(size_t(rows * wpr));
  for (int64_t r = 0; r < rows; r++) pack_lanes_row(codes + r * cols, cols, bits, out.data() + r * wpr);
  return out;
}

uint32_t lane_code(const uint32_t* row, int bits, int64_t c) {
  const int64_t bc = lane_block_cols(bits);
  const uint32_t* blk = row + (c / bc) * lane_block_words(bits);
  const int64_t off = c % bc;
  if (bits != 3) return (blk[off % 8] >> (bits * (off / 8))) & ((1u << bits) - 1);
  const uint8_t* b = reinterpret_cast<const uint8_t*>(blk);
  const int64_t p = off % 64, h = off / 64;
  if (h < 6) return (b[64 * (h / 2) + p] >> (3 * (h % 2))) & 7u;
  const uint32_t e = uint32_t(b[p] >> 6) | uint32_t(b[64 + p] >> 6) << 2 | uint32_t(b[128 + p] >> 6) << 4;
  return (e >> (3 * (h - 6))) & 7u;
}

// ---- scalar references -------------------------------------------------------------------------

void lut_decode_row_ref(const LutView& v, int64_t r, float* out) {
  const int64_t L = int64_t(1) << v.bits, ng = v.n_groups();
  float table[256];
  if (v.lanes != nullptr) {  // one table per row (lane_layout_supported)
    const uint32_t* row = v.lane_row(r);
    for (int64_t q = 0; q < L; q++) table[q] = f16_to_f32(v.lut[r * L + q]);
    for (int64_t c = 0; c < v.cols; c++) out[c] = table[lane_code(row, v.bits, c)];
    return;
  }
  BitReader br(v.qcodes, size_t(r) * size_t(v.cols), v.bits);
  for (int64_t g = 0; g < ng; g++) {
    const uint16_t* t = v.lut + (r * ng + g) * L;
    for (int64_t q = 0; q < L; q++) table[q] = f16_to_f32(t[q]);
    const int64_t c1 = std::min(v.cols, (g + 1) * v.group_size);
    for (int64_t c = g * v.group_size; c < c1; c++) out[c] = table[br.next()];
  }
}

void lut_dequant_row_ref(const LutView& v, int64_t r, float* out) {
  lut_decode_row_ref(v, r, out);
  if (v.nnz == 0) return;
  for (int32_t j = v.indptr[r]; j < v.indptr[r + 1]; j++) out[v.indices[j]] = v.values[j];
}

void lut_matmul_ref(const LutView& v, const float* x, int64_t n, float* y, int64_t row_begin, int64_t row_end) {
  float* row = kernels::thread_buffer<struct LutRefRow, float>(size_t(v.cols));  // no allocation per call
  for (int64_t r = row_begin; r < row_end; r++) {
    lut_decode_row_ref(v, r, row);
    for (int64_t t = 0; t < n; t++) {
      const float* xt = x + t * v.cols;
      float acc = dot_ref(row, xt, v.cols);
      if (v.nnz > 0)
        for (int32_t j = v.indptr[r]; j < v.indptr[r + 1]; j++) acc += v.deltas[j] * xt[v.indices[j]];
      y[t * v.rows + r] = acc;
    }
  }
}

// ---- LutLinear ---------------------------------------------------------------------------------

LutLinear::LutLinear(int64_t rows, int64_t cols, int64_t group_size, int bits, std::vector<uint8_t> qcodes,
                     std::vector<uint16_t> lut, std::vector<int32_t> indptr, std::vector<int32_t> indices,
                     std::vector<float> values, DType values_dtype, const std::string& what)
    : group_size_(group_size), bits_(bits), qcodes_(std::move(qcodes)), lut_(std::move(lut)),
      indptr_(std::move(indptr)), indices_(std::move(indices)), values_(std::move(values)),
      values_dtype_(values_dtype) {
  check_dims(rows, cols, group_size, bits, what);
  rows_ = rows;
  cols_ = cols;
  const size_t numel = size_t(rows) * size_t(cols);
  SQ_CHECK(qcodes_.size() == packed_code_bytes(numel, bits), what, ": packed codes have ", qcodes_.size(),
           " bytes, expected ceil(rows * cols * bits / 8) = ", packed_code_bytes(numel, bits));
  const int64_t ng = (cols + group_size - 1) / group_size;
  SQ_CHECK(lut_.size() == size_t(rows * ng) << bits, what, ": ", lut_.size(), " table entries, expected ",
           size_t(rows * ng) << bits);
  for (size_t i = 0; i < lut_.size(); i++) SQ_CHECK(f16_finite(lut_[i]), what, ": table entry ", i, " is not finite");
  SQ_CHECK(sparse_dtype_ok(values_dtype), what, ": sparse values dtype ", dtype_name(values_dtype),
           " is not F32, F16 or BF16");
  SQ_CHECK(indices_.size() == values_.size(), what, ": ", indices_.size(), " sparse indices but ", values_.size(),
           " values");
  if (values_.empty()) {
    indptr_.clear();
    indices_.clear();
  } else {
    check_csr(rows, cols, indptr_, indices_, what + " sparse indptr", what + " sparse indices");
  }
  // delta = exact value − dense value at the same position, so that D·x + Δ·x = W·x.
  deltas_.resize(values_.size());
  for (int64_t r = 0; r < rows && !values_.empty(); r++)
    for (int32_t j = indptr_[r]; j < indptr_[r + 1]; j++) {
      SQ_CHECK(std::isfinite(values_[j]), what, ": sparse value ", j, " is not finite");
      const int64_t c = indices_[j];
      uint32_t code = code_at(qcodes_.data(), size_t(r) * size_t(cols) + size_t(c), bits);
      deltas_[j] = values_[j] - f16_to_f32(lut_[size_t((r * ng + c / group_size) << bits) + code]);
    }
  if (lane_layout_supported(bits, cols, group_size)) {
    std::vector<uint8_t> row(static_cast<size_t>(cols), 0);
    const int64_t wpr = lane_words_per_row(cols, bits);
    lane_meta_words_ = bits == 3 || bits == 4 ? line_words(16 + 4) : 0;  // int8 table + f32 scale
    lane_stride_ = lane_meta_words_ + line_words(4 * wpr);  // rows start on cache lines
    lanes_.assign(size_t(rows * lane_stride_), 0);
    for (int64_t r = 0; r < rows; r++) {  // row by row, so the unpacked codes stay small
      uint32_t* dst = lanes_.data() + r * lane_stride_;
      if (lane_meta_words_ > 0) {
        int8_t qlut[16];
        float qscale;
        kernels::lut_q8_tables(lut_.data() + (r << bits), 1, bits, qlut, &qscale);
        std::memcpy(dst, qlut, 16);
        std::memcpy(dst + LutView::kQ8ScaleWord, &qscale, 4);
      }
      unpack_codes(qcodes_.data(), size_t(r) * size_t(cols), size_t(cols), bits, row.data());
      pack_lanes_row(row.data(), cols, bits, dst + lane_meta_words_);
    }
    std::vector<uint8_t>().swap(qcodes_);
  }
}

LutView LutLinear::view() const {
  LutView v;
  v.rows = rows_;
  v.cols = cols_;
  v.group_size = group_size_;
  v.bits = bits_;
  if (lanes_.empty())
    v.qcodes = qcodes_.data();
  else
    v.lanes = lanes_.data();
  v.lane_stride = lane_stride_;
  v.lane_meta_words = lane_meta_words_;
  v.lut = lut_.data();
  v.nnz = int64_t(values_.size());
  if (v.nnz > 0) {
    v.indptr = indptr_.data();
    v.indices = indices_.data();
    v.values = values_.data();
    v.deltas = deltas_.data();
  }
  return v;
}

void LutLinear::matmul(const float* x, int64_t n, float* y, const ExecContext& ctx) const {
  // ISA dispatch and threading live in kernels/lut.h (kScalar runs lut_matmul_ref over row ranges).
  kernels::lut_matmul(view(), x, n, y, ctx);
}

void LutLinear::dequant_row(int64_t r, float* out) const {
  SQ_CHECK(r >= 0 && r < rows_, "lut dequant_row: row ", r, " is outside [0, ", rows_, ")");
  lut_dequant_row_ref(view(), r, out);
}

size_t LutLinear::weight_bytes() const {
  // As stored on disk (the lane layout in memory is the same size unless cols is not a multiple of its
  // block, whose padding is an in-memory detail).
  size_t b = packed_code_bytes(size_t(rows_) * size_t(cols_), bits_) + lut_.size() * 2;
  if (!values_.empty()) b += indptr_.size() * 4 + indices_.size() * 4 + values_.size() * dtype_size(values_dtype_);
  return b;
}

std::string LutLinear::describe() const {
  std::string s = "lut" + std::to_string(bits_);
  if (group_size_ < cols_) s += " g" + std::to_string(group_size_);
  if (!values_.empty()) {
    char buf[48];
    std::snprintf(buf, sizeof buf, " +%.2f%% sparse", 100.0 * double(values_.size()) / (double(rows_) * double(cols_)));
    s += buf;
  }
  return s;
}

// ---- loading -----------------------------------------------------------------------------------

namespace {

std::string where(const TensorView& t) { return cat(t.file, ": tensor '", t.name, "'"); }

void expect(const TensorView& t, DType dtype, size_t rank, const std::string& want) {
  if (t.dtype != dtype || t.shape.size() != rank)
    fail(where(t), ": expected ", dtype_name(dtype), " ", want, ", got ", dtype_name(t.dtype), " ", t.shape_str());
}

template <typename T>
std::vector<T> copy_as(const TensorView& t) {
  std::vector<T> v(size_t(t.numel()));
  if (!v.empty()) std::memcpy(v.data(), t.data, v.size() * sizeof(T));
  release_pages(t);  // the copy is what runs
  return v;
}

}  // namespace

std::unique_ptr<LinearWeight> load_lut_linear(const Checkpoint& ckpt, const std::string& prefix, int64_t rows,
                                              int64_t cols) {
  auto need = [&](const char* suffix) -> const TensorView& {
    const TensorView* t = ckpt.find(prefix + suffix);
    if (!t)
      fail(ckpt.dir().string(), ": tensor '", prefix, suffix, "' not found (needed by the lookup-table weight '",
           prefix, "')");
    return *t;
  };
  const TensorView& qshape = need(".qshape");
  expect(qshape, DType::I32, 1, "[3]");
  if (qshape.shape[0] != 3) fail(where(qshape), ": expected I32 [3], got ", qshape.shape_str());
  std::vector<int32_t> qs = copy_as<int32_t>(qshape);
  if (qs[0] != rows || qs[1] != cols)
    fail(where(qshape), ": shape {", qs[0], ", ", qs[1], "} does not match [", rows, ", ", cols, "] from config.json");
  const int64_t gs = qs[2];
  if (gs < 1 || gs > cols) fail(where(qshape), ": group_size ", gs, " is outside [1, ", cols, "]");
  const int64_t ng = (cols + gs - 1) / gs;

  const TensorView& lut = need(".lut");
  const std::string lut_want = cat("[", rows, ", ", ng, ", 2^bits]");
  expect(lut, DType::F16, 3, lut_want);
  const int64_t L = lut.shape[2];
  int bits = 0;
  while (bits < 9 && (int64_t(1) << bits) != L) bits++;
  if (lut.shape[0] != rows || lut.shape[1] != ng || bits < 2 || bits > 8)
    fail(where(lut), ": expected F16 ", lut_want, " with bits in [2, 8], got ", lut.shape_str());
  std::vector<uint16_t> lutv = copy_as<uint16_t>(lut);
  for (size_t i = 0; i < lutv.size(); i++)
    if (!f16_finite(lutv[i])) fail(where(lut), ": entry ", i, " is not finite");

  const TensorView& qcodes = need(".qcodes");
  const size_t want_bytes = packed_code_bytes(size_t(rows) * size_t(cols), bits);
  expect(qcodes, DType::U8, 1, cat("[", want_bytes, "]"));
  if (size_t(qcodes.shape[0]) != want_bytes)
    fail(where(qcodes), ": has ", qcodes.shape[0], " bytes, expected ceil(", rows, " * ", cols, " * ", bits,
         " / 8) = ", want_bytes);
  std::vector<uint8_t> codes = copy_as<uint8_t>(qcodes);

  const TensorView* ip = ckpt.find(prefix + ".sparse_indptr");
  const TensorView* ix = ckpt.find(prefix + ".sparse_indices");
  const TensorView* vv = ckpt.find(prefix + ".sparse_values");
  std::vector<int32_t> indptr, indices;
  std::vector<float> values;
  DType vdt = DType::F32;
  if (ip || ix || vv) {
    const TensorView& tip = need(".sparse_indptr");
    const TensorView& tix = need(".sparse_indices");
    const TensorView& tvv = need(".sparse_values");
    expect(tip, DType::I32, 1, cat("[", rows + 1, "]"));
    if (tip.shape[0] != rows + 1) fail(where(tip), ": expected I32 [", rows + 1, "], got ", tip.shape_str());
    expect(tix, DType::I32, 1, "[nnz]");
    if (!sparse_dtype_ok(tvv.dtype) || tvv.shape.size() != 1 || tvv.shape[0] != tix.shape[0])
      fail(where(tvv), ": expected F32, F16 or BF16 [", tix.shape[0], "] (one per sparse index), got ",
           dtype_name(tvv.dtype), " ", tvv.shape_str());
    if (tix.shape[0] > rows * cols) fail(where(tix), ": more entries (", tix.shape[0], ") than weights");
    indptr = copy_as<int32_t>(tip);
    indices = copy_as<int32_t>(tix);
    check_csr(rows, cols, indptr, indices, where(tip), where(tix));
    vdt = tvv.dtype;
    values.resize(size_t(tvv.numel()));
    convert_to_f32(tvv.data, vdt, values.data(), values.size());
    for (size_t j = 0; j < values.size(); j++)
      if (!std::isfinite(values[j])) fail(where(tvv), ": entry ", j, " is not finite");
  }
  return std::make_unique<LutLinear>(rows, cols, gs, bits, std::move(codes), std::move(lutv), std::move(indptr),
                                     std::move(indices), std::move(values), vdt, prefix);
}

std::unique_ptr<LinearWeight> make_lut_linear(LutMatrix m) {
  validate_lut_matrix(m);
  std::vector<uint8_t> packed = pack_codes(m.codes.data(), m.codes.size(), m.bits);
  m.codes = {};
  return std::make_unique<LutLinear>(m.rows, m.cols, m.group_size, m.bits, std::move(packed), std::move(m.lut),
                                     std::move(m.indptr), std::move(m.indices), std::move(m.values), m.values_dtype);
}

}  // namespace sq
