// The attention head kernels (kernels/attn.h): every fast path against the scalar reference, on head
// sizes that are not multiples of the vector width (8: stories260K; 64, 128: LLaMA; 80, 130) and runs of
// 1 to 600 keys, with a row stride wider than the head (GQA caches).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/context.h"
#include "kernels/attn.h"

using namespace sq;

namespace {

double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); i++) {
    num += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
    den += double(b[i]) * double(b[i]);
  }
  return std::sqrt(num / den);
}

TEST(AttnKernel, FastPathsMatchReference) {
  std::mt19937 rng(8);
  std::normal_distribution<float> g(0.0f, 1.0f);
  int tested = 0;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Vnni}) {
    if (!isa_supported(isa)) {
      std::printf("SKIPPED: this CPU does not support %s\n", isa_name(isa).c_str());
      continue;
    }
    const kernels::AttnHeadFn fast = kernels::attn_head_fn(isa);
    for (size_t hd : {size_t(8), size_t(64), size_t(80), size_t(128), size_t(130)})
      for (size_t len : {size_t(1), size_t(7), size_t(16), size_t(33), size_t(600)}) {
        const size_t stride = 2 * hd + 3;
        std::vector<float> q(hd), k(len * stride), v(len * stride);
        for (auto& x : q) x = g(rng);
        for (auto& x : k) x = 3.0f * g(rng);  // peaked softmax: large score differences
        for (auto& x : v) x = g(rng);
        std::vector<float> s(len), ref(hd), out(hd, NAN);
        const float scale = 1.0f / std::sqrt(float(hd));
        kernels::attn_head_ref(q.data(), k.data(), v.data(), stride, len, hd, scale, s.data(), ref.data());
        fast(q.data(), k.data(), v.data(), stride, len, hd, scale, s.data(), out.data());
        ASSERT_LE(rel_err(out, ref), 1e-5) << isa_name(isa) << " hd " << hd << " len " << len;
        tested++;
      }
  }
  if (tested == 0) GTEST_SKIP() << "SKIPPED: no fast path on this CPU";
}

TEST(AttnKernel, ScalarIsTheReference) { EXPECT_EQ(kernels::attn_head_fn(Isa::kScalar), &kernels::attn_head_ref); }

}  // namespace
