// Highway kernels of kernels/attn.h, compiled for each target of kernels/simd_targets.h.
#include "kernels/simd_targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/attn_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>

#include "kernels/attn.h"

HWY_BEFORE_NAMESPACE();
namespace sq::kernels::HWY_NAMESPACE {
#if SQ_HWY_KERNEL_TARGET

namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

HWY_INLINE float Dot(const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, size_t n) {
  const DF df;
  const size_t N = hn::Lanes(df);
  VF acc0 = hn::Zero(df), acc1 = hn::Zero(df);
  size_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    acc0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), acc0);
    acc1 = hn::MulAdd(hn::LoadU(df, a + i + N), hn::LoadU(df, b + i + N), acc1);
  }
  for (; i + N <= n; i += N) acc0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), acc0);
  float s = hn::GetLane(hn::SumOfLanes(df, hn::Add(acc0, acc1)));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

void AttnHead(const float* q, const KvSpan* spans, size_t n_spans, size_t off, size_t stride, size_t hd,
              float scale, float* s, float* out) {
  const DF df;
  const size_t N = hn::Lanes(df);
  float mx = -INFINITY;
  size_t len = 0;
  for (size_t b = 0; b < n_spans; b++)
    for (size_t j = 0; j < spans[b].len; j++) {
      s[len] = Dot(q, spans[b].k + j * stride + off, hd) * scale;
      mx = std::max(mx, s[len++]);
    }
  // exp(s - max) in vectors; the sum in f64 per vector, as the reference sums in f64.
  double sum = 0;
  size_t j = 0;
  const VF vmx = hn::Set(df, mx);
  for (; j + N <= len; j += N) {
    const VF e = hn::Exp(df, hn::Sub(hn::LoadU(df, s + j), vmx));
    hn::StoreU(e, df, s + j);
    sum += double(hn::GetLane(hn::SumOfLanes(df, e)));
  }
  for (; j < len; j++) {
    s[j] = std::exp(s[j] - mx);
    sum += s[j];
  }
  const float inv = float(1.0 / sum);
  // out = Σ_j a_j v_j with up to 8 vectors of the output row in registers per pass.
  constexpr size_t kMaxVec = 8;
  size_t i0 = 0;
  for (; i0 + N <= hd; i0 += kMaxVec * N) {
    const size_t nv = std::min(kMaxVec, (hd - i0) / N);
    VF acc[kMaxVec];
    for (size_t t = 0; t < kMaxVec; t++) acc[t] = hn::Zero(df);
    size_t at = 0;
    for (size_t b = 0; b < n_spans; b++)
      for (size_t jj = 0; jj < spans[b].len; jj++, at++) {
        const VF a = hn::Set(df, s[at] * inv);
        const float* vv = spans[b].v + jj * stride + off + i0;
        for (size_t t = 0; t < nv; t++) acc[t] = hn::MulAdd(a, hn::LoadU(df, vv + t * N), acc[t]);
      }
    for (size_t t = 0; t < nv; t++) hn::StoreU(acc[t], df, out + i0 + t * N);
    if (nv < kMaxVec) {
      i0 += nv * N;
      break;
    }
  }
  for (size_t i = i0; i < hd; i++) {  // columns past the last whole vector
    float o = 0;
    size_t at = 0;
    for (size_t b = 0; b < n_spans; b++)
      for (size_t jj = 0; jj < spans[b].len; jj++, at++) o += s[at] * inv * spans[b].v[jj * stride + off + i];
    out[i] = o;
  }
}

#endif  // SQ_HWY_KERNEL_TARGET
}  // namespace sq::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace sq::kernels {

AttnHeadFn attn_head_hwy(Isa isa) {
#if HWY_TARGETS & HWY_AVX2
  if (isa == Isa::kAvx2) return &N_AVX2::AttnHead;
#endif
#if HWY_TARGETS & HWY_AVX3
  if (hwy_isa(isa) == Isa::kAvx512) return &N_AVX3::AttnHead;
#endif
  return nullptr;
}

}  // namespace sq::kernels
#endif  // HWY_ONCE
