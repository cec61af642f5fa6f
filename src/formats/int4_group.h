// GPTQ-compatible group-wise int4 weights: the one definition shared by the quantizer (which writes
// it), the engine (which loads and multiplies it) and the tests. The on-disk layout is AutoGPTQ's
// "v1" checkpoint format, so Hugging Face transformers (optimum / GPTQModel), AutoGPTQ and vLLM load
// squeeze's output unchanged and squeeze loads theirs. docs/FORMAT-gptq.md gives the sources.
//
// Per linear layer L with W[out, in] (nn.Linear layout), g = group_size (g = -1: one group per row),
// G = ceil(in / g) groups, in8 = ceil(in / 8), out8 = ceil(out / 8):
//   L.qweight  I32 [in8, out]   code of input i, output o at bits 4*(i%8)..4*(i%8)+3 of qweight[i/8, o]
//                               (eight codes per int32 along the INPUT dimension, lowest bits first)
//   L.qzeros   I32 [G, out8]    zero point of group gi, output o at bits 4*(o%8).. of qzeros[gi, o/8],
//                               stored as (zero - 1) (v1), so a stored nibble s means zero = s + 1
//   L.scales   F16 [G, out]
//   L.g_idx    I32 [in]         group of each input channel: i / g unless act-order (desc_act) reorders
//   W[o, i] = scales[gi, o] * (code(i, o) - zero(gi, o)),  gi = g_idx[i]
// Shapes that are not multiples of 8 are padded with zero nibbles (qweight rows, qzeros columns);
// AutoGPTQ/vLLM kernels reject such layers, but this reader accepts them (real LLaMA shapes are
// multiples of 8; stories260K's 172-wide MLP is not).
//
// Zero points: v1 subtracts 1 before packing, so a zero point of 0 cannot be stored (AutoGPTQ's own
// packer wraps it to 0xF, which GPTQModel's v1->v2 conversion then carries into the next nibble). The
// writer therefore requires zero points 1..15 and quantize_int4_rtn produces only those. The reader
// decodes whatever nibble is stored (zero 1..16 in v1, 0..15 in "gptq_v2").
#pragma once
#include <bit>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/aligned.h"
#include "core/context.h"
#include "formats/linear.h"
#include "formats/lut.h"

namespace sq {

class Checkpoint;
class SafetensorsWriter;

// Quantizer-side matrix: codes unpacked one per byte, zero points as true zero points.
struct Int4Matrix {
  int64_t rows = 0;        // out features
  int64_t cols = 0;        // in features
  int64_t group_size = 0;  // > 0, or -1 = one group over all inputs
  std::vector<uint8_t> q;        // [rows, cols] codes 0..15
  std::vector<uint8_t> zeros;    // [n_groups, rows] zero points (1..15 to be writable as GPTQ v1)
  std::vector<uint16_t> scales;  // [n_groups, rows] f16 bits
  std::vector<int32_t> g_idx;    // [cols] group of each input channel; empty = i / group_size

  int64_t n_groups() const;
  int32_t group_of(int64_t col) const;  // g_idx[col], or col / group_size when g_idx is empty
  float dequant(int64_t r, int64_t c) const;  // scale * (q - zero), the value the engine computes
};

// Number of groups for `cols` inputs: ceil(cols / group_size), 1 for group_size -1.
// Throws for group_size 0 or < -1.
int64_t int4_num_groups(int64_t cols, int64_t group_size);

// Checks sizes, code and zero ranges and g_idx; `what` names the matrix in the message.
void validate_int4_matrix(const Int4Matrix& m, const std::string& what);

// GPTQ v1 packing (exposed so tests can pin the bit order against hand-built tensors).
std::vector<int32_t> pack_gptq_qweight(const Int4Matrix& m);  // [ceil(cols/8), rows]
std::vector<int32_t> pack_gptq_qzeros(const Int4Matrix& m);   // [n_groups, ceil(rows/8)], zero - 1

// Adds L.qweight, L.qzeros, L.scales, L.g_idx (prefix = L, e.g. "model.layers.0.mlp.down_proj").
// Throws sq::Error naming the prefix for an invalid matrix or a zero point 0 (not storable in v1).
void write_int4_linear(SafetensorsWriter& w, const std::string& prefix, const Int4Matrix& m);

// config.json "quantization_config" for a checkpoint written by write_int4_linear (4-bit, GPTQ v1).
nlohmann::json gptq_quantization_config(int group_size, bool desc_act, bool sym);

// What the loader needs from a quantization_config: validated, with the zero offset of the format.
struct GptqParams {
  int bits = 4;
  int64_t group_size = 128;  // -1 = one group per row
  bool desc_act = false;
  int zero_offset = 1;       // 1 for "gptq" (v1, stored zero - 1), 0 for "gptq_v2"
};
// Throws sq::Error for what squeeze cannot run: bits != 4, AWQ, Marlin / other packings, per-module
// "dynamic" overrides, non-int32 pack_dtype. `where` names the config in messages.
GptqParams parse_gptq_config(const nlohmann::json& quant_config, const std::string& where);

// The engine-side layout, repacked once at load time (row-major so one output row is contiguous).
// Input columns are stored in "group order": if g_idx is not non-decreasing (act-order checkpoints),
// columns are stably sorted by group and `perm` maps stored position k to input column perm[k], so
// every group is one contiguous run [group_begin[g], group_begin[g+1]) of stored positions.
struct Int4Packed {
  int64_t rows = 0, cols = 0;
  int64_t group_size = 0;  // nominal, as in the config (-1 = one group per row); for describe()
  int64_t n_groups = 0;
  int64_t row_bytes = 0;   // bytes per row of `codes`: ceil(cols / 8) * 4 (whole int32 words, as GPTQ)
  std::vector<uint8_t> codes;   // [rows, row_bytes]; stored position k of row r: byte k/2, low nibble
                                // for even k (= the bytes of GPTQ's qweight column, transposed)
  std::vector<float> scales;    // [rows, n_groups]
  std::vector<uint8_t> zeros;   // [rows, n_groups] decoded zero points 0..16
  std::vector<int32_t> group_begin;  // [n_groups + 1]
  std::vector<int32_t> perm;         // [cols] or empty (identity)
  bool has_g_idx = false;            // g_idx is not i / group_size (counted in weight_bytes)
  // In memory, Int4Linear repacks into the 4-bit lane layout of formats/lut.h (over stored positions)
  // when every group starts on a 64-column lane block, and then empties `codes`, `scales` and `zeros`:
  // the kernels read 8 codes per vector with one shift. Each row of `lanes` (lane_stride words) starts
  // with the row's group parameters, lane_meta_words words: n_groups f32 scales (bit patterns), then
  // n_groups zero points (bytes), zero-padded to whole 64-byte lines; then come its codes,
  // lane_words_per_row(cols, 4) words. One sequential stream per row: with the scales and zero points in
  // arrays of their own the int8 decode kernel ran 0.87-0.95 as fast (they were fetched late; the
  // software prefetch 2 KiB ahead in the code stream now covers them: kernels/q8_avx512.cpp).
  AlignedVector<uint32_t> lanes;  // data on a 64-byte boundary (core/aligned.h)
  int64_t lane_meta_words = 0, lane_stride = 0;

  // Lane layout only: row r's scales (f32 bit patterns), zero points and codes.
  const uint32_t* lane_scales(int64_t r) const { return lanes.data() + r * lane_stride; }
  const uint8_t* lane_zeros(int64_t r) const {
    return reinterpret_cast<const uint8_t*>(lane_scales(r) + n_groups);
  }
  const uint32_t* lane_codes(int64_t r) const { return lane_scales(r) + lane_meta_words; }
  // Either layout.
  float scale(int64_t r, int64_t g) const {
    return lanes.empty() ? scales[size_t(r * n_groups + g)] : std::bit_cast<float>(lane_scales(r)[g]);
  }
  uint8_t zero(int64_t r, int64_t g) const {
    return lanes.empty() ? zeros[size_t(r * n_groups + g)] : lane_zeros(r)[g];
  }
  uint8_t code(int64_t r, int64_t k) const {  // stored position k
    if (!lanes.empty()) return uint8_t(lane_code(lane_codes(r), 4, k));
    uint8_t b = codes[size_t(r) * size_t(row_bytes) + size_t(k >> 1)];
    return (k & 1) ? uint8_t(b >> 4) : uint8_t(b & 15);
  }
};

// Scalar reference kernels (single-threaded, the obvious loops; the baseline every fast path is
// tested against). X[n, cols] and Y[n, rows] row-major f32, in ORIGINAL input-column order.
// Y[t, r] = Σ_g scale[r, g] · Σ_{i in g} (code - zero) · X[t, i]   (f32; the inner sum in 8 fixed
// lanes, so results are deterministic and independent of threading)
void int4_matmul_ref(const Int4Packed& w, const float* x, int64_t n, float* y);
// Same, for output rows [r0, r1) only, with X already permuted to stored order (xp[t, k] =
// X[t, perm[k]]; xp = X when perm is empty). Writes Y[t, r] for those rows.
void int4_matmul_rows_ref(const Int4Packed& w, const float* xp, int64_t n, float* y, int64_t r0, int64_t r1);
// Row r of W in original column order.
void int4_dequant_row_ref(const Int4Packed& w, int64_t r, float* out);

// True when every group of w starts on a 64-column lane block (group sizes that are multiples of 64).
bool int4_lanes_apply(const Int4Packed& w);
// Moves w.codes, w.scales and w.zeros into w.lanes (requires int4_lanes_apply).
void int4_to_lanes(Int4Packed& w);

class Int4Linear : public LinearWeight {
 public:
  explicit Int4Linear(Int4Packed p);  // repacks into lanes when int4_lanes_apply
  void matmul(const float* x, int64_t n, float* y, const ExecContext& ctx) const override;
  void dequant_row(int64_t r, float* out) const override;
  size_t weight_bytes() const override;  // qweight + qzeros + scales (+ g_idx when act-order)
  std::string describe() const override;  // "int4 g128", "int4 g-1", "int4 g128 act-order"
  const Int4Packed& packed() const { return p_; }

 private:
  Int4Packed p_;
};

// In-memory (owning) layer from a quantizer's matrix; validates it (zero points 0..15 allowed here).
std::unique_ptr<LinearWeight> make_int4_linear(const Int4Matrix& m);

// Loads `prefix.qweight/.qzeros/.scales` (+ `.g_idx`) written by squeeze or another GPTQ tool.
// Checks dtypes, shapes against [rows = out, cols = in] and g_idx ranges; errors name the tensor.
// Does not keep an f32 copy of the weights.
std::unique_ptr<LinearWeight> load_int4_linear(const Checkpoint& ckpt, const std::string& prefix, int64_t rows,
                                               int64_t cols, const nlohmann::json& quant_config);

}  // namespace sq
