#include "formats/int4_group.h"

#include "kernels/scratch.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/dtype.h"
#include "core/error.h"
#include "core/mmap_file.h"
#include "io/safetensors.h"
#include "kernels/int4.h"

namespace sq {

int64_t int4_num_groups(int64_t cols, int64_t group_size) {
  SQ_CHECK(group_size == -1 || group_size > 0, "int4: group_size ", group_size, " is invalid (use -1 or > 0)");
  if (group_size == -1) return 1;
  return cols / group_size + (cols % group_size != 0);  // not (cols + gs - 1) / gs: gs may be near INT64_MAX
}

int64_t Int4Matrix::n_groups() const { return int4_num_groups(cols, group_size); }

int32_t Int4Matrix::group_of(int64_t col) const {
  if (!g_idx.empty()) return g_idx[size_t(col)];
  return group_size == -1 ? 0 : int32_t(col / group_size);
}

float Int4Matrix::dequant(int64_t r, int64_t c) const {
  size_t gi = size_t(group_of(c)) * size_t(rows) + size_t(r);
  return f16_to_f32(scales[gi]) * float(int(q[size_t(r) * size_t(cols) + size_t(c)]) - int(zeros[gi]));
}

void validate_int4_matrix(const Int4Matrix& m, const std::string& what) {
  SQ_CHECK(m.rows > 0 && m.cols > 0, what, ": int4 matrix has shape [", m.rows, ", ", m.cols, "]");
  SQ_CHECK(m.group_size == -1 || m.group_size > 0, what, ": group_size ", m.group_size, " is invalid");
  const int64_t G = m.n_groups();
  SQ_CHECK(m.q.size() == size_t(m.rows * m.cols), what, ": ", m.q.size(), " codes for shape [", m.rows, ", ",
           m.cols, "]");
  SQ_CHECK(m.zeros.size() == size_t(G * m.rows) && m.scales.size() == size_t(G * m.rows), what, ": zeros/scales ",
           "have ", m.zeros.size(), "/", m.scales.size(), " entries, expected ", G, " groups x ", m.rows, " rows");
  SQ_CHECK(m.g_idx.empty() || m.g_idx.size() == size_t(m.cols), what, ": g_idx has ", m.g_idx.size(),
           " entries, expected ", m.cols);
  for (size_t i = 0; i < m.q.size(); i++)
    SQ_CHECK(m.q[i] <= 15, what, ": code ", int(m.q[i]), " at index ", i, " is not 4-bit");
  for (size_t i = 0; i < m.zeros.size(); i++)
    SQ_CHECK(m.zeros[i] <= 15, what, ": zero point ", int(m.zeros[i]), " at index ", i, " is not 4-bit");
  for (size_t i = 0; i < m.scales.size(); i++)
    SQ_CHECK(std::isfinite(f16_to_f32(m.scales[i])), what, ": scale at index ", i, " is not finite");
  for (size_t i = 0; i < m.g_idx.size(); i++)
    SQ_CHECK(m.g_idx[i] >= 0 && m.g_idx[i] < G, what, ": g_idx[", i, "] = ", m.g_idx[i], " is outside [0, ", G, ")");
}

// ---- GPTQ v1 packing -------------------------------------------------------------------------

std::vector<int32_t> pack_gptq_qweight(const Int4Matrix& m) {
  const int64_t in8 = (m.cols + 7) / 8;
  std::vector<uint32_t> w(size_t(in8 * m.rows), 0);  // [in8, rows]; padding inputs keep code 0
  for (int64_t r = 0; r < m.rows; r++)
    for (int64_t c = 0; c < m.cols; c++)
      w[size_t((c / 8) * m.rows + r)] |= uint32_t(m.q[size_t(r * m.cols + c)] & 15) << (4 * (c % 8));
  std::vector<int32_t> out(w.size());
  std::memcpy(out.data(), w.data(), w.size() * 4);
  return out;
}

std::vector<int32_t> pack_gptq_qzeros(const Int4Matrix& m) {
  const int64_t G = m.n_groups(), out8 = (m.rows + 7) / 8;
  std::vector<uint32_t> z(size_t(G * out8), 0);  // [G, out8]; padding outputs keep stored nibble 0
  for (int64_t g = 0; g < G; g++)
    for (int64_t r = 0; r < m.rows; r++) {
      int zero = m.zeros[size_t(g * m.rows + r)];
      SQ_CHECK(zero >= 1 && zero <= 15, "int4: zero point ", zero, " (group ", g, ", row ", r,
               ") cannot be stored in GPTQ v1, which stores zero - 1 in 4 bits (valid zero points: 1..15)");
      z[size_t(g * out8 + r / 8)] |= uint32_t(zero - 1) << (4 * (r % 8));
    }
  std::vector<int32_t> out(z.size());
  std::memcpy(out.data(), z.data(), z.size() * 4);
  return out;
}

void write_int4_linear(SafetensorsWriter& w, const std::string& prefix, const Int4Matrix& m) {
  validate_int4_matrix(m, prefix);
  const int64_t G = m.n_groups(), in8 = (m.cols + 7) / 8, out8 = (m.rows + 7) / 8;
  std::vector<int32_t> qz;
  try {
    qz = pack_gptq_qzeros(m);
  } catch (const Error& e) {
    fail(prefix, ": ", e.what());
  }
  std::vector<int32_t> qw = pack_gptq_qweight(m);
  std::vector<int32_t> gi(static_cast<size_t>(m.cols));
  for (int64_t c = 0; c < m.cols; c++) gi[size_t(c)] = m.group_of(c);
  w.add(prefix + ".qweight", DType::I32, {in8, m.rows}, qw.data(), qw.size() * 4);
  w.add(prefix + ".qzeros", DType::I32, {G, out8}, qz.data(), qz.size() * 4);
  w.add(prefix + ".scales", DType::F16, {G, m.rows}, m.scales.data(), m.scales.size() * 2);
  w.add(prefix + ".g_idx", DType::I32, {m.cols}, gi.data(), gi.size() * 4);
}

nlohmann::json gptq_quantization_config(int group_size, bool desc_act, bool sym) {
  SQ_CHECK(group_size == -1 || group_size > 0, "gptq_quantization_config: group_size ", group_size, " is invalid");
  // Keys read by transformers' GPTQConfig (bits, group_size, damp_percent in (0, 1), desc_act, sym,
  // true_sequential, checkpoint_format), vLLM (bits, group_size, desc_act required; sym for its Marlin
  // check; lm_head) and AutoGPTQ's BaseQuantizeConfig (static_groups, model_file_base_name).
  return nlohmann::json{{"quant_method", "gptq"},     {"bits", 4},
                        {"group_size", group_size},   {"desc_act", desc_act},
                        {"sym", sym},                 {"true_sequential", true},
                        {"static_groups", false},     {"damp_percent", 0.01},
                        {"checkpoint_format", "gptq"}, {"lm_head", false},
                        {"model_file_base_name", "model"}};
}

// ---- quantization_config ---------------------------------------------------------------------

namespace {

bool json_integer(const nlohmann::json& j, int64_t* out) {
  if (j.is_number_integer()) {
    *out = j.get<int64_t>();
    return true;
  }
  if (j.is_number_float()) {
    double d = j.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) {
      *out = int64_t(d);
      return true;
    }
  }
  return false;
}

std::string lower(std::string s) {
  for (auto& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

}  // namespace

GptqParams parse_gptq_config(const nlohmann::json& qc, const std::string& where) {
  SQ_CHECK(qc.is_object(), where, ": missing or not an object; GPTQ tensors (.qweight) need "
           "quantization_config with bits and group_size");
  GptqParams p;
  if (qc.contains("quant_method")) {
    SQ_CHECK(qc["quant_method"].is_string(), where, ": quant_method is not a string");
    std::string m = lower(qc["quant_method"].get<std::string>());
    SQ_CHECK(m != "awq", where, ": quant_method \"awq\" is not supported (AWQ packs codes along the output "
             "dimension in another nibble order); squeeze reads GPTQ checkpoints");
    SQ_CHECK(m == "gptq", where, ": quant_method \"", m, "\" is not supported; squeeze reads GPTQ checkpoints");
  }
  if (qc.contains("is_marlin_format") && qc["is_marlin_format"].is_boolean() && qc["is_marlin_format"].get<bool>())
    fail(where, ": is_marlin_format is true; Marlin-repacked checkpoints are not supported (use the GPTQ format)");
  // transformers reads the legacy "checkpoint_format" over "format" when both are present.
  for (const char* key : {"checkpoint_format", "format"}) {
    if (!qc.contains(key) || qc[key].is_null()) continue;
    SQ_CHECK(qc[key].is_string(), where, ": ", key, " is not a string");
    std::string f = lower(qc[key].get<std::string>());
    if (f == "gptq") {
      p.zero_offset = 1;
    } else if (f == "gptq_v2") {
      p.zero_offset = 0;
    } else {
      fail(where, ": ", key, " \"", f, "\" is not supported (squeeze reads \"gptq\" and \"gptq_v2\"; Marlin, "
           "BitBLAS, exllama-v2 and AWQ packings are not)");
    }
    break;
  }
  int64_t bits = 0;
  SQ_CHECK(qc.contains("bits") && json_integer(qc["bits"], &bits), where, ": missing integer \"bits\"");
  SQ_CHECK(bits == 4, where, ": bits ", bits, " is not supported (squeeze runs 4-bit GPTQ only)");
  p.bits = 4;
  int64_t gs = 0;
  SQ_CHECK(qc.contains("group_size") && json_integer(qc["group_size"], &gs), where,
           ": missing integer \"group_size\"");
  SQ_CHECK(gs == -1 || gs > 0, where, ": group_size ", gs, " is invalid (use -1 or > 0)");
  p.group_size = gs;
  if (qc.contains("desc_act") && !qc["desc_act"].is_null()) {
    SQ_CHECK(qc["desc_act"].is_boolean(), where, ": desc_act is not a boolean");
    p.desc_act = qc["desc_act"].get<bool>();
  }
  if (qc.contains("pack_dtype") && !qc["pack_dtype"].is_null()) {
    SQ_CHECK(qc["pack_dtype"].is_string() && lower(qc["pack_dtype"].get<std::string>()) == "int32", where,
             ": pack_dtype ", qc["pack_dtype"].dump(), " is not supported (codes must be packed in int32)");
  }
  if (qc.contains("dynamic") && !qc["dynamic"].is_null() && !qc["dynamic"].empty())
    fail(where, ": per-module \"dynamic\" overrides are not supported");
  return p;
}

// ---- engine layout ---------------------------------------------------------------------------

namespace {

// Fills perm / group_begin / has_g_idx from a full g_idx (values already checked to be in range)
// and allocates codes / scales / zeros.
void init_layout(Int4Packed& p, const std::vector<int32_t>& g_idx) {
  const int64_t cols = p.cols, G = p.n_groups;
  p.row_bytes = (cols + 7) / 8 * 4;
  p.has_g_idx = false;
  bool sorted = true;
  for (int64_t c = 0; c < cols; c++) {
    int64_t natural = p.group_size == -1 ? 0 : c / p.group_size;
    if (g_idx[size_t(c)] != natural) p.has_g_idx = true;
    if (c > 0 && g_idx[size_t(c)] < g_idx[size_t(c - 1)]) sorted = false;
  }
  p.group_begin.assign(size_t(G + 1), 0);
  for (int64_t c = 0; c < cols; c++) p.group_begin[size_t(g_idx[size_t(c)] + 1)]++;
  for (int64_t g = 0; g < G; g++) p.group_begin[size_t(g + 1)] += p.group_begin[size_t(g)];
  p.perm.clear();
  if (!sorted) {
    p.perm.resize(size_t(cols));
    std::iota(p.perm.begin(), p.perm.end(), 0);
    std::stable_sort(p.perm.begin(), p.perm.end(),
                     [&](int32_t a, int32_t b) { return g_idx[size_t(a)] < g_idx[size_t(b)]; });
  }
  p.codes.assign(size_t(p.rows * p.row_bytes), 0);
  p.scales.assign(size_t(p.rows * G), 0.0f);
  p.zeros.assign(size_t(p.rows * G), 0);
}

// orig[cols]: codes of row r in input-column order.
void set_row_codes(Int4Packed& p, int64_t r, const uint8_t* orig) {
  uint8_t* dst = p.codes.data() + size_t(r * p.row_bytes);
  std::memset(dst, 0, size_t(p.row_bytes));
  for (int64_t k = 0; k < p.cols; k++) {
    uint8_t c = p.perm.empty() ? orig[k] : orig[p.perm[size_t(k)]];
    dst[k >> 1] |= uint8_t((c & 15) << ((k & 1) * 4));
  }
}

}  // namespace

void int4_matmul_rows_ref(const Int4Packed& w, const float* xp, int64_t n, float* y, int64_t r0, int64_t r1) {
  const int64_t G = w.n_groups, cols = w.cols, rows = w.rows;
  // Row r as (code - zero) in stored order, unscaled (2 * row_bytes >= cols entries).
  float* wq = kernels::thread_buffer<struct Int4RefRow, float>(size_t(2 * w.row_bytes));  // no allocation per call
  const int64_t nbytes = (cols + 1) / 2;
  for (int64_t r = r0; r < r1; r++) {
    if (!w.lanes.empty()) {
      for (int64_t k = 0; k < cols; k++) wq[size_t(k)] = float(w.code(r, k));
    } else {
      const uint8_t* row = w.codes.data() + size_t(r * w.row_bytes);
      for (int64_t b = 0; b < nbytes; b++) {
        wq[size_t(2 * b)] = float(row[b] & 15);
        wq[size_t(2 * b + 1)] = float(row[b] >> 4);
      }
    }
    for (int64_t g = 0; g < G; g++) {
      const float z = float(w.zero(r, g));
      for (int64_t k = w.group_begin[size_t(g)]; k < w.group_begin[size_t(g + 1)]; k++) wq[size_t(k)] -= z;
    }
    for (int64_t t = 0; t < n; t++) {
      const float* xt = xp + size_t(t * cols);
      float acc = 0.0f;
      for (int64_t g = 0; g < G; g++) {
        // Σ (code - zero) · x over the group in 8 fixed lanes (a deterministic order the compiler can
        // keep in one vector register), then the scale once per group.
        float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        const int64_t kb = w.group_begin[size_t(g)], ke = w.group_begin[size_t(g + 1)];
        int64_t k = kb;
        for (; k + 8 <= ke; k += 8)
          for (int j = 0; j < 8; j++) lane[j] += wq[size_t(k + j)] * xt[k + j];
        for (int j = 0; k < ke; k++, j++) lane[j] += wq[size_t(k)] * xt[k];
        const float dot = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
        acc += w.scale(r, g) * dot;
      }
      y[size_t(t * rows + r)] = acc;
    }
  }
}

namespace {
// X in original column order -> stored order (a copy only for act-order layouts).
const float* permute_input(const Int4Packed& w, const float* x, int64_t n, std::vector<float>& buf) {
  if (w.perm.empty()) return x;
  buf.resize(size_t(n * w.cols));
  for (int64_t t = 0; t < n; t++)
    for (int64_t k = 0; k < w.cols; k++) buf[size_t(t * w.cols + k)] = x[size_t(t * w.cols + w.perm[size_t(k)])];
  return buf.data();
}
}  // namespace

void int4_matmul_ref(const Int4Packed& w, const float* x, int64_t n, float* y) {
  std::vector<float> buf;
  int4_matmul_rows_ref(w, permute_input(w, x, n, buf), n, y, 0, w.rows);
}

void int4_dequant_row_ref(const Int4Packed& w, int64_t r, float* out) {
  for (int64_t g = 0; g < w.n_groups; g++) {
    const float s = w.scale(r, g);
    const int z = w.zero(r, g);
    for (int64_t k = w.group_begin[size_t(g)]; k < w.group_begin[size_t(g + 1)]; k++) {
      int64_t c = w.perm.empty() ? k : w.perm[size_t(k)];
      out[c] = s * float(int(w.code(r, k)) - z);
    }
  }
}

bool int4_lanes_apply(const Int4Packed& w) {
  if (w.n_groups < 1 || int64_t(w.group_begin.size()) != w.n_groups + 1) return false;
  for (int64_t g = 1; g < w.n_groups; g++)
    if (w.group_begin[size_t(g)] % lane_block_cols(4) != 0) return false;
  return true;
}

void int4_to_lanes(Int4Packed& w) {
  SQ_CHECK(int4_lanes_apply(w), "int4 lane layout: a group does not start on a 64-column block");
  std::vector<uint8_t> row(static_cast<size_t>(w.cols), 0);
  const int64_t G = w.n_groups, meta = line_words(5 * G);  // G f32 scales + G zero points
  const int64_t stride = meta + line_words(4 * lane_words_per_row(w.cols, 4));
  AlignedVector<uint32_t> lanes(size_t(w.rows * stride), 0);
  for (int64_t r = 0; r < w.rows; r++) {
    uint32_t* dst = lanes.data() + r * stride;  // the layout Int4Packed::lane_scales / lane_zeros read
    std::memcpy(dst, w.scales.data() + r * G, size_t(4 * G));
    std::memcpy(dst + G, w.zeros.data() + r * G, size_t(G));
    for (int64_t k = 0; k < w.cols; k++) row[size_t(k)] = w.code(r, k);
    pack_lanes_row(row.data(), w.cols, 4, dst + meta);
  }
  w.lanes = std::move(lanes);
  w.lane_meta_words = meta;
  w.lane_stride = stride;
  std::vector<uint8_t>().swap(w.codes);
  std::vector<float>().swap(w.scales);
  std::vector<uint8_t>().swap(w.zeros);
}

Int4Linear::Int4Linear(Int4Packed p) : p_(std::move(p)) {
  rows_ = p_.rows;
  cols_ = p_.cols;
  if (p_.lanes.empty() && int4_lanes_apply(p_)) int4_to_lanes(p_);
}

void Int4Linear::matmul(const float* x, int64_t n, float* y, const ExecContext& ctx) const {
  // ISA dispatch and threading live in kernels/int4.h (kScalar runs int4_matmul_rows_ref).
  kernels::int4_matmul(p_, x, n, y, ctx);
}

void Int4Linear::dequant_row(int64_t r, float* out) const { int4_dequant_row_ref(p_, r, out); }

size_t Int4Linear::weight_bytes() const {
  const size_t in8 = size_t((p_.cols + 7) / 8), out8 = size_t((p_.rows + 7) / 8), G = size_t(p_.n_groups);
  size_t b = in8 * size_t(p_.rows) * 4 + G * out8 * 4 + G * size_t(p_.rows) * 2;
  if (p_.has_g_idx) b += size_t(p_.cols) * 4;
  return b;
}

std::string Int4Linear::describe() const {
  std::string s = "int4 g" + std::to_string(p_.group_size);
  if (p_.has_g_idx) s += " act-order";
  return s;
}

std::unique_ptr<LinearWeight> make_int4_linear(const Int4Matrix& m) {
  validate_int4_matrix(m, "int4 matrix");
  Int4Packed p;
  p.rows = m.rows;
  p.cols = m.cols;
  p.group_size = m.group_size;
  p.n_groups = m.n_groups();
  std::vector<int32_t> gi(static_cast<size_t>(m.cols));
  for (int64_t c = 0; c < m.cols; c++) gi[size_t(c)] = m.group_of(c);
  init_layout(p, gi);
  for (int64_t r = 0; r < m.rows; r++) set_row_codes(p, r, m.q.data() + size_t(r * m.cols));
  for (int64_t g = 0; g < p.n_groups; g++)
    for (int64_t r = 0; r < m.rows; r++) {
      p.scales[size_t(r * p.n_groups + g)] = f16_to_f32(m.scales[size_t(g * m.rows + r)]);
      p.zeros[size_t(r * p.n_groups + g)] = m.zeros[size_t(g * m.rows + r)];
    }
  return std::make_unique<Int4Linear>(std::move(p));
}

// ---- loading ---------------------------------------------------------------------------------

namespace {

[[noreturn]] void bad_tensor(const TensorView& t, const std::string& problem) {
  fail(t.file, ": tensor '", t.name, "' ", problem);
}

void expect_2d(const TensorView& t, int64_t d0, int64_t d1, const std::string& meaning) {
  if (t.shape.size() != 2 || t.shape[0] != d0 || t.shape[1] != d1)
    bad_tensor(t, cat("has shape ", t.shape_str(), ", expected [", d0, ", ", d1, "] (", meaning, ")"));
}

uint32_t load_u32(const void* data, size_t i) {
  uint32_t v;
  std::memcpy(&v, static_cast<const uint8_t*>(data) + 4 * i, 4);
  return v;
}

}  // namespace

std::unique_ptr<LinearWeight> load_int4_linear(const Checkpoint& ckpt, const std::string& prefix, int64_t rows,
                                               int64_t cols, const nlohmann::json& quant_config) {
  const GptqParams gp = parse_gptq_config(quant_config, (ckpt.dir() / "config.json").string() + " quantization_config");
  SQ_CHECK(rows > 0 && cols > 0, prefix, ": invalid linear shape [", rows, ", ", cols, "]");
  const int64_t G = int4_num_groups(cols, gp.group_size), in8 = (cols + 7) / 8, out8 = (rows + 7) / 8;
  const TensorView& qw = ckpt.get(prefix + ".qweight");
  const TensorView& qz = ckpt.get(prefix + ".qzeros");
  const TensorView& sc = ckpt.get(prefix + ".scales");
  const TensorView* gi = ckpt.find(prefix + ".g_idx");

  if (qw.dtype != DType::I32)
    bad_tensor(qw, cat("has dtype ", dtype_name(qw.dtype), ", expected I32 (eight 4-bit codes per int32)"));
  if (qw.shape.size() == 2 && qw.shape[0] == cols && qw.shape[1] == out8 && !(cols == in8 && rows == out8))
    bad_tensor(qw, cat("has shape ", qw.shape_str(), ": codes packed along the output dimension (AWQ-style "
                       "layout) are not supported; GPTQ packs along the input: [", in8, ", ", rows, "]"));
  expect_2d(qw, in8, rows, cat("4-bit GPTQ packs in=", cols, " inputs 8 per int32, one column per output"));
  if (qz.dtype != DType::I32) bad_tensor(qz, cat("has dtype ", dtype_name(qz.dtype), ", expected I32"));
  expect_2d(qz, G, out8, cat(G, " groups of ", gp.group_size, " inputs x ", rows, " outputs packed 8 per int32"));
  if (sc.dtype != DType::F16 && sc.dtype != DType::BF16 && sc.dtype != DType::F32)
    bad_tensor(sc, cat("has dtype ", dtype_name(sc.dtype), ", expected F16"));
  expect_2d(sc, G, rows, cat(G, " groups x ", rows, " outputs"));

  std::vector<int32_t> g_idx(static_cast<size_t>(cols));
  if (gi) {
    if (gi->dtype != DType::I32 && gi->dtype != DType::I64)
      bad_tensor(*gi, cat("has dtype ", dtype_name(gi->dtype), ", expected I32"));
    if (gi->shape.size() != 1 || gi->shape[0] != cols)
      bad_tensor(*gi, cat("has shape ", gi->shape_str(), ", expected [", cols, "]"));
    for (int64_t c = 0; c < cols; c++) {
      int64_t v;
      if (gi->dtype == DType::I32) {
        int32_t v32;
        std::memcpy(&v32, static_cast<const uint8_t*>(gi->data) + 4 * c, 4);
        v = v32;
      } else {
        std::memcpy(&v, static_cast<const uint8_t*>(gi->data) + 8 * c, 8);
      }
      if (v < 0 || v >= G) bad_tensor(*gi, cat("entry ", c, " is ", v, ", outside the ", G, " groups [0, ", G, ")"));
      g_idx[size_t(c)] = int32_t(v);
    }
  } else {
    for (int64_t c = 0; c < cols; c++) g_idx[size_t(c)] = gp.group_size == -1 ? 0 : int32_t(c / gp.group_size);
  }

  Int4Packed p;
  p.rows = rows;
  p.cols = cols;
  p.group_size = gp.group_size;
  p.n_groups = G;
  init_layout(p, g_idx);

  // Codes: qweight column r (output r) read as little-endian bytes is exactly row r of the packed
  // layout (input 8i+j at bits 4j of word i). Walk qweight row by row (contiguous reads).
  if (p.perm.empty()) {
    for (int64_t i = 0; i < in8; i++)
      for (int64_t r = 0; r < rows; r++) {
        uint32_t word = load_u32(qw.data, size_t(i * rows + r));
        if (i == in8 - 1 && cols % 8) word &= (1u << (4 * (cols % 8))) - 1;  // zero the padding nibbles
        uint8_t* dst = p.codes.data() + size_t(r * p.row_bytes + 4 * i);
        for (int b = 0; b < 4; b++) dst[b] = uint8_t(word >> (8 * b));
      }
  } else {
    std::vector<uint8_t> orig(static_cast<size_t>(in8 * 8));
    for (int64_t r = 0; r < rows; r++) {
      for (int64_t i = 0; i < in8; i++) {
        uint32_t word = load_u32(qw.data, size_t(i * rows + r));
        for (int j = 0; j < 8; j++) orig[size_t(8 * i + j)] = uint8_t((word >> (4 * j)) & 15);
      }
      set_row_codes(p, r, orig.data());
    }
  }

  for (int64_t g = 0; g < G; g++)
    for (int64_t r = 0; r < rows; r++) {
      uint32_t word = load_u32(qz.data, size_t(g * out8 + r / 8));
      p.zeros[size_t(r * G + g)] = uint8_t(((word >> (4 * (r % 8))) & 15) + uint32_t(gp.zero_offset));
      float s = load_as_f32(sc.data, sc.dtype, size_t(g * rows + r));
      if (!std::isfinite(s)) bad_tensor(sc, cat("entry [", g, ", ", r, "] is not finite"));
      p.scales[size_t(r * G + g)] = s;
    }
  for (const TensorView* t : {&qw, &qz, &sc, gi})  // the copies are what runs
    if (t) release_pages(*t);
  return std::make_unique<Int4Linear>(std::move(p));
}

}  // namespace sq
