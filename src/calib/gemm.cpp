#include "calib/gemm.h"

#include "core/dtype.h"
#include "core/error.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <type_traits>

namespace sq::calib {

namespace {

// Reference micro-kernel: plain loops over an MR x NR register tile (auto-vectorised at best).
constexpr int kRefMr = 4, kRefNr = 8;

template <typename T>
void ref_tile(int64_t kc, const T* pa, int64_t n_i, const T* pb, int64_t n_j, T* c, int64_t ldc) {
  for (int64_t j = 0; j < n_j; j++)
    for (int64_t i = 0; i < n_i; i++) {
      const T* a = pa + i * kRefMr * kc;
      const T* b = pb + j * kRefNr * kc;
      T acc[kRefMr][kRefNr] = {};
      for (int64_t k = 0; k < kc; k++)
        for (int r = 0; r < kRefMr; r++) {
          const T av = a[k * kRefMr + r];
          for (int q = 0; q < kRefNr; q++) acc[r][q] += av * b[k * kRefNr + q];
        }
      T* cc = c + i * kRefMr * ldc + j * kRefNr;
      for (int r = 0; r < kRefMr; r++)
        for (int q = 0; q < kRefNr; q++) cc[r * ldc + q] += acc[r][q];
    }
}

template <typename T>
struct Kernel {
  int mr, nr;
  void (*tile)(int64_t, const T*, int64_t, const T*, int64_t, T*, int64_t);
};

template <typename T>
Kernel<T> pick_kernel(Isa isa) {
  if constexpr (std::is_same_v<T, float>) {
    // Callers in a loop pass an ISA they resolved once (CalibModel does), so only kBest is resolved here
    // (resolve_isa's CPU check is cached, but the concrete ISA also names the table to use).
    const Isa concrete = isa == Isa::kBest ? resolve_isa(isa) : isa;
    if (concrete != Isa::kScalar) {
      const detail::HwyTable* t = detail::hwy_table(concrete);
      SQ_CHECK(t != nullptr, "calibration GEMM: ISA ", isa_name(concrete), " was not compiled into this build");
      return {detail::kHwyMr, t->nr, t->tile};
    }
  }
  return {kRefMr, kRefNr, ref_tile<T>};
}

// pa[s][k][r] = A(i0 + s*mr + r, k0 + k), zero past row M.
template <typename T>
void pack_a(MatRef<T> A, int64_t i0, int64_t mc, int64_t M, int64_t k0, int64_t kc, int mr, T* pa) {
  for (int64_t s = 0; s * mr < mc; s++) {
    T* dst = pa + s * mr * kc;
    const int64_t ib = i0 + s * mr;
    const int valid = int(std::max<int64_t>(0, std::min<int64_t>({int64_t(mr), M - ib, mc - s * mr})));
    if (A.rs == 1) {  // columns of A contiguous (A = dYᵀ): mr consecutive elements per k
      for (int64_t k = 0; k < kc; k++) {
        const T* src = A.data + (k0 + k) * A.cs + ib;
        T* d = dst + k * mr;
        for (int r = 0; r < valid; r++) d[r] = src[r];
        for (int r = valid; r < mr; r++) d[r] = T(0);
      }
      continue;
    }
    for (int r = 0; r < mr; r++) {
      if (r >= valid) {
        for (int64_t k = 0; k < kc; k++) dst[k * mr + r] = T(0);
        continue;
      }
      const T* src = A.data + (ib + r) * A.rs + k0 * A.cs;
      if (A.cs == 1)
        for (int64_t k = 0; k < kc; k++) dst[k * mr + r] = src[k];
      else
        for (int64_t k = 0; k < kc; k++) dst[k * mr + r] = src[k * A.cs];
    }
  }
}

// pb[s][k][q] = B(k0 + k, j0 + s*nr + q), zero past column N.
template <typename T>
void pack_b(MatRef<T> B, int64_t j0, int64_t nc, int64_t N, int64_t k0, int64_t kc, int nr, T* pb) {
  constexpr int kMaxNr = 64;
  for (int64_t s = 0; s * nr < nc; s++) {
    T* dst = pb + s * nr * kc;
    const int64_t jb = j0 + s * nr;
    const int valid = int(std::max<int64_t>(0, std::min<int64_t>({int64_t(nr), N - jb, nc - s * nr})));
    if (B.cs == 1) {  // rows of B contiguous: nr-wide row pieces
      for (int64_t k = 0; k < kc; k++) {
        const T* src = B.data + (k0 + k) * B.rs + jb;
        // Rows lie B.rs apart (a weight row each): fetch a few ahead, the stride defeats the
        // hardware prefetcher and this packing pass is what streams the weights from DRAM.
        if (k + 8 < kc) __builtin_prefetch(src + 8 * B.rs);
        T* d = dst + k * nr;
        for (int q = 0; q < valid; q++) d[q] = src[q];
        for (int q = valid; q < nr; q++) d[q] = T(0);
      }
    } else if (nr <= kMaxNr) {  // e.g. B = Wᵀ: nr sequential streams (rows of W), written k by k
      const T* col[kMaxNr];
      for (int q = 0; q < valid; q++) col[q] = B.data + k0 * B.rs + (jb + q) * B.cs;
      for (int64_t k = 0; k < kc; k++) {
        T* d = dst + k * nr;
        if (k % 16 == 0 && k + 64 < kc)
          for (int q = 0; q < valid; q++) __builtin_prefetch(col[q] + (k + 64) * B.rs);
        for (int q = 0; q < valid; q++) d[q] = col[q][k * B.rs];
        for (int q = valid; q < nr; q++) d[q] = T(0);
      }
    } else {
      for (int64_t k = 0; k < kc; k++)
        for (int q = 0; q < nr; q++) dst[k * nr + q] = q < valid ? B.data[(k0 + k) * B.rs + (jb + q) * B.cs] : T(0);
    }
  }
}

enum class Epilogue { kStore, kAdd, kSquareAdd };

template <typename T>
void gemm_impl(int64_t M, int64_t N, int64_t K, MatRef<T> A, MatRef<T> B, Epilogue ep, T* C, float* F, int64_t ldc,
               Isa isa, ThreadPool* pool) {
  if (M <= 0 || N <= 0) return;
  const Kernel<T> kern = pick_kernel<T>(isa);
  // Below ~2M multiply-adds (tens of microseconds) waking the pool costs more than it saves.
  if (M * N * std::max<int64_t>(K, 1) < (int64_t(1) << 21)) pool = nullptr;
  const int n_threads = pool ? pool->size() : 1;
  const int64_t mr = kern.mr, nr = kern.nr;
  // Blocks: an MC x KC block of A (up to 192 KiB in f32) in L2, a KC x NR sliver of B in L1.
  // A task owns a column tile of C (about 384 wide) and a group of rows (all of M unless there are
  // too few column tiles to keep the threads busy). Its C tile is private, so the epilogue sees
  // complete sums (needed to square them). Two loop orders:
  //   short A (group <= 1024 rows: a sequence of activations times a weight): k blocks outer, each
  //     block of B (the weight, streamed from DRAM) packed once and used by every row block;
  //   tall A (dW = dYᵀ·X with M = a weight's rows, K = L): the task's whole B panel (K x NC, small)
  //     packed once, then row blocks one after another, each finished (epilogue) before the next.
  const int64_t Mp = (M + mr - 1) / mr * mr;
  const int64_t MC = std::min<int64_t>(32 * mr, Mp);
  const int64_t KC = std::min<int64_t>(256, std::max<int64_t>(K, 1));
  const int64_t n_kb = (K + KC - 1) / KC;
  int64_t nt = std::max<int64_t>(1, (N + 383) / 384), mt = 1;
  if (nt < 2 * n_threads) mt = std::min<int64_t>((M + MC - 1) / MC, (2 * n_threads + nt - 1) / nt);
  if (mt * nt > 1 && (mt * nt) % n_threads) nt += n_threads - (mt * nt) % n_threads;
  const int64_t NC = std::max<int64_t>(1, ((N + nt - 1) / nt + nr - 1) / nr) * nr;
  nt = (N + NC - 1) / NC;
  int64_t MT = ((M + mt - 1) / mt + MC - 1) / MC * MC;  // rows per group, a multiple of MC
  // A tall A with a long K (no such product in calibration) would make the B panel too big:
  // fall back to groups of at most 1024 rows in the short order.
  if (MT > 1024 && n_kb * KC * NC > (int64_t(1) << 22)) MT = std::max<int64_t>(1, 1024 / MC) * MC;
  mt = (M + MT - 1) / MT;
  const bool short_a = MT <= 1024;
  const size_t pa_n = size_t(MC * KC), pb_n = size_t((short_a ? 1 : n_kb) * KC * NC);
  const size_t ct_n = size_t((short_a ? MT : MC) * NC), per_thread = pa_n + pb_n + ct_n;
  std::unique_ptr<T[]> buf(new T[size_t(n_threads) * per_thread]);

  auto task = [&](size_t t, int th) {
    T* pa = buf.get() + size_t(th) * per_thread;
    T* pb = pa + pa_n;
    T* ct = pb + pb_n;
    const int64_t i0 = int64_t(t / nt) * MT, j0 = int64_t(t % nt) * NC;
    const int64_t mc = std::min(MT, M - i0), nc = std::min(NC, N - j0);
    const int64_t n_j = (nc + nr - 1) / nr;
    const int64_t ldt = n_j * nr;
    // Rows [r0, r0 + rows) of the group, held in tile rows from 0.
    auto epilogue = [&](int64_t r0, int64_t rows, const T* tile) {
      for (int64_t i = 0; i < rows; i++) {
        const T* src = tile + i * ldt;
        const int64_t row = i0 + r0 + i;
        switch (ep) {
          case Epilogue::kStore: {
            T* dst = C + row * ldc + j0;
            for (int64_t j = 0; j < nc; j++) dst[j] = src[j];
            break;
          }
          case Epilogue::kAdd: {
            T* dst = C + row * ldc + j0;
            for (int64_t j = 0; j < nc; j++) dst[j] += src[j];
            break;
          }
          case Epilogue::kSquareAdd: {
            float* dst = F + row * ldc + j0;
            for (int64_t j = 0; j < nc; j++) dst[j] += float(src[j] * src[j]);
            break;
          }
        }
      }
    };
    if (short_a) {
      std::fill(ct, ct + (mc + mr - 1) / mr * mr * ldt, T(0));
      for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int64_t kc = std::min(KC, K - k0);
        pack_b(B, j0, nc, N, k0, kc, kern.nr, pb);
        for (int64_t ib = 0; ib < mc; ib += MC) {
          const int64_t mb = std::min(MC, mc - ib);
          pack_a(A, i0 + ib, mb, M, k0, kc, kern.mr, pa);
          kern.tile(kc, pa, (mb + mr - 1) / mr, pb, n_j, ct + ib * ldt, ldt);
        }
      }
      epilogue(0, mc, ct);
      return;
    }
    for (int64_t kb = 0; kb < n_kb; kb++)
      pack_b(B, j0, nc, N, kb * KC, std::min(KC, K - kb * KC), kern.nr, pb + kb * KC * NC);
    for (int64_t ib = 0; ib < mc; ib += MC) {
      const int64_t mb = std::min(MC, mc - ib);
      std::fill(ct, ct + (mb + mr - 1) / mr * mr * ldt, T(0));
      for (int64_t kb = 0; kb < n_kb; kb++) {
        const int64_t k0 = kb * KC, kc = std::min(KC, K - k0);
        pack_a(A, i0 + ib, mb, M, k0, kc, kern.mr, pa);
        kern.tile(kc, pa, (mb + mr - 1) / mr, pb + kb * KC * NC, n_j, ct, ldt);
      }
      epilogue(ib, mb, ct);
    }
  };
  const size_t n_tasks = size_t(mt * nt);
  if (pool && n_tasks > 1) {
    pool->run(n_tasks, task);
  } else {
    for (size_t t = 0; t < n_tasks; t++) task(t, 0);
  }
}

}  // namespace

template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, MatRef<T> A, MatRef<T> B, T* C, int64_t ldc, bool accumulate, Isa isa,
          ThreadPool* pool) {
  gemm_impl<T>(M, N, K, A, B, accumulate ? Epilogue::kAdd : Epilogue::kStore, C, nullptr, ldc, isa, pool);
}

template <typename T>
void gemm_square_add(int64_t M, int64_t N, int64_t K, MatRef<T> A, MatRef<T> B, float* F, int64_t ldf, Isa isa,
                     ThreadPool* pool) {
  gemm_impl<T>(M, N, K, A, B, Epilogue::kSquareAdd, nullptr, F, ldf, isa, pool);
}

void f16_to_f32_bulk(const uint16_t* src, float* dst, size_t n) {
  const Isa isa = best_isa();
  const detail::HwyTable* t = isa == Isa::kScalar ? nullptr : detail::hwy_table(isa);
  if (t) return t->f16(src, dst, n);
  for (size_t i = 0; i < n; i++) {
    uint16_t b;
    std::memcpy(&b, src + i, 2);
    dst[i] = f16_to_f32(b);
  }
}

void bf16_to_f32_bulk(const uint16_t* src, float* dst, size_t n) {
  const Isa isa = best_isa();
  const detail::HwyTable* t = isa == Isa::kScalar ? nullptr : detail::hwy_table(isa);
  if (t) return t->bf16(src, dst, n);
  for (size_t i = 0; i < n; i++) {
    uint16_t b;
    std::memcpy(&b, src + i, 2);
    dst[i] = bf16_to_f32(b);
  }
}

template void gemm<float>(int64_t, int64_t, int64_t, MatRef<float>, MatRef<float>, float*, int64_t, bool, Isa,
                          ThreadPool*);
template void gemm<double>(int64_t, int64_t, int64_t, MatRef<double>, MatRef<double>, double*, int64_t, bool, Isa,
                           ThreadPool*);
template void gemm_square_add<float>(int64_t, int64_t, int64_t, MatRef<float>, MatRef<float>, float*, int64_t, Isa,
                                     ThreadPool*);
template void gemm_square_add<double>(int64_t, int64_t, int64_t, MatRef<double>, MatRef<double>, float*, int64_t,
                                      Isa, ThreadPool*);

}  // namespace sq::calib
