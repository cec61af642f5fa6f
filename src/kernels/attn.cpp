#include "kernels/attn.h"

#include "core/error.h"

namespace sq::kernels {

AttnHeadFn attn_head_hwy(Isa isa);  // attn_hwy.cpp; null when not compiled

namespace {
void attn_head_ref_f32(const float* q, const KvSpan* spans, size_t n_spans, size_t off, size_t stride, size_t hd,
                       float scale, float* s, float* out) {
  attn_head_ref<float>(q, spans, n_spans, off, stride, hd, scale, s, out);
}
}  // namespace

AttnHeadFn attn_head_fn(Isa isa) {
  if (isa == Isa::kScalar) return &attn_head_ref_f32;
  AttnHeadFn f = attn_head_hwy(isa);
  SQ_CHECK(f != nullptr, "attention kernel: ISA ", isa_name(isa), " was not compiled into this build");
  return f;
}

}  // namespace sq::kernels
