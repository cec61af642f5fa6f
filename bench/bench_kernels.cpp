// Dense kernel throughput against the machine's read bandwidth.
//
//   bench_kernels [--bw_gib=1] [google benchmark flags, e.g. --benchmark_repetitions=5
//                  --benchmark_report_aggregates_only=true --benchmark_filter=matvec/F16]
//
// First measures the streaming read bandwidth (core/bandwidth.h) with 1 and 2 threads, then runs
//   matvec/<dtype>/<isa>/<rows>x<cols>/threads:<t>   Y[1, rows] = x · Wᵀ (decode)
//   matmul64/<dtype>/<isa>/<rows>x<cols>/threads:<t> Y[64, rows] = X[64, cols] · Wᵀ (prompt)
// for the LLaMA-7B shapes (q/k/v/o 4096×4096, gate/up 11008×4096, down 4096×11008, lm_head 32000×4096).
// Counters: GBps = weight bytes read per second / 1e9 (time = the kernel call alone);
// read_GBps = a plain SIMD read of as many bytes with the same threads, interleaved with the calls;
// bw_ratio = GBps / read_GBps (the figure to quote: both see the same machine load);
// bw_ratio_start = GBps / the bandwidth measured once at start-up; GFLOPs for the matmul;
// GBps_cpu, bw_ratio_cpu = the same from process CPU time / threads (robust on a shared machine).
// Weights are cycled over enough copies (>= 3, >= 512 MiB) that every call reads them from DRAM, as
// decode does layer after layer, not from the 32 MiB L3.
#include <benchmark/benchmark.h>

#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/bandwidth.h"
#include "core/context.h"
#include "core/dtype.h"
#include "kernels/dense.h"

namespace {

using sq::DType;
using sq::Isa;

struct Shape {
  int64_t rows, cols;
};
constexpr Shape kShapes[] = {{4096, 4096}, {11008, 4096}, {4096, 11008}, {32000, 4096}};

// Read bandwidth (GB/s) by thread count, measured once in main.
std::map<int, double> g_bandwidth;

// Owns copies of a weight matrix filled with pseudo-random values in [-1, 1). At least 3 copies and
// 512 MiB in all, so no call finds its weights in the 32 MiB L3 (see BM_dense).
struct WeightSet {
  std::vector<std::unique_ptr<uint8_t[]>> copies;
  size_t bytes = 0;
};

WeightSet make_weights(DType dt, const Shape& s) {
  WeightSet ws;
  ws.bytes = size_t(s.rows) * size_t(s.cols) * sq::dtype_size(dt);
  const size_t min_total = size_t(512) << 20;
  const size_t n_copies = std::max<size_t>(3, (min_total + ws.bytes - 1) / ws.bytes);
  uint32_t state = 12345;
  for (size_t c = 0; c < n_copies; c++) {
    ws.copies.emplace_back(new uint8_t[ws.bytes]);
    uint8_t* p = ws.copies.back().get();
    if (c > 0) {
      std::memcpy(p, ws.copies[0].get(), ws.bytes);
      continue;
    }
    const size_t n = size_t(s.rows) * size_t(s.cols);
    for (size_t i = 0; i < n; i++) {
      state = state * 1664525u + 1013904223u;
      float v = float(int32_t(state >> 8) - (1 << 23)) / float(1 << 23);
      if (dt == DType::F32) {
        std::memcpy(p + 4 * i, &v, 4);
      } else {
        uint16_t h = dt == DType::F16 ? sq::f32_to_f16(v) : sq::f32_to_bf16(v);
        std::memcpy(p + 2 * i, &h, 2);
      }
    }
  }
  return ws;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// CPU time of the whole process (all pool threads), in seconds.
double process_cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + double(t.tv_nsec) * 1e-9;
}

// Each iteration times one kernel call on copy c (the reported time), then, untimed for the benchmark
// but timed for bw_ratio, a plain SIMD read of copy c-1 with the same threads: the same bytes from
// DRAM under the same conditions (this machine is shared, so bandwidth measured once up front drifts).
// Neither finds its data in L3: the last 32 MiB read before a call always belong to another copy.
void BM_dense(benchmark::State& state, DType dt, Isa isa, Shape s, int64_t n, int threads) {
  if (!sq::isa_supported(isa)) {
    state.SkipWithError(("CPU lacks " + sq::isa_name(isa)).c_str());
    return;
  }
  WeightSet ws = make_weights(dt, s);
  std::vector<float> x(size_t(n) * size_t(s.cols)), y(size_t(n) * size_t(s.rows));
  for (size_t i = 0; i < x.size(); i++) x[i] = float(i % 17) * 0.125f - 1.0f;
  sq::ThreadPool pool(threads);
  const sq::ExecContext ctx{&pool, isa};
  const size_t nc = ws.copies.size();
  size_t c = 0;
  double t_kernel = 0, t_read = 0, cpu_kernel = 0, cpu_read = 0;
  float sink = 0;
  for (auto _ : state) {
    double c0 = process_cpu_seconds();
    auto t0 = std::chrono::steady_clock::now();
    sq::kernels::dense_matmul(dt, ws.copies[c].get(), s.rows, s.cols, x.data(), n, y.data(), ctx);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    const double tk = seconds_since(t0);
    state.SetIterationTime(tk);
    t_kernel += tk;
    double c1 = process_cpu_seconds();
    cpu_kernel += c1 - c0;
    t0 = std::chrono::steady_clock::now();
    sink += sq::parallel_read_sum(pool, reinterpret_cast<const float*>(ws.copies[(c + nc - 1) % nc].get()),
                                  ws.bytes / sizeof(float));
    t_read += seconds_since(t0);
    cpu_read += process_cpu_seconds() - c1;
    c = (c + 1) % nc;
  }
  benchmark::DoNotOptimize(sink);
  const double iters = double(state.iterations());
  const double gbps = iters * double(ws.bytes) / t_kernel / 1e9;
  state.SetBytesProcessed(int64_t(ws.bytes) * state.iterations());
  state.counters["GBps"] = gbps;
  state.counters["read_GBps"] = iters * double(ws.bytes) / t_read / 1e9;
  state.counters["bw_ratio"] = t_read / t_kernel;
  // The same from CPU time per thread: what the call would take on a machine nobody else uses (time
  // slices lost to other processes do not count). Only meaningful while the calls keep every thread
  // busy, as memory-bound ones do.
  state.counters["GBps_cpu"] = iters * double(ws.bytes) / (cpu_kernel / threads) / 1e9;
  state.counters["bw_ratio_cpu"] = cpu_read / cpu_kernel;
  if (g_bandwidth.count(threads)) state.counters["bw_ratio_start"] = gbps / g_bandwidth[threads];
  if (n > 1) state.counters["GFLOPs"] = iters * 2.0 * double(n) * double(s.rows) * double(s.cols) / t_kernel / 1e9;
}

void BM_bandwidth(benchmark::State& state, int threads) {
  sq::ThreadPool pool(threads);
  double gbs = 0;
  for (auto _ : state) gbs = sq::measure_read_bandwidth_gbs(pool, size_t(512) << 20, 3);
  state.counters["GBps"] = gbs;
}

const char* dt_name(DType dt) { return dt == DType::F32 ? "F32" : dt == DType::F16 ? "F16" : "BF16"; }

void register_all() {
  auto add = [](const char* kind, DType dt, Isa isa, Shape s, int64_t n, int threads) {
    std::string name = std::string(kind) + "/" + dt_name(dt) + "/" + sq::isa_name(isa) + "/" +
                       std::to_string(s.rows) + "x" + std::to_string(s.cols) + "/threads:" + std::to_string(threads);
    benchmark::RegisterBenchmark(name.c_str(), BM_dense, dt, isa, s, n, threads)
        ->Unit(benchmark::kMillisecond)
        ->UseManualTime();
  };
  for (int t : {1, 2}) benchmark::RegisterBenchmark(("bandwidth/threads:" + std::to_string(t)).c_str(),
                                                     BM_bandwidth, t)
                           ->Iterations(1)
                           ->Unit(benchmark::kMillisecond);
  const Isa fast[] = {Isa::kAvx2, Isa::kAvx512};
  for (Isa isa : fast) {
    if (!sq::isa_supported(isa)) continue;  // listed in the context line instead
    for (DType dt : {DType::F16, DType::BF16, DType::F32})
      for (const Shape& s : kShapes)
        for (int t : {1, 2}) add("matvec", dt, isa, s, 1, t);
    for (DType dt : {DType::F16, DType::BF16, DType::F32})
      for (const Shape& s : kShapes) add("matmul64", dt, isa, s, 64, 2);
  }
  // The plain C++ reference, for scale (one shape; n = 64 would take seconds per call).
  add("matvec", DType::F16, Isa::kScalar, kShapes[0], 1, 2);
  add("matvec", DType::F32, Isa::kScalar, kShapes[0], 1, 2);
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

}  // namespace

int main(int argc, char** argv) {
  size_t bw_bytes = size_t(1) << 30;
  std::vector<char*> args;
  for (int i = 0; i < argc; i++) {
    if (std::strncmp(argv[i], "--bw_gib=", 9) == 0)
      bw_bytes = size_t(std::atof(argv[i] + 9) * double(size_t(1) << 30));
    else
      args.push_back(argv[i]);
  }
  int ac = int(args.size());
  benchmark::Initialize(&ac, args.data());
  std::string isas = "scalar";
  for (Isa i : {Isa::kAvx2, Isa::kAvx512})
    if (sq::isa_supported(i)) isas += " " + sq::isa_name(i);
  benchmark::AddCustomContext("cpu", cpu_model());
  benchmark::AddCustomContext("isas", isas + " (best: " + sq::isa_name(sq::best_isa()) + ")");
  for (int t : {1, 2}) {
    sq::ThreadPool pool(t);
    g_bandwidth[t] = sq::measure_read_bandwidth_gbs(pool, bw_bytes, 5);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f GB/s", g_bandwidth[t]);
    benchmark::AddCustomContext("read_bandwidth_threads_" + std::to_string(t), buf);
  }
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
