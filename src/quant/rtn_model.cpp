// Round-to-nearest baselines over a whole model. 4-bit with a group size -> GPTQ int4 groups (what
// SmoothQuant+ is compared against); any other bits / per-row -> uniform lookup tables (lut format),
// so SqueezeLLM's non-uniform tables can be compared with uniform ones in the same format family.
#include "core/error.h"
#include "core/progress.h"
#include "quant/int4_quant.h"
#include "quant/quantize_model.h"

namespace sq {

bool writes_int4(const QuantizeOptions& o) {
  return o.method == "smoothquant+" || (o.method == "rtn" && o.bits == 4 && o.group_size > 0);
}

QuantizedModel quantize_rtn(Model& m, const QuantizeOptions& o, const ExecContext& ctx) {
  QuantizedModel q;
  const bool int4 = writes_int4(o);
  auto names = all_linears(m.cfg, m.names);
  Progress bar("quantize rtn", int64_t(names.size()), "layers", o.progress);
  for (auto& name : names) {
    const LinearWeight& w = **model_linear(m, name);
    std::vector<float> W = w.dequantize();
    if (int4) q.linears.emplace(name, quantize_int4_rtn(W.data(), w.rows(), w.cols(), int(o.group_size), o.clip_search, ctx));
    else q.linears.emplace(name, rtn_lut_matrix(W.data(), w.rows(), w.cols(), o.bits, o.group_size, ctx));
    bar.add(1, name);
  }
  bar.finish();
  if (int4) {
    q.quant_config = gptq_quantization_config(int(o.group_size), false, false);
    q.quant_config["squeeze_method"] = "rtn";
  } else {
    q.quant_config = lut_quantization_config("rtn", o.bits, o.group_size, 0.0);
  }
  return q;
}

}  // namespace sq
