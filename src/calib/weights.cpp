#include "calib/weights.h"

#include <cstring>

#include "calib/gemm.h"
#include "core/error.h"
#include "formats/linear.h"
#include "io/safetensors.h"

namespace sq {

bool CheckpointWeights::has(const std::string& name) const { return ckpt_.has(name); }

std::vector<int64_t> CheckpointWeights::shape(const std::string& name) const { return ckpt_.get(name).shape; }

std::string CheckpointWeights::describe() const { return ckpt_.dir().string(); }

void CheckpointWeights::read_rows(const std::string& name, int64_t row0, int64_t n_rows, float* out) const {
  const TensorView& t = ckpt_.get(name);
  const int64_t rows = t.shape.empty() ? 1 : t.shape[0];
  const int64_t cols = rows ? t.numel() / rows : 0;
  if (row0 < 0 || n_rows < 0 || row0 + n_rows > rows)
    fail(t.file, ": tensor '", name, "': rows [", row0, ", ", row0 + n_rows, ") out of range ", t.shape_str());
  const size_t n = size_t(n_rows * cols), first = size_t(row0 * cols);
  const auto* bytes = static_cast<const uint8_t*>(t.data);
  switch (t.dtype) {
    case DType::F32: std::memcpy(out, bytes + 4 * first, 4 * n); break;
    case DType::F16: {
      // The mapped data may be only 2-byte aligned at best; the Highway loads are unaligned.
      calib::f16_to_f32_bulk(reinterpret_cast<const uint16_t*>(bytes + 2 * first), out, n);
      break;
    }
    case DType::BF16: calib::bf16_to_f32_bulk(reinterpret_cast<const uint16_t*>(bytes + 2 * first), out, n); break;
    case DType::F64: convert_to_f32(bytes + 8 * first, t.dtype, out, n); break;
    default:
      fail(t.file, ": tensor '", name, "' has dtype ", dtype_name(t.dtype), "; expected F32, F16 or BF16 weights");
  }
}

bool OverlayWeights::has(const std::string& name) const { return overrides_.count(name) || base_.has(name); }

std::vector<int64_t> OverlayWeights::shape(const std::string& name) const {
  auto it = overrides_.find(name);
  if (it == overrides_.end()) return base_.shape(name);
  return {it->second->rows(), it->second->cols()};
}

void OverlayWeights::read_rows(const std::string& name, int64_t row0, int64_t n_rows, float* out) const {
  auto it = overrides_.find(name);
  if (it == overrides_.end()) return base_.read_rows(name, row0, n_rows, out);
  const LinearWeight& w = *it->second;
  SQ_CHECK(row0 >= 0 && row0 + n_rows <= w.rows(), "tensor '", name, "': rows out of range");
  for (int64_t r = 0; r < n_rows; r++) w.dequant_row(row0 + r, out + r * w.cols());
}

}  // namespace sq
