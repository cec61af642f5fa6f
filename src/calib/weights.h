// Where the calibration model gets its weights from. The forward/backward code reads every tensor
// through a WeightSource, one layer at a time, as f32 rows; it never holds the whole model converted.
//   CheckpointWeights: the tensors of a Checkpoint (F32/F16/BF16, mmapped), converted on the fly.
//   OverlayWeights:    another source with some linears replaced by LinearWeight objects (quantized
//                      weights through dequant_row), e.g. for the loss of a quantized model in an
//                      SmoothQuant+ alpha search or a quantization-quality check.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sq {

class Checkpoint;
class LinearWeight;

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual bool has(const std::string& name) const = 0;
  // Shape of tensor `name` (full name, e.g. "model.layers.0.mlp.up_proj.weight"); sq::Error if absent.
  virtual std::vector<int64_t> shape(const std::string& name) const = 0;
  // Rows [row0, row0 + n_rows) of `name` viewed as [shape[0], numel / shape[0]] (a 1-D tensor of n
  // elements is [n, 1]), written as f32 to out. Must be safe to call from several threads at once.
  virtual void read_rows(const std::string& name, int64_t row0, int64_t n_rows, float* out) const = 0;
  // Where the weights come from, for error messages.
  virtual std::string describe() const = 0;
};

class CheckpointWeights : public WeightSource {
 public:
  explicit CheckpointWeights(const Checkpoint& ckpt) : ckpt_(ckpt) {}
  bool has(const std::string& name) const override;
  std::vector<int64_t> shape(const std::string& name) const override;
  void read_rows(const std::string& name, int64_t row0, int64_t n_rows, float* out) const override;
  std::string describe() const override;

 private:
  const Checkpoint& ckpt_;
};

class OverlayWeights : public WeightSource {
 public:
  // overrides: full tensor name ("<prefix>.weight") -> weight; the pointers must outlive this object.
  OverlayWeights(const WeightSource& base, std::map<std::string, const LinearWeight*> overrides)
      : base_(base), overrides_(std::move(overrides)) {}
  bool has(const std::string& name) const override;
  std::vector<int64_t> shape(const std::string& name) const override;
  void read_rows(const std::string& name, int64_t row0, int64_t n_rows, float* out) const override;
  std::string describe() const override { return base_.describe(); }

 private:
  const WeightSource& base_;
  std::map<std::string, const LinearWeight*> overrides_;
};

}  // namespace sq
