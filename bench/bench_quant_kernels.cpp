// Quantized kernel throughput beside F16 (kernels/lut.h, kernels/int4.h, kernels/dense.h).
//
//   bench_quant_kernels [google benchmark flags, e.g. --benchmark_filter=matvec/lut3
//                        --benchmark_repetitions=3 --benchmark_report_aggregates_only=true]
//
//   matvec/<fmt>/<isa>/<rows>x<cols>/threads:<t>    Y[1, rows] = x · Wᵀ (decode)
//   matmul64/<fmt>/<isa>/<rows>x<cols>/threads:<t>  Y[64, rows] = X[64, cols] · Wᵀ (prompt)
//   batch<n>/<fmt>/<isa>/<rows>x<cols>/threads:<t>  Y[n, rows], n = 2, 4, 8 (batched decode)
// fmt: lut3, lut4 (SqueezeLLM, one table per row), lut3s (lut3 + 0.45% sparse), int4g128 (GPTQ),
// f16 (dense kernels) for the LLaMA-7B shapes.
// Counters: GBps = weight bytes (LinearWeight::weight_bytes) per second / 1e9; Gw_per_s = weights per
// second / 1e9; vs_f16 = time of the F16 kernel on the same shape / time of this one, both timed in
// the same iterations (interleaved call by call, so both see the same machine load).
// With threads:1, cpu_ns_per_kw = calling-thread CPU ns per 1000 weights and vs_f16_cpu the same ratio
// in CPU time: figures that survive a heavily shared machine.
// Weights are cycled over copies (>= 3, >= 96 MiB: 3× the 32 MiB L3) so each call reads from DRAM.
#include <benchmark/benchmark.h>

#include <chrono>
#include <ctime>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/dtype.h"
#include "formats/int4_group.h"
#include "formats/lut.h"
#include "kernels/dense.h"

namespace {

using sq::Isa;

struct Shape {
  int64_t rows, cols;
};
constexpr Shape kShapes[] = {{4096, 4096}, {11008, 4096}, {4096, 11008}, {32000, 4096}};
constexpr size_t kMinSetBytes = size_t(96) << 20;

size_t n_copies(size_t bytes) { return std::max<size_t>(3, (kMinSetBytes + bytes - 1) / bytes); }

// F16 weights of one shape, copies for cycling (kept for the whole run, built on first use).
struct F16Set {
  std::vector<std::vector<uint16_t>> copies;
};
std::map<std::pair<int64_t, int64_t>, std::unique_ptr<F16Set>> g_f16;

const F16Set& f16_set(const Shape& s) {
  auto& slot = g_f16[{s.rows, s.cols}];
  if (!slot) {
    slot = std::make_unique<F16Set>();
    std::vector<uint16_t> w(size_t(s.rows * s.cols));
    uint32_t st = 1;
    for (auto& h : w) {
      st = st * 1664525u + 1013904223u;
      h = sq::f32_to_f16(float(int32_t(st >> 8) - (1 << 23)) / float(1 << 26));
    }
    const size_t nc = n_copies(w.size() * 2);
    for (size_t c = 0; c < nc; c++) slot->copies.push_back(w);
  }
  return *slot;
}

// Quantized copies of a random matrix in format `fmt`.
std::vector<std::unique_ptr<sq::LinearWeight>> make_quant(const std::string& fmt, const Shape& s) {
  std::mt19937 rng(42);
  std::unique_ptr<sq::LinearWeight> one;
  const size_t numel = size_t(s.rows * s.cols);
  if (fmt == "int4g128") {
    sq::Int4Matrix m;
    m.rows = s.rows;
    m.cols = s.cols;
    m.group_size = 128;
    m.q.resize(numel);
    for (auto& q : m.q) q = uint8_t(rng() & 15);
    m.zeros.assign(size_t(m.n_groups() * s.rows), 8);
    m.scales.assign(size_t(m.n_groups() * s.rows), sq::f32_to_f16(0.01f));
    one = sq::make_int4_linear(m);
  } else {
    sq::LutMatrix m;
    m.rows = s.rows;
    m.cols = s.cols;
    m.group_size = s.cols;
    m.bits = fmt == "lut4" ? 4 : 3;
    m.codes.resize(numel);
    for (auto& c : m.codes) c = uint8_t(rng() & uint32_t(m.levels() - 1));
    m.lut.resize(size_t(s.rows) << m.bits);
    for (size_t i = 0; i < m.lut.size(); i++) m.lut[i] = sq::f32_to_f16(float(int(i % 16) - 8) * 0.01f);
    if (fmt == "lut3s") {  // 0.45% of positions, uniformly spread
      std::bernoulli_distribution pick(0.0045);
      m.indptr.push_back(0);
      for (int64_t r = 0; r < s.rows; r++) {
        for (int64_t c = 0; c < s.cols; c++)
          if (pick(rng)) {
            m.indices.push_back(int32_t(c));
            m.values.push_back(0.5f);
          }
        m.indptr.push_back(int32_t(m.indices.size()));
      }
      m.values_dtype = sq::DType::F16;
    }
    one = sq::make_lut_linear(std::move(m));
  }
  std::vector<std::unique_ptr<sq::LinearWeight>> out;
  const size_t nc = n_copies(one->weight_bytes());
  for (size_t c = 1; c < nc; c++) {
    if (auto* l = dynamic_cast<sq::LutLinear*>(one.get()))
      out.push_back(std::make_unique<sq::LutLinear>(*l));
    else
      out.push_back(std::make_unique<sq::Int4Linear>(*dynamic_cast<sq::Int4Linear*>(one.get())));
  }
  out.push_back(std::move(one));
  return out;
}

// CPU time of the calling thread: with one thread, the kernel's own cost, free of the time slices the
// shared machine takes away (wall time is dominated by them under high load).
double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void BM_quant(benchmark::State& state, std::string fmt, Isa isa, Shape s, int64_t n, int threads) {
  if (!sq::isa_supported(isa)) {
    state.SkipWithError(("CPU lacks " + sq::isa_name(isa)).c_str());
    return;
  }
  const F16Set& f16 = f16_set(s);
  std::vector<std::unique_ptr<sq::LinearWeight>> q;
  if (fmt != "f16") q = make_quant(fmt, s);
  std::vector<float> x(size_t(n * s.cols)), y(size_t(n * s.rows));
  for (size_t i = 0; i < x.size(); i++) x[i] = float(i % 17) * 0.125f - 1.0f;
  sq::ThreadPool pool(threads);
  const sq::ExecContext ctx{&pool, isa};
  size_t cq = 0, cf = 0;
  double t_q = 0, t_f = 0, c_q = 0, c_f = 0;
  for (auto _ : state) {
    double c0 = thread_cpu_seconds();
    auto t0 = std::chrono::steady_clock::now();
    if (q.empty())
      sq::kernels::dense_matmul(sq::DType::F16, f16.copies[cf].data(), s.rows, s.cols, x.data(), n, y.data(), ctx);
    else
      q[cq]->matmul(x.data(), n, y.data(), ctx);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    const double tq = seconds_since(t0);
    c_q += thread_cpu_seconds() - c0;
    state.SetIterationTime(tq);
    t_q += tq;
    if (!q.empty()) {  // the F16 kernel on the same shape, same iteration
      c0 = thread_cpu_seconds();
      t0 = std::chrono::steady_clock::now();
      sq::kernels::dense_matmul(sq::DType::F16, f16.copies[cf].data(), s.rows, s.cols, x.data(), n, y.data(), ctx);
      benchmark::ClobberMemory();
      t_f += seconds_since(t0);
      c_f += thread_cpu_seconds() - c0;
      cq = (cq + 1) % q.size();
    }
    cf = (cf + 1) % f16.copies.size();
  }
  const double iters = double(state.iterations());
  const size_t bytes = q.empty() ? size_t(s.rows * s.cols) * 2 : q[0]->weight_bytes();
  state.counters["GBps"] = iters * double(bytes) / t_q / 1e9;
  state.counters["Gw_per_s"] = iters * double(s.rows * s.cols) / t_q / 1e9;
  state.counters["bits_per_w"] = 8.0 * double(bytes) / double(s.rows * s.cols);
  if (!q.empty()) state.counters["vs_f16"] = t_f / t_q;
  if (threads == 1) {  // the calling thread did all the work: CPU-time figures
    state.counters["cpu_ns_per_kw"] = 1e12 * c_q / (iters * double(s.rows * s.cols));
    if (!q.empty()) state.counters["vs_f16_cpu"] = c_f / c_q;
  }
  if (n > 1) state.counters["GFLOPs"] = iters * 2.0 * double(n * s.rows * s.cols) / t_q / 1e9;
}

void register_all() {
  auto add = [](const char* kind, const std::string& fmt, Isa isa, Shape s, int64_t n, int threads) {
    std::string name = std::string(kind) + "/" + fmt + "/" + sq::isa_name(isa) + "/" + std::to_string(s.rows) + "x" +
                       std::to_string(s.cols) + "/threads:" + std::to_string(threads);
    benchmark::RegisterBenchmark(name.c_str(), BM_quant, fmt, isa, s, n, threads)
        ->Unit(benchmark::kMillisecond)
        ->UseManualTime();
  };
  const Isa isa = sq::best_isa();
  const char* fmts[] = {"f16", "lut3", "lut4", "lut3s", "int4g128"};
  for (const Shape& s : kShapes)
    for (const char* f : fmts) add("matvec", f, isa, s, 1, 2);
  for (const Shape& s : kShapes)
    for (const char* f : fmts) add("matmul64", f, isa, s, 64, 2);
  // One thread, and the scalar reference, for scale (one shape).
  for (const char* f : fmts) add("matvec", f, isa, kShapes[0], 1, 1);
  for (const char* f : fmts) add("matmul64", f, isa, kShapes[0], 64, 1);
  for (const char* f : {"lut3", "int4g128"}) add("matvec", f, Isa::kScalar, kShapes[0], 1, 2);
  // With int8-activation decode (avx512vnni), the f32-activation kernels of avx512 beside it.
  if (isa == Isa::kAvx512Vnni)
    for (const char* f : fmts) add("matvec", f, Isa::kAvx512, kShapes[0], 1, 1);
  // Batched decode (the engine's step over 2 .. 8 sequences), at the best ISA and at AVX2.
  static const std::string kBatchNames[] = {"batch2", "batch4", "batch8"};
  for (Isa bi : {isa, Isa::kAvx2}) {
    if (bi == Isa::kAvx2 && isa == Isa::kAvx2) break;
    for (int i = 0; i < 3; i++)
      for (const char* f : fmts) add(kBatchNames[i].c_str(), f, bi, kShapes[1], int64_t(2) << i, 2);
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::AddCustomContext("isa", sq::isa_name(sq::best_isa()));
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
