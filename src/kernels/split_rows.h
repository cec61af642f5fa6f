// How every matrix kernel spreads output rows over the thread pool (kernels/{dense,lut,int4,q8}.cpp).
#pragma once
#include <algorithm>
#include <cstddef>

#include "core/threadpool.h"

namespace sq::kernels {

// Below this many weight × X-row products per chunk, a hand-off to another thread costs more than it
// saves (a wake-up of a spinning worker is ~1 µs; 64 Ki products take several µs even on one core).
constexpr size_t kMinWorkPerChunk = size_t(64) << 10;

// Dense-weight equivalents of one sparse non-zero × activation-row product, for sizing row chunks: a
// non-zero reads 8 bytes and gathers one activation, against 3/8 to 2 bytes per dense weight.
constexpr size_t kSparseWork = 24;

// Chunk boundaries over [0, rows) in whole quanta of `quantum` rows (the last chunk may end at rows),
// by guided scheduling: each chunk takes about 1 / (2 · threads) of the work not yet assigned, and at
// least min_chunk_work. Threads start on large chunks (long sequential reads per stream) and finish on
// small ones, so the thread that finishes last waits for a small chunk, not for a quarter of a matrix:
// with equal chunks, the other thread's idle time at the end of each matrix was 8-12% of a decode
// profile on 2 threads. cum_work(r) is the work of rows [0, r): non-decreasing, cum_work(0) = 0.
// At most this many chunks (2 threads make about 30 for a 4096x11008 matvec); past it the last chunk
// takes the rest. The boundaries live on the caller's stack: splitting allocates nothing.
constexpr size_t kMaxChunks = 512;

// Writes the chunk boundaries b[0] = 0 < b[1] < ... < b[k] = rows into b and returns k.
template <class CumWork>
size_t guided_chunks(size_t rows, size_t quantum, const CumWork& cum_work, size_t min_chunk_work, int threads,
                     size_t (&b)[kMaxChunks + 1]) {
  const size_t n_quanta = (rows + quantum - 1) / quantum;
  auto at = [&](size_t q) { return size_t(cum_work(std::min(rows, q * quantum))); };
  const size_t total = at(n_quanta);
  size_t k = 0, q = 0;
  b[0] = 0;
  while (q < n_quanta) {
    if (k + 1 == kMaxChunks) {  // the last one takes the rest
      b[++k] = rows;
      break;
    }
    const size_t done = at(q);
    const size_t target = done + std::max(min_chunk_work, (total - done) / (2 * size_t(std::max(1, threads))));
    // First quantum boundary past q whose cumulative work reaches target (binary search: cum_work is
    // monotone), at least one quantum further.
    size_t lo = q + 1, hi = n_quanta;
    while (lo < hi) {
      const size_t mid = lo + (hi - lo) / 2;
      if (at(mid) >= target) hi = mid; else lo = mid + 1;
    }
    q = lo;
    b[++k] = std::min(rows, q * quantum);
  }
  return k;
}

// Calls fn(r0, r1) over [0, rows) in guided chunks (above) on the pool when the work is worth a
// hand-off, else once on the calling thread. Results never depend on the split: each kernel computes a
// row's sum the same way wherever it lands.
template <class CumWork, class Fn>
void split_rows_by_work(size_t rows, size_t quantum, const CumWork& cum_work, ThreadPool* pool, const Fn& fn) {
  if (rows == 0) return;
  if (pool == nullptr || pool->size() == 1 || size_t(cum_work(rows)) <= kMinWorkPerChunk) {
    fn(size_t(0), rows);
    return;
  }
  size_t b[kMaxChunks + 1];
  const size_t k = guided_chunks(rows, quantum, cum_work, kMinWorkPerChunk, pool->size(), b);
  pool->run(k, [&](size_t i, int) { fn(b[i], b[i + 1]); });
}

// Rows of equal work (work_per_row weight × X-row products each).
template <class Fn>
void split_rows(size_t rows, size_t quantum, size_t work_per_row, ThreadPool* pool, const Fn& fn) {
  const size_t w = std::max<size_t>(1, work_per_row);
  split_rows_by_work(rows, quantum, [w](size_t r) { return r * w; }, pool, fn);
}

}  // namespace sq::kernels
