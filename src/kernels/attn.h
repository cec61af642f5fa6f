// One attention head for one query over the key/value rows it attends, given as spans of consecutive
// positions (a paged KV cache hands over one span per block; calibration one span of its own rows):
//   s[j] = scale · q·k_j,  p = softmax(s),  out = Σ_j p_j · v_j      over the spans' rows in order.
// kScalar and double: the reference templates below (8 fixed partial sums per dot, the softmax sum in
// double); kAvx2 / kAvx512 (and kAvx512Vnni): Highway kernels in attn_hwy.cpp (vector dots, vector exp
// from hwy/contrib/math, the output row held in registers while the values stream past). f32.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>

#include "core/context.h"

namespace sq::kernels {

// `len` consecutive positions whose key and value rows start at k and v (row stride given separately).
template <typename T>
struct KvSpanT {
  const T* k;
  const T* v;
  size_t len;
};
using KvSpan = KvSpanT<float>;

// Softmax of s[0, len) in place: exp(s_j − max) / Σ, the sum in double. The one definition of
// attention's softmax (the calibration backward recomputes probabilities with it).
template <typename T>
void softmax_row(T* s, size_t len) {
  T mx = -INFINITY;
  for (size_t j = 0; j < len; j++) mx = std::max(mx, s[j]);
  double sum = 0;
  for (size_t j = 0; j < len; j++) {
    s[j] = std::exp(s[j] - mx);
    sum += double(s[j]);
  }
  const T inv = T(1.0 / sum);
  for (size_t j = 0; j < len; j++) s[j] *= inv;
}

// a·b with 8 independent partial sums: the fixed summation order lets the compiler vectorise it
// without -ffast-math, and breaks the add dependency chain.
template <typename T>
inline T dot8(const T* a, const T* b, size_t n) {
  T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
  T s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

// The reference: q, out hold hd values; each span's rows are k + r·stride + off (v likewise), i.e. off
// selects the KV head inside a row. s: scratch of Σ len values.
template <typename T>
void attn_head_ref(const T* q, const KvSpanT<T>* spans, size_t n_spans, size_t off, size_t stride, size_t hd,
                   T scale, T* s, T* out) {
  size_t len = 0;
  for (size_t b = 0; b < n_spans; b++)
    for (size_t j = 0; j < spans[b].len; j++) s[len++] = dot8(q, spans[b].k + j * stride + off, hd) * scale;
  softmax_row(s, len);
  std::fill(out, out + hd, T(0));
  size_t at = 0;
  for (size_t b = 0; b < n_spans; b++)
    for (size_t j = 0; j < spans[b].len; j++, at++) {
      const T* vv = spans[b].v + j * stride + off;
      const T a = s[at];
      for (size_t i = 0; i < hd; i++) out[i] += a * vv[i];
    }
}

using AttnHeadFn = void (*)(const float* q, const KvSpan* spans, size_t n_spans, size_t off, size_t stride,
                            size_t hd, float scale, float* s, float* out);
// The implementation for a concrete ISA (resolve it first); throws for one not compiled in.
AttnHeadFn attn_head_fn(Isa isa);

}  // namespace sq::kernels
