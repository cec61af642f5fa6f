// ThreadPool hand-off cost: what a parallel call adds to every matvec of a decode step.
//   run/threads:T/gap_us:G   one run() of T trivial tasks, G µs of idle time before each call
// (gap 0: back-to-back, workers still spinning; gap 1000: workers asleep, a futex wake-up is paid).
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "core/threadpool.h"

namespace {

void BM_run(benchmark::State& state) {
  const int threads = int(state.range(0));
  const int gap_us = int(state.range(1));
  sq::ThreadPool pool(threads);
  std::atomic<int> sink{0};
  double seconds = 0;
  for (auto _ : state) {
    if (gap_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(gap_us));
    auto t0 = std::chrono::steady_clock::now();
    pool.run(size_t(threads), [&](size_t t, int) { sink.fetch_add(int(t), std::memory_order_relaxed); });
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  state.counters["us_per_call"] = seconds / double(state.iterations()) * 1e6;
}

}  // namespace

BENCHMARK(BM_run)
    ->ArgNames({"threads", "gap_us"})
    ->Args({2, 0})
    ->Args({2, 1000})
    ->Args({4, 0})
    ->Args({4, 1000})
    ->UseRealTime();

BENCHMARK_MAIN();
