// One attention head for one query over a run of cached keys/values (model/ops.h's attention() calls it
// per (query, head) task): s[j] = scale · q·k_j, softmax over j, out = Σ_j softmax_j · v_j.
// kScalar: the reference below (8 fixed partial sums per dot, std::exp); kAvx2 / kAvx512 (and
// kAvx512Vnni): Highway kernels in attn_hwy.cpp (vector dots, vector exp from hwy/contrib/math, the
// output row held in registers while the values stream past). f32 throughout.
#pragma once
#include <cstddef>

#include "core/context.h"

namespace sq::kernels {

// k, v: the first key/value row of the run (row stride `stride` floats), `len` rows; q, out: hd floats;
// s: scratch of len floats.
using AttnHeadFn = void (*)(const float* q, const float* k, const float* v, size_t stride, size_t len, size_t hd,
                            float scale, float* s, float* out);

void attn_head_ref(const float* q, const float* k, const float* v, size_t stride, size_t len, size_t hd, float scale,
                   float* s, float* out);
// The implementation for a concrete ISA (resolve it first); throws for one not compiled in.
AttnHeadFn attn_head_fn(Isa isa);

}  // namespace sq::kernels
