// The machine's streaming read bandwidth: the ceiling for decode, where every weight byte is read once
// per token. Benchmarks and `bench` report kernel throughput as a fraction of it.
#pragma once
#include <cstddef>

#include "core/threadpool.h"

namespace sq {

// Sums a buffer of `bytes` (rounded down to whole 4 KiB pages; use far more than the last-level cache)
// with SIMD on every thread of `pool`, each thread over one contiguous slice read as 8 side-by-side
// sequential streams (one stream alone cannot saturate DRAM on common cores), `repeats` times after one
// warm-up pass; returns the median bytes/s / 1e9. The buffer is allocated and written (first touch by
// the threads that read it) inside the call and freed before it returns.
double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes = size_t(1) << 30, int repeats = 5);

// Σ data[0, n) read by every thread of `pool` over one contiguous slice each (the loop the figure above
// times). Benchmarks call it between kernel calls to time a plain read of the same number of bytes
// under the same conditions.
float parallel_read_sum(ThreadPool& pool, const float* data, size_t n);

}  // namespace sq
