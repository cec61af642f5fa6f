// Calibration (issue 3): the per-weight sensitivities and activation statistics the quantizers use.
//   fisher.L  [rows, cols]  Σ over calibration sequences of (∂ loss_s / ∂W)², loss_s = that sequence's
//                           mean next-token cross-entropy (SqueezeLLM's Fisher diagonal; summed, not
//                           averaged)
//   absmax.L  [cols]        max |x| per input channel of L's input over all calibration tokens
//   meansq.L  [cols]        mean x² per input channel (the diagonal of XᵀX / n)
// for every linear L of the model (keyed by its prefix, e.g. "model.layers.0.mlp.up_proj"), and
// fisher.lm_head [vocab, hidden] for an untied head (for `quantize --head-bits`), written to
// one safetensors file with the run's settings as metadata, and read back (validated against a model)
// by the quantizers.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "calib/model.h"
#include "calib/weights.h"
#include "core/context.h"
#include "core/output_path.h"
#include "io/config.h"

namespace sq {

class Checkpoint;
class SafetensorsFile;

struct CalibOptions {
  int64_t samples = 128;  // number of windows
  int64_t seqlen = 512;   // tokens per window
  std::string sampling = "random";  // "random" or "sequential"
  uint64_t seed = 0;      // for random windows
  bool progress = true;   // progress bar on stderr
  bool f64 = false;       // compute in double (reference / tests); default float
};

// Cuts calibration windows out of tokens_with_bos = [BOS] + tokenize(file) (both modes use the same
// stream; the BOS makes the first window start like a document):
//   sequential: the first `samples` consecutive non-overlapping windows of `seqlen` tokens;
//   random:     `samples` windows of `seqlen` tokens at offsets drawn uniformly from
//               [0, size − seqlen] by a SplitMix64 generator seeded with `seed` (deterministic on every
//               platform; windows may overlap).
// Errors (sq::Error naming data_name): samples < 1, seqlen < 2, seqlen > model_context (when > 0),
// data shorter than one window, fewer than `samples` windows fit in sequential mode (says how many
// fit), unknown sampling mode.
std::vector<std::vector<int32_t>> calibration_windows(const std::vector<int32_t>& tokens_with_bos,
                                                      const CalibOptions& opts, const std::string& data_name,
                                                      int64_t model_context = 0);

struct CalibResult {
  // Keyed by linear prefix. fisher: [rows * cols] row-major; absmax, meansq: [cols].
  std::map<std::string, std::vector<float>> fisher, absmax, meansq;
  std::vector<LinearInfo> linears;  // model order, with shapes
  LinearInfo head;                  // an untied head ("lm_head", [vocab, hidden]): fisher only; prefix
                                    // empty when the head is tied to the embeddings
  double mean_loss = 0;             // mean over windows of each window's mean cross-entropy
  double seconds = 0;               // wall time of the forward+backward passes
  int64_t tokens = 0;               // total tokens processed
};

// Runs forward + backward over every window (one at a time; memory does not grow with their number).
// The checkpoint must be unquantized (sq::Error otherwise).
CalibResult calibrate(const ModelConfig& cfg, const Checkpoint& ckpt, const std::vector<std::vector<int32_t>>& windows,
                      const ExecContext& ctx, const CalibOptions& opts);
// The same over any weight source (e.g. OverlayWeights); names from tensor_names() of the checkpoint.
CalibResult calibrate(const ModelConfig& cfg, const TensorNames& names, const WeightSource& weights,
                      const std::vector<std::vector<int32_t>>& windows, const ExecContext& ctx,
                      const CalibOptions& opts);

// Writes fisher.L [rows, cols], absmax.L [cols], meansq.L [cols] (F32) and the metadata (suggested
// keys: model, data, samples, seqlen, sampling, seed) atomically: on any error no file is left at out.
// Streams the tensors (no second in-memory copy of the model-sized Fisher arrays). The metadata also
// gets created_by = "squeeze calibrate" (what core/output_path.h recognises as squeeze's); with a
// policy, out is checked against it (check_output_file) before anything is written.
void write_calibration(const std::filesystem::path& out, const CalibResult& result,
                       const std::map<std::string, std::string>& metadata, const OutputPolicy* policy = nullptr);

// Mean next-token cross-entropy of one sequence (finite differences, alpha searches, checks).
double sequence_loss(const ModelConfig& cfg, const TensorNames& names, const WeightSource& weights,
                     const std::vector<int32_t>& ids, const ExecContext& ctx, bool f64 = false);
// Logits [L, vocab] of one sequence through the calibration code path; *loss (if given) its loss.
std::vector<float> forward_logits(const ModelConfig& cfg, const TensorNames& names, const WeightSource& weights,
                                  const std::vector<int32_t>& ids, const ExecContext& ctx, double* loss = nullptr);

// A sensitivity file read back for a model.
struct LinearSensitivity {
  int64_t rows = 0, cols = 0;
  const float* fisher = nullptr;  // [rows, cols]
  const float* absmax = nullptr;  // [cols] (null for the head: only its Fisher values are kept)
  const float* meansq = nullptr;  // [cols]
};

class Sensitivity {
 public:
  Sensitivity();
  ~Sensitivity();
  Sensitivity(Sensitivity&&) noexcept;
  Sensitivity& operator=(Sensitivity&&) noexcept;

  bool has(const std::string& linear) const { return stats_.count(linear) != 0; }
  const LinearSensitivity& at(const std::string& linear) const;  // sq::Error naming the file if absent
  const std::map<std::string, LinearSensitivity>& all() const { return stats_; }
  const std::map<std::string, std::string>& metadata() const;
  const std::filesystem::path& path() const { return path_; }

 private:
  friend Sensitivity load_sensitivity(const std::filesystem::path&, const ModelConfig&, const Checkpoint&);
  std::filesystem::path path_;
  std::unique_ptr<SafetensorsFile> file_;
  std::vector<std::vector<float>> owned_;  // copies of tensors the file stores misaligned
  std::map<std::string, LinearSensitivity> stats_;
};

// Maps a file written by write_calibration and checks it against the model: every linear present
// with fisher [rows, cols], absmax/meansq [cols], all F32. Mismatch -> sq::Error, e.g. "sensitivity
// file X was computed for another model: fisher.model.layers.0.mlp.up_proj has shape [64, 172] but
// the model's weight is [172, 64]". Works for quantized checkpoints too (shapes come from the config).
Sensitivity load_sensitivity(const std::filesystem::path& path, const ModelConfig& cfg, const Checkpoint& ckpt);

}  // namespace sq
