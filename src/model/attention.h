// Attention of n query rows, each over its own key/value spans (model/forward.h's attention step, for
// the engine's paged cache and for calibration's one sequence). One task per (row, head) over the pool;
// query head h reads KV head h / (n_heads / n_kv_heads).
#pragma once
#include <cstdint>
#include <type_traits>

#include "core/context.h"
#include "kernels/attn.h"
#include "model/forward.h"

namespace sq {

template <typename T>
struct AttnRows {
  const T* q = nullptr;                        // [n, n_heads·head_dim]
  int64_t n = 0;
  const kernels::KvSpanT<T>* spans = nullptr;  // row i attends spans[span_begin[i] .. span_begin[i + 1])
  const int64_t* span_begin = nullptr;         // [n + 1]
  int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int64_t kv_stride = 0;                       // floats between consecutive positions' K (and V) rows
  T scale = 1;
  T* out = nullptr;                            // [n, n_heads·head_dim]

  // The block's attention: heads, scale and KV row stride from its shape.
  static AttnRows of(const BlockShape& s, const T* q, int64_t n, const kernels::KvSpanT<T>* spans,
                     const int64_t* span_begin, T* out) {
    AttnRows a;
    a.q = q;
    a.n = n;
    a.spans = spans;
    a.span_begin = span_begin;
    a.n_heads = s.n_heads;
    a.n_kv_heads = s.n_kv_heads;
    a.head_dim = s.head_dim;
    a.kv_stride = s.kv_dim;
    a.scale = T(s.attn_scale);
    a.out = out;
    return a;
  }
};

// scores: one buffer per pool thread (ctx.pool->size() of them), each as long as the longest row's
// attended positions. float runs the kernel of ctx.isa; double the reference.
template <typename T>
void attention_rows(const AttnRows<T>& a, T* const* scores, const ExecContext& ctx) {
  const int64_t group = a.n_heads / a.n_kv_heads, qd = a.n_heads * a.head_dim;
  kernels::AttnHeadFn fast = nullptr;
  if constexpr (std::is_same_v<T, float>) fast = kernels::attn_head_fn(resolve_isa(ctx.isa));
  auto task = [&](size_t i, int thread) {
    const int64_t t = int64_t(i) / a.n_heads, h = int64_t(i) % a.n_heads;
    const size_t off = size_t((h / group) * a.head_dim);
    const auto* sp = a.spans + a.span_begin[t];
    const size_t ns = size_t(a.span_begin[t + 1] - a.span_begin[t]);
    const T* q = a.q + t * qd + h * a.head_dim;
    T* out = a.out + t * qd + h * a.head_dim;
    if constexpr (std::is_same_v<T, float>)
      fast(q, sp, ns, off, size_t(a.kv_stride), size_t(a.head_dim), a.scale, scores[thread], out);
    else
      kernels::attn_head_ref<T>(q, sp, ns, off, size_t(a.kv_stride), size_t(a.head_dim), a.scale, scores[thread], out);
  };
  if (ctx.pool)
    ctx.pool->run(size_t(a.n * a.n_heads), task);
  else
    for (size_t i = 0; i < size_t(a.n * a.n_heads); i++) task(i, 0);
}

}  // namespace sq
