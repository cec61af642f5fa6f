// The machine's streaming read bandwidth: the ceiling for decode, where every weight byte is read once
// per token. Benchmarks and `bench` report kernel throughput as a fraction of it.
#pragma once
#include <cstddef>

#include "core/threadpool.h"

namespace sq {

// Stream counts the probe tries (each thread reads its slice as that many side-by-side sequential
// streams; one stream alone cannot saturate DRAM on common cores, and the best count differs between
// machines).
inline constexpr size_t kProbeStreams[] = {2, 4, 8};

// Sums a buffer of `bytes` (rounded down to whole 4 KiB pages; use far more than the last-level cache)
// with SIMD on every thread of `pool`, each thread over one contiguous slice, once per count in
// kProbeStreams, `repeats` times after one warm-up pass each; returns the best count's median
// bytes/s / 1e9. The buffer is allocated and written (first touch by the threads that read it) inside
// the call and freed before it returns.
double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes = size_t(1) << 30, int repeats = 5);

// Σ data[0, n) read by every thread of `pool` over one contiguous slice each, as `streams` (one of
// kProbeStreams) sequential streams per thread (the loop the figure above times). Benchmarks call it
// between kernel calls to time a plain read of the same number of bytes under the same conditions.
float parallel_read_sum(ThreadPool& pool, const float* data, size_t n, size_t streams = 4);

}  // namespace sq
