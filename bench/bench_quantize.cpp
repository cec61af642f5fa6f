// Quantization time of one LLaMA-7B down_proj-shaped matrix (4096 rows × 11008 columns) with
// synthetic heavy-tailed weights and synthetic Fisher values (squared Gaussian gradients).
//
//   bench_quantize [--benchmark_repetitions=3 --benchmark_report_aggregates_only=true]
//
//   squeezellm/<bits>/<fast|exact>/sparse:<0|45>/threads:<t>  quant/squeezellm.h (sparse:45 = 0.45%)
//   rtn_lut/<bits>/threads:<t>                                 quant/rtn.h, per-row tables
//   int4_g128/<clip 0|1>/threads:<t>                            quant/int4_quant.h
// Wall time per matrix (UseRealTime). SqueezeLLM's reference code needed ~2 h for all of LLaMA-2-7B
// (224 such matrices, about 1 matrix-equivalent per 30 s) before its optimisation and ~1 min after.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "core/context.h"
#include "quant/int4_quant.h"
#include "quant/rtn.h"
#include "quant/squeezellm.h"

namespace {

constexpr int64_t kRows = 4096, kCols = 11008;

struct Data {
  std::vector<float> w, fisher;
  Data() : w(size_t(kRows * kCols)), fisher(w.size()) {
    std::mt19937_64 rng(7);
    std::student_t_distribution<float> t(5.0f);  // heavy tails: a few outliers per row
    std::normal_distribution<float> g(0.0f, 1.0f);
    for (size_t i = 0; i < w.size(); i++) {
      w[i] = 0.02f * t(rng);
      const float gr = g(rng) * 1e-3f;
      fisher[i] = gr * gr;
    }
  }
};

const Data& data() {
  static const Data d;
  return d;
}

int threads_arg(const benchmark::State& s, int i) { return int(s.range(i)); }

void BM_squeezellm(benchmark::State& state) {
  const Data& d = data();
  sq::SqueezeOptions o;
  o.bits = int(state.range(0));
  o.exact = state.range(1) != 0;
  o.sparsity = double(state.range(2)) / 100.0;
  auto ctx = sq::make_context(threads_arg(state, 3));
  const sq::SqueezeInput in{"down_proj", d.w.data(), d.fisher.data(), kRows, kCols};
  for (auto _ : state) {
    sq::LutMatrix m = sq::squeezellm_quantize(in, sq::DType::F16, o, ctx.ctx);
    benchmark::DoNotOptimize(m);
  }
  state.counters["Mweights_per_s"] =
      benchmark::Counter(double(kRows * kCols) * 1e-6, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_rtn_lut(benchmark::State& state) {
  const Data& d = data();
  auto ctx = sq::make_context(threads_arg(state, 1));
  for (auto _ : state) {
    sq::LutMatrix m = sq::quantize_rtn_lut(d.w.data(), kRows, kCols, int(state.range(0)), 0, ctx.ctx);
    benchmark::DoNotOptimize(m);
  }
}

void BM_int4_g128(benchmark::State& state) {
  const Data& d = data();
  auto ctx = sq::make_context(threads_arg(state, 1));
  for (auto _ : state) {
    sq::Int4Matrix m = sq::quantize_int4_rtn(d.w.data(), kRows, kCols, 128, state.range(0) != 0, ctx.ctx);
    benchmark::DoNotOptimize(m);
  }
}

}  // namespace

// Args: bits, exact, sparsity ×100, threads (0 = all cores).
BENCHMARK(BM_squeezellm)
    ->Name("squeezellm")
    ->ArgNames({"bits", "exact", "sparse", "threads"})
    ->Args({3, 0, 0, 0})
    ->Args({4, 0, 0, 0})
    ->Args({3, 0, 45, 0})
    ->Args({3, 0, 0, 1})
    ->Unit(benchmark::kSecond)
    ->UseRealTime()
    ->Iterations(1);
BENCHMARK(BM_rtn_lut)->Name("rtn_lut")->ArgNames({"bits", "threads"})->Args({3, 0})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_int4_g128)->Name("int4_g128")->ArgNames({"clip", "threads"})->Args({0, 0})->Args({1, 0})->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
