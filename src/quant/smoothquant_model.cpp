// SmoothQuant+ over a whole model: smoothing scales per linear group from calibration max |x|, folded
// into the producers (norms, v_proj, up_proj), group-wise int4 RTN of the smoothed weights, and the
// search over one model-wide strength alpha scored by the quantized model's calibration loss.
#include <cmath>
#include <span>

#include "calib/calibrate.h"
#include "core/error.h"
#include "core/progress.h"
#include "quant/int4_quant.h"
#include "quant/quantize_model.h"
#include "quant/smoothquant.h"

namespace sq {

namespace {

std::span<const float> absmax_of(const Sensitivity& sens, const std::string& linear, int64_t cols) {
  const LinearSensitivity& s = sens.at(linear);
  SQ_CHECK(s.absmax && s.cols == cols, sens.path().string(), ": absmax.", linear, " missing or of the wrong length");
  return {s.absmax, size_t(cols)};
}

}  // namespace

QuantizedModel smoothquant_at(Model& m, const QuantizeOptions& o, const Sensitivity& sens, std::optional<double> alpha,
                              const ExecContext& ctx) {
  const ModelConfig& c = m.cfg;
  const bool opt = c.arch == Arch::kOpt;
  const int64_t H = c.hidden, I = c.intermediate, hd = c.head_dim;
  const int64_t group = o.group_size > 0 ? o.group_size : 128;
  QuantizedModel q;
  for (int64_t i = 0; i < c.n_layers; i++) {
    LayerWeights& L = m.layers[i];
    auto lin = L.linears(m.names, i);  // llama: q k v o gate up down; opt: q k v o fc1 fc2
    std::vector<std::vector<float>> W;
    for (auto& [name, slot] : lin) W.push_back((*slot)->dequantize());
    std::vector<float>& Wq = W[0];
    std::vector<float>& Wk = W[1];
    std::vector<float>& Wv = W[2];
    std::vector<float>& Wo = W[3];
    std::vector<float>& Wup = opt ? W[4] : W[5];
    std::vector<float>& Wdown = opt ? W[5] : W[6];
    const int64_t qd = c.n_heads * hd, kvd = c.n_kv_heads * hd;
    if (alpha) {
      const double a = *alpha;
      auto cols = [](std::vector<float>& w) { return std::span<const float>(w); };
      // attention norm -> q, k, v
      auto s1 = smooth_scales(absmax_of(sens, lin[0].first, H), {cols(Wq), cols(Wk), cols(Wv)}, H, a);
      scale_columns(Wq.data(), qd, H, s1);
      scale_columns(Wk.data(), kvd, H, s1);
      scale_columns(Wv.data(), kvd, H, s1);
      std::vector<float> nw = L.attn_norm_w;
      divide_vector(nw.data(), s1);
      q.replaced[m.names.attn_norm(i) + ".weight"] = nw;
      if (opt) {
        std::vector<float> nb = L.attn_norm_b;
        divide_vector(nb.data(), s1);
        q.replaced[m.names.attn_norm(i) + ".bias"] = nb;
      }
      // MLP norm -> gate, up (llama) / fc1 (opt)
      std::vector<std::span<const float>> mlp_in = {cols(Wup)};
      if (!opt) mlp_in.push_back(cols(W[4]));
      auto s2 = smooth_scales(absmax_of(sens, lin[opt ? 4 : 5].first, H), mlp_in, H, a);
      scale_columns(Wup.data(), I, H, s2);
      if (!opt) scale_columns(W[4].data(), I, H, s2);
      std::vector<float> mw = L.mlp_norm_w;
      divide_vector(mw.data(), s2);
      q.replaced[m.names.mlp_norm(i) + ".weight"] = mw;
      if (opt) {
        std::vector<float> mb = L.mlp_norm_b;
        divide_vector(mb.data(), s2);
        q.replaced[m.names.mlp_norm(i) + ".bias"] = mb;
      }
      // up_proj rows -> down_proj columns: down's input is silu(gate) * up (llama) or relu(fc1) (opt);
      // both are positively homogeneous in up's / fc1's output, so dividing those rows by s > 0 is exact.
      if (o.smooth_up_down) {
        auto s3 = smooth_scales(absmax_of(sens, lin.back().first, I), {cols(Wdown)}, I, a);
        scale_columns(Wdown.data(), H, I, s3);
        auto r3 = reciprocal(s3);
        scale_rows(Wup.data(), I, H, r3);
        if (opt) {
          std::vector<float> b = L.bup;
          divide_vector(b.data(), s3);
          q.replaced[lin[4].first + ".bias"] = b;
        }
      }
      // v_proj rows -> o_proj columns: attention output is a convex combination of v rows, so a scale
      // per kv channel passes through; with GQA every query head of a group shares its kv head's scale.
      if (o.smooth_v_o) {
        const int64_t grp = c.n_heads / c.n_kv_heads;
        auto ax = absmax_of(sens, lin[3].first, qd);
        std::vector<float> act(kvd, 0.0f), wmax(kvd, 0.0f);
        for (int64_t h = 0; h < c.n_heads; h++)
          for (int64_t d = 0; d < hd; d++) {
            int64_t col = h * hd + d, kv = (h / grp) * hd + d;
            act[kv] = std::max(act[kv], std::fabs(ax[col]));
            for (int64_t r = 0; r < H; r++) wmax[kv] = std::max(wmax[kv], std::fabs(Wo[r * qd + col]));
          }
        auto s4 = smooth_scales(act, {std::span<const float>(wmax)}, kvd, a);
        std::vector<float> s4o(qd);
        for (int64_t h = 0; h < c.n_heads; h++)
          for (int64_t d = 0; d < hd; d++) s4o[h * hd + d] = s4[(h / grp) * hd + d];
        scale_columns(Wo.data(), H, qd, s4o);
        scale_rows(Wv.data(), kvd, H, reciprocal(s4));
        if (opt) {
          std::vector<float> b = L.bv;
          divide_vector(b.data(), s4);
          q.replaced[lin[2].first + ".bias"] = b;
        }
      }
    }
    for (size_t j = 0; j < lin.size(); j++) {
      const auto& w = *lin[j].second;
      if (o.smooth_only)
        q.linears.emplace(lin[j].first, DenseMatrix{w->rows(), w->cols(), std::move(W[j]), DType::F32});
      else
        q.linears.emplace(lin[j].first,
                          quantize_int4_rtn(W[j].data(), w->rows(), w->cols(), int(group), o.clip_search, ctx));
    }
  }
  // Smoothing alone leaves a dense model: no quantization_config (null is left out of config.json).
  if (!o.smooth_only) q.quant_config = gptq_quantization_config(int(group), false, false);
  return q;
}

QuantizedModel quantize_smoothquant_plus(Model& m, const QuantizeOptions& o, const Sensitivity* sens,
                                         const std::vector<std::vector<int32_t>>& calib, const ExecContext& ctx) {
  if (!sens) fail("--method smoothquant+ needs activation statistics: give --sensitivity FILE or --calib FILE");
  SQ_CHECK(o.smooth_only || o.bits == 4, "--method smoothquant+ writes 4-bit GPTQ checkpoints; --bits ", o.bits, " is not supported");
  // Candidates: no smoothing, then alpha on the grid (or the one alpha asked for).
  std::vector<std::optional<double>> cands;
  if (o.alpha == "auto") {
    SQ_CHECK(o.alpha_step > 0 && o.alpha_step <= 1, "--alpha-step must be in (0, 1]");
    cands.push_back(std::nullopt);
    int steps = int(std::lround(1.0 / o.alpha_step));
    // Rounded to 1e-9 so the grid reads 0.3, not 0.30000000000000004, in reports and config.json.
    for (int k = 0; k <= steps; k++) cands.push_back(std::min(1.0, std::round(k * o.alpha_step * 1e9) / 1e9));
    if (calib.empty()) fail("--alpha auto scores each candidate on calibration windows: give --calib FILE");
  } else if (o.alpha == "none") {
    cands.push_back(std::nullopt);
  } else {
    char* end = nullptr;
    double a = std::strtod(o.alpha.c_str(), &end);
    if (end == o.alpha.c_str() || *end || !(a >= 0 && a <= 1)) fail("--alpha must be auto, none or a number in [0, 1], got '", o.alpha, "'");
    cands.push_back(a);
  }
  QuantizedModel best;
  double best_loss = INFINITY;
  nlohmann::json sweep = nlohmann::json::array();
  Progress bar("alpha search", int64_t(cands.size()), "cand", o.progress && cands.size() > 1);
  for (auto& a : cands) {
    QuantizedModel qm = smoothquant_at(m, o, *sens, a, ctx);
    double loss = NAN;
    if (!calib.empty()) {
      ModelPatch patch(m, qm);
      loss = calibration_loss(m, calib, ctx);
    }
    nlohmann::json e = {{"alpha", a ? nlohmann::json(*a) : nlohmann::json("none")}, {"calib_loss", loss}};
    sweep.push_back(e);
    bar.add(1, cat("alpha ", a ? cat(*a) : "none", " loss ", loss));
    if (cands.size() == 1 || loss < best_loss) {
      best_loss = loss;
      best = std::move(qm);
      best.report["alpha"] = e["alpha"];
      best.report["calib_loss"] = loss;
    }
  }
  bar.finish();
  best.report["alpha_sweep"] = sweep;
  if (!o.smooth_only) {
    best.quant_config["squeeze_method"] = "smoothquant+";
    best.quant_config["squeeze_alpha"] = best.report["alpha"];
  }
  return best;
}

}  // namespace sq
