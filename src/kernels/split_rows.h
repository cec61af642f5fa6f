// How every matrix kernel spreads output rows over the thread pool (kernels/{dense,lut,int4}.cpp).
#pragma once
#include <algorithm>
#include <cstddef>

#include "core/threadpool.h"

namespace sq::kernels {

// Below this many weight × X-row products per chunk, a hand-off to another thread costs more than it
// saves (a wake-up of a spinning worker is ~1 µs; 64 Ki products take several µs even on one core).
constexpr size_t kMinWorkPerChunk = size_t(64) << 10;

// Calls fn(r0, r1) over [0, rows) in chunks of whole quanta of `quantum` rows (the tile height of the
// SIMD kernels, so few rows are left over per chunk), on the pool when the work is worth a hand-off.
// Results never depend on the split: each kernel computes a row's sum the same way wherever it lands.
template <class Fn>
void split_rows(size_t rows, size_t quantum, size_t work_per_row, ThreadPool* pool, const Fn& fn) {
  const size_t n_quanta = (rows + quantum - 1) / quantum;
  const size_t grain = std::max<size_t>(1, kMinWorkPerChunk / (std::max<size_t>(1, work_per_row) * quantum));
  if (pool == nullptr || pool->size() == 1 || n_quanta <= grain) {
    fn(size_t(0), rows);
    return;
  }
  pool->parallel_for(n_quanta, grain,
                     [&](size_t b, size_t e, int) { fn(b * quantum, std::min(rows, e * quantum)); });
}

}  // namespace sq::kernels
