// The dense matrix products of calibration (forward, backward, Fisher): one packed GEMM for every
// operand layout, so X·Wᵀ, dY·W, dYᵀ·X and the per-head attention products need no transposed copies.
//
// Operands are strided views: element (i, j) of a MatRef lives at data[i * rs + j * cs]. A row-major
// [rows, ld] buffer is {p, ld, 1}; its transpose is {p, 1, ld}. The driver packs blocks of A into
// MR-row slivers and blocks of B into NR-column slivers (zero-padded), runs a register-tiled
// micro-kernel over them and applies the epilogue (store, add, or square-and-add into an f32 Fisher
// accumulator). Tiles of C are independent tasks spread over the ThreadPool.
//
// Kernels: float uses a Highway micro-kernel (6 x 2 vectors of FMA accumulators) for the context's
// ISA (resolve_isa: kBest -> AVX-512 or AVX2) unless it is Isa::kScalar; double (finite-difference tests) and kScalar use the
// plain C++ reference kernel, which the tests compare the fast one against.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/context.h"

namespace sq::calib {

template <typename T>
struct MatRef {
  const T* data;
  int64_t rs, cs;  // element (i, j) at data[i * rs + j * cs]
};

template <typename T>
MatRef<T> row_major(const T* p, int64_t ld) { return {p, ld, 1}; }
template <typename T>
MatRef<T> transposed(const T* p, int64_t ld) { return {p, 1, ld}; }

// C[M, N] (row stride ldc) = A[M, K] · B[K, N], or += when accumulate. pool == nullptr runs on the
// calling thread (used inside tasks that are themselves spread over the pool). isa: kBest, kScalar,
// or a concrete ISA the CPU supports (resolve_isa once; it is not re-checked here).
template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, MatRef<T> A, MatRef<T> B, T* C, int64_t ldc, bool accumulate,
          Isa isa, ThreadPool* pool);

// F[M, N] (row stride ldf, f32) += (A · B)² element-wise: the Fisher diagonal of one sequence added
// to the running sum. The whole K is reduced before squaring (each tile holds its full sums).
template <typename T>
void gemm_square_add(int64_t M, int64_t N, int64_t K, MatRef<T> A, MatRef<T> B, float* F, int64_t ldf, Isa isa,
                     ThreadPool* pool);

// Bulk conversion of stored half-precision weights to f32 with the best ISA (the scalar converters of
// core/dtype.h are the reference and the fallback). src need only be 2-byte aligned.
void f16_to_f32_bulk(const uint16_t* src, float* dst, size_t n);
void bf16_to_f32_bulk(const uint16_t* src, float* dst, size_t n);

namespace detail {
// The Highway kernels of one target (gemm_hwy.cpp); MR of the float micro-kernel is 6, NR 2 vectors.
constexpr int kHwyMr = 6;
struct HwyTable {
  int nr;
  // c[i-sliver, j-sliver] += pa-sliver · pb-sliver for all n_i x n_j slivers; pa: [n_i][kc][MR],
  // pb: [n_j][kc][NR], c row stride ldc.
  void (*tile)(int64_t kc, const float* pa, int64_t n_i, const float* pb, int64_t n_j, float* c, int64_t ldc);
  void (*f16)(const uint16_t* src, float* dst, size_t n);
  void (*bf16)(const uint16_t* src, float* dst, size_t n);
};
// For a concrete ISA (kAvx2 / kAvx512); nullptr when that target is not compiled in.
const HwyTable* hwy_table(Isa isa);
}  // namespace detail

}  // namespace sq::calib
