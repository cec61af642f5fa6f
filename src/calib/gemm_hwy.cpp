// Highway kernels of calibration: the float GEMM micro-kernel and bulk f16/bf16 -> f32 conversion,
// compiled for the targets of kernels/simd_targets.h (AVX2, AVX-512) and chosen by the context's Isa.
#include "kernels/simd_targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "calib/gemm_hwy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cstring>

#include "calib/gemm.h"
#include "core/dtype.h"

HWY_BEFORE_NAMESPACE();
namespace sq::calib::HWY_NAMESPACE {
#if SQ_HWY_KERNEL_TARGET
namespace hn = hwy::HWY_NAMESPACE;

int NrF32() { return int(2 * hn::Lanes(hn::ScalableTag<float>())); }

// c[6, 2V] += pa[kc][6] · pb[kc][2V]: 12 vector accumulators, 2 loads + 6 broadcasts per 12 FMAs.
// The B sliver (kc * 2V floats, 16 KiB for kc = 256 on AVX2) stays in L1 across the A slivers.
HWY_INLINE void Micro6x2(int64_t kc, const float* HWY_RESTRICT pa, const float* HWY_RESTRICT pb, float* c,
                         int64_t ldc) {
  const hn::ScalableTag<float> d;
  const size_t V = hn::Lanes(d);
  auto c00 = hn::Zero(d), c01 = hn::Zero(d), c10 = hn::Zero(d), c11 = hn::Zero(d);
  auto c20 = hn::Zero(d), c21 = hn::Zero(d), c30 = hn::Zero(d), c31 = hn::Zero(d);
  auto c40 = hn::Zero(d), c41 = hn::Zero(d), c50 = hn::Zero(d), c51 = hn::Zero(d);
  for (int64_t k = 0; k < kc; k++) {
    const auto b0 = hn::LoadU(d, pb);
    const auto b1 = hn::LoadU(d, pb + V);
    auto a = hn::Set(d, pa[0]);
    c00 = hn::MulAdd(a, b0, c00);
    c01 = hn::MulAdd(a, b1, c01);
    a = hn::Set(d, pa[1]);
    c10 = hn::MulAdd(a, b0, c10);
    c11 = hn::MulAdd(a, b1, c11);
    a = hn::Set(d, pa[2]);
    c20 = hn::MulAdd(a, b0, c20);
    c21 = hn::MulAdd(a, b1, c21);
    a = hn::Set(d, pa[3]);
    c30 = hn::MulAdd(a, b0, c30);
    c31 = hn::MulAdd(a, b1, c31);
    a = hn::Set(d, pa[4]);
    c40 = hn::MulAdd(a, b0, c40);
    c41 = hn::MulAdd(a, b1, c41);
    a = hn::Set(d, pa[5]);
    c50 = hn::MulAdd(a, b0, c50);
    c51 = hn::MulAdd(a, b1, c51);
    pa += 6;
    pb += 2 * V;
  }
#define SQ_ACC_ROW(r)                                                      \
  hn::StoreU(hn::Add(hn::LoadU(d, c + r * ldc), c##r##0), d, c + r * ldc); \
  hn::StoreU(hn::Add(hn::LoadU(d, c + r * ldc + V), c##r##1), d, c + r * ldc + V);
  SQ_ACC_ROW(0)
  SQ_ACC_ROW(1)
  SQ_ACC_ROW(2)
  SQ_ACC_ROW(3)
  SQ_ACC_ROW(4)
  SQ_ACC_ROW(5)
#undef SQ_ACC_ROW
}

void TileF32(int64_t kc, const float* pa, int64_t n_i, const float* pb, int64_t n_j, float* c, int64_t ldc) {
  const int64_t nr = NrF32();
  for (int64_t j = 0; j < n_j; j++)
    for (int64_t i = 0; i < n_i; i++) Micro6x2(kc, pa + i * 6 * kc, pb + j * nr * kc, c + i * 6 * ldc + j * nr, ldc);
}

void F16ToF32(const uint16_t* src, float* dst, size_t n) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<hwy::float16_t, decltype(df)> dh;
  const size_t V = hn::Lanes(df);
  const auto* s = reinterpret_cast<const hwy::float16_t*>(src);
  size_t i = 0;
  for (; i + V <= n; i += V) hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, s + i)), df, dst + i);
  for (; i < n; i++) {
    uint16_t b;
    std::memcpy(&b, src + i, 2);
    dst[i] = f16_to_f32(b);
  }
}

void BF16ToF32(const uint16_t* src, float* dst, size_t n) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<hwy::bfloat16_t, decltype(df)> dh;
  const size_t V = hn::Lanes(df);
  const auto* s = reinterpret_cast<const hwy::bfloat16_t*>(src);
  size_t i = 0;
  for (; i + V <= n; i += V) hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, s + i)), df, dst + i);
  for (; i < n; i++) {
    uint16_t b;
    std::memcpy(&b, src + i, 2);
    dst[i] = bf16_to_f32(b);
  }
}

#endif  // SQ_HWY_KERNEL_TARGET
}  // namespace sq::calib::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace sq::calib::detail {

const HwyTable* hwy_table(Isa isa) {
#if HWY_TARGETS & HWY_AVX2
  static const HwyTable avx2{N_AVX2::NrF32(), &N_AVX2::TileF32, &N_AVX2::F16ToF32, &N_AVX2::BF16ToF32};
  if (isa == Isa::kAvx2) return &avx2;
#endif
#if HWY_TARGETS & HWY_AVX3
  static const HwyTable avx3{N_AVX3::NrF32(), &N_AVX3::TileF32, &N_AVX3::F16ToF32, &N_AVX3::BF16ToF32};
  if (hwy_isa(isa) == Isa::kAvx512) return &avx3;
#endif
  return nullptr;
}

}  // namespace sq::calib::detail
#endif  // HWY_ONCE
