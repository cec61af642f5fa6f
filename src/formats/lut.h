// The lookup-table weight format (SqueezeLLM, and uniform RTN expressed as tables): the one
// definition shared by the quantizer (quant/squeezellm, quant/rtn), the engine and the kernels.
//
// A matrix W[rows, cols] is a dense part D plus an optional sparse part S:
//   D[r, c] = lut[r, c / group_size, code[r, c]]   (codes of `bits` bits, 2..8; tables of 2^bits F16)
//   S       = CSR (indptr, indices, values): the exact original weights at a few positions.
// Semantics: at a sparse position W[r, c] = the sparse value (exactly); elsewhere W[r, c] = D[r, c].
// The quantizer puts the code whose table value is nearest zero at sparse positions, and the loader
// keeps, per sparse entry, delta = value − D[r, c]; the product is then y = D·x + Δ·x with no masking,
// and Δ ≈ S. (group_size = cols for SqueezeLLM: one table per row.)
//
// On disk, per linear layer with prefix L (e.g. "model.layers.0.mlp.down_proj"):
//   L.qcodes          U8  [ceil(rows*cols*bits / 8)]  codes of the row-major matrix as one LSB-first
//                                                      bit stream: element e owns bits [e*bits, (e+1)*bits)
//   L.lut             F16 [rows, n_groups, 2^bits]     n_groups = ceil(cols / group_size); bits from here
//   L.qshape          I32 [3] = {rows, cols, group_size}
//   L.sparse_indptr   I32 [rows + 1]                   (the three CSR tensors are absent when nnz = 0)
//   L.sparse_indices  I32 [nnz]                        column, strictly increasing within a row
//   L.sparse_values   F32 | F16 | BF16 [nnz]           original values in the checkpoint's dtype
#pragma once
#include <bit>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/aligned.h"
#include "core/dtype.h"
#include "formats/linear.h"

namespace sq {

class Checkpoint;
class SafetensorsWriter;

// A quantized matrix as the quantizer produces it (codes unpacked, one byte per weight).
struct LutMatrix {
  int64_t rows = 0, cols = 0, group_size = 0;
  int bits = 0;
  std::vector<uint8_t> codes;             // [rows * cols], each < 2^bits
  std::vector<uint16_t> lut;              // F16 bits [rows, n_groups, 2^bits]
  std::vector<int32_t> indptr, indices;   // CSR [rows + 1], [nnz]; indptr may be empty when nnz = 0
  std::vector<float> values;              // [nnz] exact sparse weights (representable in values_dtype)
  DType values_dtype = DType::F32;        // F32, F16 or BF16: how values are stored on disk

  int64_t n_groups() const { return group_size > 0 ? (cols + group_size - 1) / group_size : 0; }
  int levels() const { return 1 << bits; }
  int64_t nnz() const { return int64_t(values.size()); }
};

// Throws sq::Error (naming `what`) unless m is a well-formed matrix of this format.
void validate_lut_matrix(const LutMatrix& m, const std::string& what = "lut matrix");
// W as f32 [rows * cols], by the semantics above (sparse positions hold their exact values).
std::vector<float> lut_dequantize(const LutMatrix& m);
// Total stored bits (codes + F16 tables + CSR arrays + qshape) per weight.
double lut_bits_per_weight(const LutMatrix& m);
double lut_bits_per_weight(int64_t rows, int64_t cols, int64_t group_size, int bits, int64_t nnz,
                           DType values_dtype);

// Bit packing of codes (LSB-first stream as above). pack_codes throws if a code is >= 2^bits.
size_t packed_code_bytes(size_t n, int bits);  // ceil(n * bits / 8)
std::vector<uint8_t> pack_codes(const uint8_t* codes, size_t n, int bits);
// Unpacks elements [first, first + n) of the stream into out[0, n). Reads only the bytes holding them.
void unpack_codes(const uint8_t* packed, size_t first, size_t n, int bits, uint8_t* out);
std::vector<uint8_t> unpack_codes(const std::vector<uint8_t>& packed, size_t n, int bits);

// Adds L.qcodes, L.lut, L.qshape and (when nnz > 0) the CSR tensors for `prefix` (validates first).
void write_lut_linear(SafetensorsWriter& w, const std::string& prefix, const LutMatrix& m);

// ---- lane-interleaved codes (in memory only) ------------------------------------------------------
// For 2-, 3- and 4-bit codes with one table per row, LutLinear repacks the on-disk stream at load into
// the layout the SIMD kernels read with one vector load, one shift and one table lookup per 8 (f32
// kernels) or 64 (int8 kernels, kernels/q8.h) weights. Each row is cut into blocks of
// lane_block_cols(bits) columns (4-bit: 64, 2-bit: 128, 3-bit: 512), the last one padded with code 0;
// a block is lane_block_words(bits) u32 words (8, 8, 48), and column c of the block is at:
//   4-bit: word c % 8, bits [4t, 4t + 4) with t = c / 8   (t < 8)
//   2-bit: word c % 8, bits [2t, 2t + 2) with t = c / 8   (t < 16)
//   3-bit: byte planes. The block's 192 bytes are three planes of 64; byte p of plane k holds
//          bits 0..2: the code of column 128k + p,  bits 3..5: the code of column 128k + 64 + p,
//          bits 6..7: bits 2k, 2k+1 of e_p = code(384 + p) | code(448 + p) << 3.
// So 8 consecutive words (4-, 2-bit) or 8 consecutive plane bytes (3-bit, zero-extended) hold codes of
// 8 consecutive columns at one bit offset, and a 64-byte load of 3-bit planes gives 64 byte-wide
// indices whose bits 0..2 and 3..5 are two codes each (vpermb reads bits 0..5 only). Same bits per
// weight as the stream (when cols is a multiple of the block).
bool lane_layout_supported(int bits, int64_t cols, int64_t group_size);  // bits 2..4, group_size == cols
int64_t lane_block_cols(int bits);
int64_t lane_block_words(int bits);
int64_t lane_words_per_row(int64_t cols, int bits);
// codes: one byte per weight [rows * cols] -> rows * lane_words_per_row words.
std::vector<uint32_t> pack_lanes(const uint8_t* codes, int64_t rows, int64_t cols, int bits);
// One row: codes[cols] -> out[lane_words_per_row(cols, bits)] (overwritten).
void pack_lanes_row(const uint8_t* codes, int64_t cols, int bits, uint32_t* out);
// The code of column c of a row whose lane words start at `row`.
uint32_t lane_code(const uint32_t* row, int bits, int64_t c);

// A non-owning view of the in-memory layout LutLinear holds: what the scalar reference and the fast
// kernels consume. Exactly one of qcodes (the on-disk stream) and lanes (lane-interleaved) is set.
struct LutView {
  int64_t rows = 0, cols = 0, group_size = 0;
  int bits = 0;
  const uint8_t* qcodes = nullptr;   // packed stream as on disk, ceil(rows*cols*bits/8) bytes
  // Lane-interleaved rows of lane_stride words (whole 64-byte lines; lanes starts on one):
  // lane_meta_words of row parameters, then the row's codes (lane_words_per_row(cols, bits) words,
  // lane_row(r)). For 3 and 4 bits the parameters are the row table as int8 for the int8-activation
  // decode kernels (kernels/q8.h): 16 int8 entries (past 2^bits: 0), then the f32 scale at word
  // kQ8ScaleWord, zero-padded to one 64-byte line (q8_table, q8_scale). In front of the codes they
  // arrive in the row's one sequential stream; in arrays of their own the 4-bit int8 kernel decoded
  // 0.86 as fast (in-process A/B, whole-model decode). Otherwise lane_meta_words = 0.
  static constexpr int64_t kQ8ScaleWord = 4;
  const uint32_t* lanes = nullptr;
  int64_t lane_stride = 0, lane_meta_words = 0;
  const uint16_t* lut = nullptr;     // F16 [rows, n_groups, 2^bits]
  int64_t nnz = 0;
  const int32_t* indptr = nullptr;   // [rows + 1] (null when nnz = 0)
  const int32_t* indices = nullptr;  // [nnz]
  const float* values = nullptr;     // [nnz] exact weights at the sparse positions
  const float* deltas = nullptr;     // [nnz] values − D at those positions (what the product adds)

  int64_t n_groups() const { return (cols + group_size - 1) / group_size; }
  const uint32_t* lane_row(int64_t r) const { return lanes + r * lane_stride + lane_meta_words; }
  bool has_q8() const { return lanes != nullptr && lane_meta_words > 0; }
  const void* q8_table(int64_t r) const { return lanes + r * lane_stride; }  // 16 int8
  float q8_scale(int64_t r) const { return std::bit_cast<float>(lanes[r * lane_stride + kQ8ScaleWord]); }
};

// Scalar references. Row r of D only (no sparse part): out[cols].
void lut_decode_row_ref(const LutView& v, int64_t r, float* out);
// Row r of W (sparse positions overwritten by their exact values): out[cols].
void lut_dequant_row_ref(const LutView& v, int64_t r, float* out);
// Y[t, r] = Σ_c W[r, c]·X[t, c] for rows r in [row_begin, row_end), t < n; X [n, cols], Y [n, rows]
// row-major f32 (other rows of Y untouched). Computed as D·x + Δ·x with f32 accumulation.
void lut_matmul_ref(const LutView& v, const float* x, int64_t n, float* y, int64_t row_begin, int64_t row_end);

class LutLinear final : public LinearWeight {
 public:
  // Takes the packed stream; validates everything (throws sq::Error naming `what`). Repacks it into
  // the lane layout when that applies (and then frees the stream).
  LutLinear(int64_t rows, int64_t cols, int64_t group_size, int bits, std::vector<uint8_t> qcodes,
            std::vector<uint16_t> lut, std::vector<int32_t> indptr, std::vector<int32_t> indices,
            std::vector<float> values, DType values_dtype, const std::string& what = "lut matrix");

  // Dispatches on ctx.isa through kernels/lut.h (kScalar: lut_matmul_ref), split over ctx.pool.
  void matmul(const float* x, int64_t n, float* y, const ExecContext& ctx) const override;
  void dequant_row(int64_t r, float* out) const override;
  // Packed codes (as on disk) + F16 tables + CSR (indptr, indices, values at their stored width).
  size_t weight_bytes() const override;
  std::string describe() const override;  // "lut3", "lut4 g128", "lut3 +0.45% sparse"

  LutView view() const;  // lanes set when lane_layout_supported, else qcodes
  int bits() const { return bits_; }
  int64_t group_size() const { return group_size_; }
  int64_t nnz() const { return int64_t(values_.size()); }
  DType values_dtype() const { return values_dtype_; }

 private:
  int64_t group_size_;
  int bits_;
  std::vector<uint8_t> qcodes_;  // the on-disk stream, kept only when the lane layout does not apply
  AlignedVector<uint32_t> lanes_;  // lane rows (LutView::lanes), on a 64-byte boundary
  std::vector<uint16_t> lut_;
  std::vector<int32_t> indptr_, indices_;
  std::vector<float> values_, deltas_;
  int64_t lane_stride_ = 0, lane_meta_words_ = 0;  // LutView
  DType values_dtype_;
};

// Loads the tensors under `prefix`, checking shapes, dtypes, CSR structure and the code stream length
// against [rows, cols]; every problem is an sq::Error naming the file and tensor.
std::unique_ptr<LinearWeight> load_lut_linear(const Checkpoint& ckpt, const std::string& prefix, int64_t rows,
                                              int64_t cols);
// Owning, from an in-memory quantized matrix (packs the codes).
std::unique_ptr<LinearWeight> make_lut_linear(LutMatrix m);

}  // namespace sq
