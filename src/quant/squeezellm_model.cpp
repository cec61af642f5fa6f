// SqueezeLLM over a whole model: the global dense-and-sparse plan (one outlier multiplier for all
// matrices so the model-wide sparse fraction is the requested one), then per matrix and row the
// Fisher-weighted k-means lookup tables. Uniform RTN tables (the baseline) share the lut format.
#include "calib/calibrate.h"
#include "core/error.h"
#include "core/progress.h"
#include "formats/dense.h"
#include "quant/quantize_model.h"
#include "quant/rtn.h"
#include "quant/squeezellm.h"

namespace sq {

LutMatrix rtn_lut_matrix(const float* W, int64_t rows, int64_t cols, int bits, int64_t group_size,
                         const ExecContext& ctx) {
  return quantize_rtn_lut(W, rows, cols, bits, group_size, ctx);
}

namespace {

// One linear's weights as f32, with what the quantizer needs beside them.
struct Mat {
  std::string name;
  std::vector<float> w;
  const float* fisher = nullptr;  // [rows, cols] or null (unweighted k-means)
  int64_t rows = 0, cols = 0;
  DType dtype = DType::F32;  // the stored dtype, which the tables keep
};

// Loads the linear `name` of m with its Fisher values from sens (no sens: unweighted). A layer without
// them is an error; the head may lack them (sensitivity files from before calibrate kept the head's).
Mat load_mat(Model& m, const std::string& name, const Sensitivity* sens, bool fisher_optional) {
  const LinearWeight& lw = **model_linear(m, name);
  Mat mt{name, lw.dequantize(), nullptr, lw.rows(), lw.cols(), DType::F32};
  if (auto* d = dynamic_cast<const DenseLinear*>(&lw)) mt.dtype = d->dtype();
  if (sens && (sens->has(name) || !fisher_optional)) {
    const LinearSensitivity& s = sens->at(name);
    SQ_CHECK(s.fisher && s.rows == mt.rows && s.cols == mt.cols, sens->path().string(), ": fisher.", name,
             " missing or of the wrong shape");
    mt.fisher = s.fisher;
  }
  return mt;
}

// The k-means settings shared by the layers and the head.
SqueezeOptions squeeze_options(const QuantizeOptions& o, int bits) {
  SqueezeOptions so;
  so.bits = bits;
  so.exact = o.kmeans_exact;
  so.seed = o.seed;
  return so;
}

}  // namespace

LutMatrix squeezellm_quantize_head(Model& m, const QuantizeOptions& o, const Sensitivity* sens, const ExecContext& ctx) {
  const SqueezeOptions so = squeeze_options(o, o.head_bits);
  Mat mt = load_mat(m, head_prefix(m.names), sens, true);
  Progress bar("quantize head", mt.rows, "rows", o.progress);
  LutMatrix lm = squeezellm_quantize({mt.name, mt.w.data(), mt.fisher, mt.rows, mt.cols}, mt.dtype, so, ctx,
                                     [&](int64_t done) { bar.update(done, mt.name); });
  bar.finish();
  return lm;
}

QuantizedModel quantize_squeezellm(Model& m, const QuantizeOptions& o, const Sensitivity* sens, const ExecContext& ctx) {
  if (o.group_size > 0) fail("--method squeezellm uses one lookup table per row; --group-size is not supported");
  SqueezeOptions so = squeeze_options(o, o.bits);
  so.sparsity = o.sparsity;
  so.sensitive = o.sensitive;
  auto names = all_linears(m.cfg, m.names);
  auto load = [&](const std::string& name) { return load_mat(m, name, sens, false); };
  int64_t total_rows = 0;
  for (auto& n : names) total_rows += (*model_linear(m, n))->rows();

  QuantizedModel q;
  SparsePlan plan;
  std::vector<Mat> all;  // every linear at once, only when the sparse plan needs the whole model
  if (o.sparsity > 0) {
    std::vector<SqueezeInput> in;
    for (auto& n : names) all.push_back(load(n));
    for (auto& mt : all) in.push_back({mt.name, mt.w.data(), mt.fisher, mt.rows, mt.cols});
    plan = plan_sparsity(in, o.sparsity, o.sensitive, ctx);
    q.report["sparse_percent"] = plan.sparse_percent();
    q.report["sparse_sensitive"] = plan.total_sensitive;
    q.report["sparse_outliers"] = plan.total_outliers;
    q.report["outlier_multiplier"] = plan.multiplier;
  }
  Progress bar("quantize squeezellm", total_rows, "rows", o.progress);
  int64_t done = 0;
  for (size_t i = 0; i < names.size(); i++) {
    Mat mt = o.sparsity > 0 ? std::move(all[i]) : load(names[i]);
    SqueezeInput in{mt.name, mt.w.data(), mt.fisher, mt.rows, mt.cols};
    auto tick = [&](int64_t rows_done) { bar.update(done + rows_done, mt.name); };
    LutMatrix lm = o.sparsity > 0 ? squeezellm_quantize(in, plan.matrices[i], mt.dtype, so, ctx, tick)
                                  : squeezellm_quantize(in, mt.dtype, so, ctx, tick);
    done += mt.rows;
    bar.update(done, mt.name);
    q.linears.emplace(mt.name, std::move(lm));
    if (o.sparsity > 0) all[i] = Mat{};
  }
  bar.finish();
  q.quant_config = lut_quantization_config("squeezellm", o.bits, 0, o.sparsity > 0 ? plan.sparse_percent() : 0.0);
  q.quant_config["sensitive_percent"] = o.sparsity > 0 ? o.sensitive : 0.0;
  q.quant_config["kmeans"] = o.kmeans_exact ? "exact" : "fast";
  q.quant_config["seed"] = o.seed;
  return q;
}

}  // namespace sq
