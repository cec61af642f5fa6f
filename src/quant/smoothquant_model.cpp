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
  const ArchDesc& arch = m.arch();
  const int64_t hd = c.head_dim;
  const int64_t group = o.group_size > 0 ? o.group_size : 128;
  QuantizedModel q;
  for (int64_t i = 0; i < c.n_layers; i++) {
    LayerWeights& L = m.layers[i];
    // Each linear of the layer as f32 [rows, cols], by role.
    std::vector<float> W[kRoles];
    for (const LinearDesc& ld : arch.linears) W[role_index(ld.role)] = L.linear(ld.role)->dequantize();
    auto rows_of = [&](Role r) { return L.linear(r)->rows(); };
    auto cols_of = [&](Role r) { return L.linear(r)->cols(); };
    // The producer's bias (or a norm's weight / bias) divided by s, recorded as a replaced tensor.
    auto divided = [&](const std::vector<float>& v, std::span<const float> s, const std::string& name) {
      std::vector<float> nv = v;
      divide_vector(nv.data(), s);
      q.replaced[name] = std::move(nv);
    };
    for (const SmoothGroup& sg : alpha ? arch.smoothing : std::vector<SmoothGroup>{}) {
      if ((sg.option == SmoothOption::kUpDown && !o.smooth_up_down) || (sg.option == SmoothOption::kVO && !o.smooth_v_o))
        continue;
      const double a = *alpha;
      const Role first = sg.to.front();
      const int64_t in = cols_of(first);
      auto act = absmax_of(sens, m.names.linear(i, first), in);
      if (sg.head_shared) {
        // v_proj rows -> o_proj columns: attention output is a convex combination of v rows, so a scale
        // per kv channel passes through; with GQA every query head of a group shares its kv head's scale.
        const int64_t qd = in, kvd = rows_of(sg.rows), H = rows_of(first), grp = c.n_heads / c.n_kv_heads;
        const std::vector<float>& Wo = W[role_index(first)];
        std::vector<float> kv_act(static_cast<size_t>(kvd), 0.0f), wmax(static_cast<size_t>(kvd), 0.0f);
        for (int64_t h = 0; h < c.n_heads; h++)
          for (int64_t d = 0; d < hd; d++) {
            const int64_t col = h * hd + d, kv = (h / grp) * hd + d;
            kv_act[kv] = std::max(kv_act[kv], std::fabs(act[col]));
            for (int64_t r = 0; r < H; r++) wmax[kv] = std::max(wmax[kv], std::fabs(Wo[r * qd + col]));
          }
        auto s4 = smooth_scales(kv_act, {std::span<const float>(wmax)}, kvd, a);
        std::vector<float> s4o(static_cast<size_t>(qd));
        for (int64_t h = 0; h < c.n_heads; h++)
          for (int64_t d = 0; d < hd; d++) s4o[h * hd + d] = s4[(h / grp) * hd + d];
        scale_columns(W[role_index(first)].data(), H, qd, s4o);
        scale_rows(W[role_index(sg.rows)].data(), kvd, cols_of(sg.rows), reciprocal(s4));
        if (L.bias_of(sg.rows)) divided(L.bias[role_index(sg.rows)], s4, m.names.linear(i, sg.rows) + ".bias");
        continue;
      }
      std::vector<std::span<const float>> consumers;
      for (Role r : sg.to) consumers.push_back(W[role_index(r)]);
      auto s = smooth_scales(act, consumers, in, a);
      for (Role r : sg.to) scale_columns(W[role_index(r)].data(), rows_of(r), in, s);
      if (sg.norm >= 0) {  // a norm's weight and bias
        divided(L.norm_w[sg.norm], s, m.names.norm(i, sg.norm) + ".weight");
        if (!L.norm_b[sg.norm].empty()) divided(L.norm_b[sg.norm], s, m.names.norm(i, sg.norm) + ".bias");
      } else {  // a linear's output rows and bias (up_proj -> down_proj: down's input is homogeneous in them)
        scale_rows(W[role_index(sg.rows)].data(), rows_of(sg.rows), cols_of(sg.rows), reciprocal(s));
        if (L.bias_of(sg.rows)) divided(L.bias[role_index(sg.rows)], s, m.names.linear(i, sg.rows) + ".bias");
      }
    }
    for (const LinearDesc& ld : arch.linears) {
      const std::string name = m.names.linear(i, ld.role);
      std::vector<float>& w = W[role_index(ld.role)];
      const int64_t rows = rows_of(ld.role), cols = cols_of(ld.role);
      if (o.smooth_only)
        q.linears.emplace(name, DenseMatrix{rows, cols, std::move(w), DType::F32});
      else
        q.linears.emplace(name, quantize_int4_rtn(w.data(), rows, cols, int(group), o.clip_search, ctx));
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
