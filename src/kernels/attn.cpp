#include "kernels/attn.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace sq::kernels {

AttnHeadFn attn_head_hwy(Isa isa);  // attn_hwy.cpp; null when not compiled

namespace {

// a·b with 8 independent partial sums: the fixed summation order lets the compiler vectorise it
// without -ffast-math, and breaks the add dependency chain.
inline float dot(const float* a, const float* b, size_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

}  // namespace

void attn_head_ref(const float* q, const float* k, const float* v, size_t stride, size_t len, size_t hd, float scale,
                   float* s, float* out) {
  float mx = -INFINITY;
  for (size_t j = 0; j < len; j++) {
    s[j] = dot(q, k + j * stride, hd) * scale;
    mx = std::max(mx, s[j]);
  }
  double sum = 0;
  for (size_t j = 0; j < len; j++) {
    s[j] = std::exp(s[j] - mx);
    sum += s[j];
  }
  const float inv = float(1.0 / sum);
  std::fill(out, out + hd, 0.0f);
  for (size_t j = 0; j < len; j++) {
    const float* vv = v + j * stride;
    const float a = s[j] * inv;
    for (size_t i = 0; i < hd; i++) out[i] += a * vv[i];
  }
}

AttnHeadFn attn_head_fn(Isa isa) {
  if (isa == Isa::kScalar) return &attn_head_ref;
  AttnHeadFn f = attn_head_hwy(isa);
  SQ_CHECK(f != nullptr, "attention kernel: ISA ", isa_name(isa), " was not compiled into this build");
  return f;
}

}  // namespace sq::kernels
