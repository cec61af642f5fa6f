// Dense weights: W[rows, cols] row-major in F32, F16 or BF16, exactly as nn.Linear.weight is stored in a
// safetensors file. Loaded checkpoints are used in place (a pointer into the mapped file, no copy);
// quantizer outputs and tests can hand over owned bytes instead. The kernels are in kernels/dense.h.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "formats/linear.h"

namespace sq {

struct TensorView;

class DenseLinear : public LinearWeight {
 public:
  // A view: `data` must outlive this object (the mapped checkpoint does). `what` names the weight in
  // error messages. Validates dtype (F32/F16/BF16) and rows, cols > 0.
  DenseLinear(DType dtype, int64_t rows, int64_t cols, const void* data, std::string what);
  // Owns `bytes` (rows * cols * dtype_size(dtype) of them, little-endian, row-major).
  DenseLinear(DType dtype, int64_t rows, int64_t cols, std::vector<uint8_t> bytes, std::string what);

  void matmul(const float* x, int64_t n, float* y, const ExecContext& ctx) const override;
  void dequant_row(int64_t r, float* out) const override;
  size_t weight_bytes() const override;
  std::string describe() const override;  // "F32", "F16", "BF16"

  DType dtype() const { return dtype_; }
  const void* data() const { return data_; }  // rows * cols elements of dtype()

 private:
  void check_shape(const std::string& what) const;

  DType dtype_;
  const void* data_ = nullptr;
  std::vector<uint8_t> owned_;  // empty for a view
};

// From a stored tensor (no copy). Throws sq::Error naming the file and tensor unless it is a 2-D
// F32/F16/BF16 tensor with positive dimensions whose byte size matches its shape.
std::unique_ptr<LinearWeight> make_dense_linear(const TensorView& w);

// Owned storage: `bytes` holds rows * cols values of `dtype` (F32/F16/BF16), row-major.
std::unique_ptr<LinearWeight> make_dense_linear_owned(DType dtype, int64_t rows, int64_t cols,
                                                      std::vector<uint8_t> bytes);

// From f32 values [rows, cols], stored as `dtype` (F16/BF16 round to nearest even).
std::unique_ptr<LinearWeight> make_dense_linear_f32(const std::vector<float>& values, int64_t rows, int64_t cols,
                                                    DType dtype = DType::F32);

}  // namespace sq
