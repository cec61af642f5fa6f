// The calibration model: an exact forward and backward pass of every family's decoder (model/arch/)
// for one sequence at a time, templated on the scalar type (float for calibration, double for the
// finite-difference tests). The forward is the engine's (model/forward.h) with a policy that keeps every
// internal for the backward and observes every linear's input. Used for the Fisher diagonal (SqueezeLLM's sensitivity), the activation
// statistics of every linear's input, and plain losses / logits (e.g. of a quantized model through an
// OverlayWeights source).
//
// Memory: weights are read through the WeightSource one layer at a time and converted to T; only the
// head [vocab, hidden] stays converted for the object's lifetime (it is needed by every sequence).
// forward_backward() stores each layer's input hidden state [L, hidden] (n_layers + 1 of them), then
// walks the layers from the top, recomputing a layer's internals from its stored input (the top
// layer's are kept from the forward) and back-propagating through it. Peak = model bytes (mmapped) +
// head in T + one layer in T + one layer's activations and gradients for one sequence
// (≈ L·(10·hidden + 6·intermediate) values, + 2·threads·L² in the attention backward) + the stored
// inputs; it does not grow with the
// number of sequences. The caller's Fisher accumulators are f32 and inherently the size of the model.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "calib/weights.h"
#include "core/context.h"
#include "io/config.h"
#include "model/names.h"

namespace sq {

struct LinearInfo {
  std::string prefix;  // e.g. "model.layers.0.self_attn.q_proj"
  int64_t rows = 0, cols = 0;  // weight [out, in]
};
// Every linear of the model, layer by layer, with the shape the config implies.
std::vector<LinearInfo> linear_infos(const ModelConfig& cfg, const TensorNames& names);

// Statistics of every linear's input over all tokens seen: max |x| and Σ x² per input channel.
struct ActStats {
  std::map<std::string, std::vector<float>> absmax;  // [cols]
  std::map<std::string, std::vector<double>> sumsq;  // [cols]; mean x² = sumsq / tokens
  int64_t tokens = 0;
};

// Where each linear's weight gradient dW [rows, cols] of one sequence goes (keyed by linear prefix;
// linears absent from both maps are skipped).
template <typename T>
// Keyed by linear prefix: the layers' linears and, for an untied head, head_prefix() ("lm_head").
struct GradSinks {
  std::map<std::string, float*> fisher;  // F += dW² element-wise (f32 accumulator)
  std::map<std::string, T*> grad;        // G = dW
};

template <typename T>
class CalibModel {
 public:
  // Validates the config (supported architecture, pre-norm OPT) and converts the head.
  CalibModel(const ModelConfig& cfg, const TensorNames& names, const WeightSource& weights, const ExecContext& ctx);
  ~CalibModel();
  CalibModel(const CalibModel&) = delete;
  CalibModel& operator=(const CalibModel&) = delete;

  // Mean next-token cross-entropy of ids (positions 0..L-2 predict 1..L-1). logits, if given, gets
  // [L, vocab] f32; stats, if given, accumulates the linear-input statistics of this sequence.
  double forward(const std::vector<int32_t>& ids, std::vector<float>* logits = nullptr, ActStats* stats = nullptr);
  // Same loss, plus the gradient of it w.r.t. every linear weight, delivered to sinks.
  double forward_backward(const std::vector<int32_t>& ids, const GradSinks<T>& sinks, ActStats* stats = nullptr);

  const std::vector<LinearInfo>& linears() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

extern template class CalibModel<float>;
extern template class CalibModel<double>;

}  // namespace sq
