// Streaming read bandwidth (see bandwidth.h). The summing loop is a Highway kernel dispatched to the
// best target the CPU has, so the figure is what a SIMD kernel can actually pull from memory.
#include "kernels/simd_targets.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "core/bandwidth.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace sq::bw::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Σ p[0, n), read as kStreams sequential streams (the kStreams parts of the range side by side, one
// accumulator each); p needs only float alignment. How many streams a core needs to pull the most from
// DRAM differs between machines (a Zen 3 VM: ~1.5x more with 8 than with 1; a Zen 5-class EPYC VM: 4
// and 2 streams 8-13% more than 8, 1 and 16 less), so the probe tries several (kProbeStreams) and keeps the best.
template <size_t kStreams>
float SumStreams(const float* HWY_RESTRICT p, size_t n) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  const size_t len = n / (kStreams * N) * N;  // per stream, whole vectors
  decltype(hn::Zero(df)) acc[kStreams];
  for (size_t s = 0; s < kStreams; s++) acc[s] = hn::Zero(df);
  for (size_t i = 0; i < len; i += N)
    for (size_t s = 0; s < kStreams; s++) acc[s] = hn::Add(acc[s], hn::LoadU(df, p + s * len + i));
  auto total = acc[0];
  for (size_t s = 1; s < kStreams; s++) total = hn::Add(total, acc[s]);
  float sum = hn::GetLane(hn::SumOfLanes(df, total));
  for (size_t i = kStreams * len; i < n; i++) sum += p[i];
  return sum;
}

float SumFloats(const float* HWY_RESTRICT p, size_t n, size_t streams) {
  switch (streams) {
    case 2: return SumStreams<2>(p, n);
    case 4: return SumStreams<4>(p, n);
    case 8: return SumStreams<8>(p, n);
    default: HWY_ABORT("SumFloats: %zu streams are not compiled in", streams);
  }
}

}  // namespace sq::bw::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <vector>

#include "core/bandwidth.h"
#include "core/error.h"

namespace sq {
namespace bw {
HWY_EXPORT(SumFloats);
float sum_floats(const float* p, size_t n, size_t streams) { return HWY_DYNAMIC_DISPATCH(SumFloats)(p, n, streams); }
}  // namespace bw

float parallel_read_sum(ThreadPool& pool, const float* data, size_t n, size_t streams) {
  const size_t n_slices = size_t(pool.size());
  std::vector<float> sums(n_slices);
  pool.run(n_slices, [&](size_t t, int) {
    const size_t b = n * t / n_slices, e = n * (t + 1) / n_slices;
    sums[t] = bw::sum_floats(data + b, e - b, streams);
  });
  float s = 0;
  for (float v : sums) s += v;
  return s;
}

double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes, int repeats) {
  constexpr size_t kPage = 4096;
  bytes -= bytes % kPage;
  SQ_CHECK(bytes >= kPage, "measure_read_bandwidth_gbs: buffer of ", bytes, " bytes is too small");
  SQ_CHECK(repeats >= 1, "measure_read_bandwidth_gbs: repeats must be >= 1");
  const size_t n = bytes / sizeof(float);
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> buf(static_cast<float*>(std::aligned_alloc(kPage, bytes)));
  SQ_CHECK(buf != nullptr, "measure_read_bandwidth_gbs: cannot allocate ", bytes, " bytes");

  // One contiguous slice per thread, on page boundaries.
  const size_t n_slices = size_t(pool.size());
  const size_t pages = bytes / kPage, pages_per = (pages + n_slices - 1) / n_slices;
  auto slice = [&](size_t t, size_t* b, size_t* e) {
    *b = std::min(pages, t * pages_per) * (kPage / sizeof(float));
    *e = std::min(pages, (t + 1) * pages_per) * (kPage / sizeof(float));
  };
  pool.run(n_slices, [&](size_t t, int) {
    size_t b, e;
    slice(t, &b, &e);
    std::fill(buf.get() + b, buf.get() + e, 1.0f / 1024);
  });

  // Per stream count: the median over `repeats` passes (after one warm-up pass); the best count wins.
  std::vector<float> sums(n_slices);
  double best = 0;
  for (size_t streams : kProbeStreams) {
    std::vector<double> gbs;
    for (int rep = -1; rep < repeats; rep++) {  // rep -1 warms up
      auto t0 = std::chrono::steady_clock::now();
      pool.run(n_slices, [&](size_t t, int) {
        size_t b, e;
        slice(t, &b, &e);
        sums[t] = bw::sum_floats(buf.get() + b, e - b, streams);
      });
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rep >= 0) gbs.push_back(double(n) * sizeof(float) / s / 1e9);
    }
    std::sort(gbs.begin(), gbs.end());
    best = std::max(best, gbs[gbs.size() / 2]);
  }
  // The sums are consumed so the reads cannot be optimised away.
  volatile float sink = 0;
  for (float s : sums) sink = sink + s;
  (void)sink;
  return best;
}

}  // namespace sq
#endif  // HWY_ONCE
