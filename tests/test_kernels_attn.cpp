// The attention head kernels (kernels/attn.h): every fast path against the scalar reference, on head
// sizes that are not multiples of the vector width (8: stories260K; 64, 128: LLaMA; 80, 130) and runs of
// 1 to 600 keys, with a row stride wider than the head and a head offset inside the row (GQA caches),
// given as one span or cut into spans as the paged KV cache cuts them (blocks of 16, a partial first).
#include <gtest/gtest.h>

#include <algorithm>
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
        const size_t stride = 2 * hd + 3, off = hd + 1;
        std::vector<float> q(hd), k(len * stride), v(len * stride);
        for (auto& x : q) x = g(rng);
        for (auto& x : k) x = 3.0f * g(rng);  // peaked softmax: large score differences
        for (auto& x : v) x = g(rng);
        // One span, and the same positions as spans of at most 16 starting 5 into a block.
        std::vector<kernels::KvSpan> one = {{k.data(), v.data(), len}}, paged;
        for (size_t p = 0; p < len;) {
          const size_t n = std::min(len - p, p == 0 ? size_t(11) : size_t(16));
          paged.push_back({k.data() + p * stride, v.data() + p * stride, n});
          p += n;
        }
        std::vector<float> s(len), ref(hd), out(hd, NAN), ref_paged(hd);
        const float scale = 1.0f / std::sqrt(float(hd));
        kernels::attn_head_ref<float>(q.data(), one.data(), 1, off, stride, hd, scale, s.data(), ref.data());
        kernels::attn_head_ref<float>(q.data(), paged.data(), paged.size(), off, stride, hd, scale, s.data(),
                                      ref_paged.data());
        ASSERT_EQ(ref, ref_paged) << "spans change the reference's result";
        fast(q.data(), one.data(), 1, off, stride, hd, scale, s.data(), out.data());
        ASSERT_LE(rel_err(out, ref), 1e-5) << isa_name(isa) << " hd " << hd << " len " << len;
        std::fill(out.begin(), out.end(), NAN);
        fast(q.data(), paged.data(), paged.size(), off, stride, hd, scale, s.data(), out.data());
        ASSERT_LE(rel_err(out, ref), 1e-5) << isa_name(isa) << " paged, hd " << hd << " len " << len;
        tested++;
      }
  }
  if (tested == 0) GTEST_SKIP() << "SKIPPED: no fast path on this CPU";
}

TEST(AttnKernel, ScalarIsTheReference) {
  std::vector<float> q = {0.5f, -1.0f, 2.0f}, k = {1, 2, 3, -1, 0, 1}, v = {3, 1, 4, 1, 5, 9};
  std::vector<kernels::KvSpan> sp = {{k.data(), v.data(), 2}};
  std::vector<float> s(2), a(3), b(3);
  kernels::attn_head_ref<float>(q.data(), sp.data(), 1, 0, 3, 3, 0.5f, s.data(), a.data());
  kernels::attn_head_fn(Isa::kScalar)(q.data(), sp.data(), 1, 0, 3, 3, 0.5f, s.data(), b.data());
  EXPECT_EQ(a, b);
  // Against a hand computation: scores 0.5·(q·k), softmax, weighted values.
  const double s0 = 0.5 * (0.5 * 1 - 1.0 * 2 + 2.0 * 3), s1 = 0.5 * (0.5 * -1 + 0 + 2.0 * 1);
  const double p0 = 1 / (1 + std::exp(s1 - s0)), p1 = 1 - p0;
  EXPECT_NEAR(a[0], p0 * 3 + p1 * 1, 1e-6);
  EXPECT_NEAR(a[2], p0 * 4 + p1 * 9, 1e-6);
}

}  // namespace
