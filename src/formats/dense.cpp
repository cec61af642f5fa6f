#include "formats/dense.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/mmap_file.h"
#include "io/safetensors.h"
#include "kernels/dense.h"

namespace sq {

DenseLinear::DenseLinear(DType dtype, int64_t rows, int64_t cols, const void* data, std::string what)
    : dtype_(dtype), data_(data) {
  rows_ = rows;
  cols_ = cols;
  check_shape(what);
  SQ_CHECK(data_ != nullptr, what, ": no data");
}

DenseLinear::DenseLinear(DType dtype, int64_t rows, int64_t cols, std::vector<uint8_t> bytes, std::string what)
    : dtype_(dtype), owned_(std::move(bytes)) {
  rows_ = rows;
  cols_ = cols;
  check_shape(what);
  SQ_CHECK(owned_.size() == weight_bytes(), what, ": ", owned_.size(), " bytes given, [", rows_, ", ", cols_,
           "] ", dtype_name(dtype_), " needs ", weight_bytes());
  data_ = owned_.data();
}

void DenseLinear::check_shape(const std::string& what) const {
  SQ_CHECK(kernels::dense_dtype_supported(dtype_), what, ": dense weight must be F32, F16 or BF16, got ",
           dtype_name(dtype_));
  SQ_CHECK(rows_ > 0 && cols_ > 0, what, ": dense weight has empty shape [", rows_, ", ", cols_, "]");
}

void DenseLinear::matmul(const float* x, int64_t n, float* y, const ExecContext& ctx) const {
  kernels::dense_matmul(dtype_, data_, rows_, cols_, x, n, y, ctx);
}

void DenseLinear::dequant_row(int64_t r, float* out) const {
  SQ_CHECK(r >= 0 && r < rows_, "dense weight: row ", r, " out of range [0, ", rows_, ")");
  const size_t es = dtype_size(dtype_);
  convert_to_f32(static_cast<const uint8_t*>(data_) + size_t(r) * size_t(cols_) * es, dtype_, out,
                 size_t(cols_));
}

size_t DenseLinear::weight_bytes() const { return size_t(rows_) * size_t(cols_) * dtype_size(dtype_); }

std::string DenseLinear::describe() const { return std::string(dtype_name(dtype_)); }

std::unique_ptr<LinearWeight> make_dense_linear(const TensorView& w) {
  const std::string what = cat(w.file, ": tensor '", w.name, "'");
  SQ_CHECK(w.shape.size() == 2, what, ": dense weight must be 2-D, got shape ", w.shape_str());
  SQ_CHECK(kernels::dense_dtype_supported(w.dtype), what, ": dense weight must be F32, F16 or BF16, got ",
           dtype_name(w.dtype));
  SQ_CHECK(w.shape[0] > 0 && w.shape[1] > 0, what, ": dense weight has empty shape ", w.shape_str());
  const size_t need = size_t(w.shape[0]) * size_t(w.shape[1]) * dtype_size(w.dtype);
  SQ_CHECK(w.nbytes == need, what, ": ", w.nbytes, " bytes for shape ", w.shape_str(), " ", dtype_name(w.dtype),
           " (expected ", need, ")");
  // Copied into process memory, and the mapped pages released (so RSS stays ~1x): on the VMs we measured,
  // matrix-vector products over file-backed mapped pages ran 2-5x slower than over anonymous memory
  // (LLaMA-7B-shaped F16 decode, 2 threads: 5.5 vs 14.8 tok/s), which we attribute to page-walk cost of
  // 4 KiB file pages under nested paging. SQUEEZE_MMAP=1 keeps the weights mapped instead (for models
  // that do not fit in memory: the page cache can then evict and re-read them).
  static const bool keep_mapped = [] {
    const char* e = std::getenv("SQUEEZE_MMAP");
    return e != nullptr && std::string(e) == "1";
  }();
  if (keep_mapped) return std::make_unique<DenseLinear>(w.dtype, w.shape[0], w.shape[1], w.data, what);
  const auto* p = static_cast<const uint8_t*>(w.data);
  std::vector<uint8_t> bytes(p, p + w.nbytes);
  release_pages(w);
  return std::make_unique<DenseLinear>(w.dtype, w.shape[0], w.shape[1], std::move(bytes), what);
}

std::unique_ptr<LinearWeight> make_dense_linear_owned(DType dtype, int64_t rows, int64_t cols,
                                                      std::vector<uint8_t> bytes) {
  return std::make_unique<DenseLinear>(dtype, rows, cols, std::move(bytes), std::string("dense weight"));
}

std::unique_ptr<LinearWeight> make_dense_linear_f32(const std::vector<float>& values, int64_t rows, int64_t cols,
                                                    DType dtype) {
  SQ_CHECK(rows > 0 && cols > 0 && values.size() == size_t(rows) * size_t(cols), "dense weight: ",
           values.size(), " values for shape [", rows, ", ", cols, "]");
  SQ_CHECK(kernels::dense_dtype_supported(dtype), "dense weight: must be F32, F16 or BF16, got ",
           dtype_name(dtype));
  std::vector<uint8_t> bytes(values.size() * dtype_size(dtype));
  for (size_t i = 0; i < values.size(); i++) {
    if (dtype == DType::F32) {
      std::memcpy(bytes.data() + 4 * i, &values[i], 4);
    } else {
      uint16_t h = dtype == DType::F16 ? f32_to_f16(values[i]) : f32_to_bf16(values[i]);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
  }
  return make_dense_linear_owned(dtype, rows, cols, std::move(bytes));
}

}  // namespace sq
