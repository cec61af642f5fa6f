// Calibration throughput and memory, measured on demand (not a correctness test; skipped unless
// SQUEEZE_CALIB_BENCH=1). Run each case in its own process so peak RSS is that case's:
//   SQUEEZE_CALIB_BENCH=1 ./test_calib_bench --gtest_filter=CalibBench.Stories260K
//   SQUEEZE_CALIB_BENCH=1 ./test_calib_bench --gtest_filter=CalibBench.Llama7BShape
// The second writes (once, as `squeeze synth --like llama-7b --layers 2`) a LLaMA-7B-shaped checkpoint
// with synthetic F16 weights and 2 layers (hidden 4096, intermediate 11008, 32 heads, vocab 32000;
// 1.3 GB) to $SQUEEZE_CALIB_BENCH_DIR
// (default /tmp/squeeze-calib-7b2). Reports tokens/s of forward+backward, the ratio of one
// calibration step to one forward, and peak RSS.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <fstream>

#include "calib/calibrate.h"
#include "core/dtype.h"
#include "io/safetensors.h"
#include "model/names.h"
#include "model/synth.h"
#include "model/tokenizer.h"
#include "test_util.h"

namespace {

bool enabled() {
  const char* e = std::getenv("SQUEEZE_CALIB_BENCH");
  return e && std::string(e) == "1";
}

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// CPU seconds of the whole process: on a shared machine wall time measures the neighbours too.
double cpu_s() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

struct Timing {
  double fwd_s, step_s;          // wall per sequence
  double fwd_cpu, step_cpu;      // CPU seconds per sequence (all threads)
};

// Median-free but warm: one untimed step first (page faults of the mapped weights, allocations).
Timing time_model(sq::CalibModel<float>& m, const std::vector<std::vector<int32_t>>& wins, std::vector<float*> fisher) {
  sq::GradSinks<float> sinks;
  size_t i = 0;
  for (const auto& li : m.linears()) sinks.fisher[li.prefix] = fisher[i++];
  m.forward_backward(wins[0], sinks);
  const double n = double(wins.size());
  double t0 = now_s(), c0 = cpu_s();
  for (const auto& w : wins) m.forward(w);
  double t1 = now_s(), c1 = cpu_s();
  for (const auto& w : wins) m.forward_backward(w, sinks);
  double t2 = now_s(), c2 = cpu_s();
  return {(t1 - t0) / n, (t2 - t1) / n, (c1 - c0) / n, (c2 - c1) / n};
}

// Wall figures, then CPU-time figures: "tok/s at 1 core" = L / CPU seconds, what the threads would
// give with the cores to themselves (times the thread count, at best).
void report(const char* what, int64_t L, const Timing& t, int threads) {
  std::printf("%s L=%lld threads=%d\n  wall: forward %.3f s (%.1f tok/s), fwd+bwd %.3f s (%.1f tok/s), "
              "step/forward %.2f\n  cpu:  forward %.3f s (%.1f tok/s at 1 core), fwd+bwd %.3f s (%.1f tok/s at 1 core), "
              "step/forward %.2f\n  peak RSS %.0f MiB\n",
              what, (long long)L, threads, t.fwd_s, double(L) / t.fwd_s, t.step_s, double(L) / t.step_s,
              t.step_s / t.fwd_s, t.fwd_cpu, double(L) / t.fwd_cpu, t.step_cpu, double(L) / t.step_cpu,
              t.step_cpu / t.fwd_cpu, peak_rss_mb());
}

TEST(CalibBench, Stories260K) {
  if (!enabled()) GTEST_SKIP() << "set SQUEEZE_CALIB_BENCH=1 to run";
  const auto dir = sqtest::bundled_model();
  const auto cfg = sq::ModelConfig::load(dir);
  sq::Checkpoint ckpt(dir);
  auto tok = sq::Tokenizer::load(dir, cfg.bos_id, cfg.eos_id);
  std::vector<int32_t> toks = {int32_t(cfg.bos_id)};
  std::ifstream in(dir / "calib.txt");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (int32_t t : tok->encode(text)) toks.push_back(t);
  sq::CalibOptions o;
  o.samples = 32;
  o.seqlen = 128;
  o.progress = false;
  const auto wins = sq::calibration_windows(toks, o, "calib.txt", cfg.max_pos);
  sq::ThreadPool pool(0);
  sq::ExecContext ctx{&pool, sq::Isa::kBest};
  const auto r = sq::calibrate(cfg, ckpt, wins, ctx, o);
  std::printf("stories260K calibrate 32 x 128: %.3f s, %.0f tok/s (fwd+bwd), mean loss %.4f, peak RSS %.0f MiB\n",
              r.seconds, double(r.tokens) / r.seconds, r.mean_loss, peak_rss_mb());
  sq::CheckpointWeights src(ckpt);
  sq::CalibModel<float> m(cfg, sq::tensor_names(cfg, ckpt), src, ctx);
  std::vector<std::vector<float>> acc;
  std::vector<float*> ptrs;
  for (const auto& li : m.linears()) acc.emplace_back(size_t(li.rows * li.cols));
  for (auto& a : acc) ptrs.push_back(a.data());
  report("stories260K", 128, time_model(m, wins, ptrs), pool.size());
}

// Streams a safetensors file of F16 tensors with pseudo-random values (uniform ±scale) without
// holding it in memory.
TEST(CalibBench, Llama7BShape) {
  if (!enabled()) GTEST_SKIP() << "set SQUEEZE_CALIB_BENCH=1 to run";
  const char* d = std::getenv("SQUEEZE_CALIB_BENCH_DIR");
  const std::filesystem::path dir = d ? d : "/tmp/squeeze-calib-7b2";
  const int64_t H = 4096, I = 11008, V = 32000, NL = 2;
  if (!std::filesystem::exists(dir / "model.safetensors")) {  // squeeze synth --like llama-7b --layers 2
    sq::SynthOptions so;
    so.like = "llama-7b";
    so.layers = NL;
    so.progress = false;
    sq::ThreadPool wpool(0);
    sq::write_synthetic_model(so, dir, sq::ExecContext{&wpool, sq::Isa::kBest});
    std::printf("wrote %s\n", dir.c_str());
  }
  const auto cfg = sq::ModelConfig::load(dir);
  sq::Checkpoint ckpt(dir);
  sq::CheckpointWeights src(ckpt);
  sq::ThreadPool pool(0);
  sq::ExecContext ctx{&pool, sq::Isa::kBest};
  std::printf("checkpoint %.0f MiB on disk; Fisher accumulators %.0f MiB; peak RSS before: %.0f MiB\n",
              double(ckpt.bytes_on_disk()) / (1 << 20), double(NL * (4 * H * H + 3 * H * I)) * 4 / (1 << 20),
              peak_rss_mb());
  sq::CalibModel<float> m(cfg, sq::tensor_names(cfg, ckpt), src, ctx);
  std::vector<std::vector<float>> acc;
  std::vector<float*> ptrs;
  for (const auto& li : m.linears()) acc.emplace_back(size_t(li.rows * li.cols));
  for (auto& a : acc) ptrs.push_back(a.data());
  const char* lens = std::getenv("SQUEEZE_CALIB_BENCH_LENS");
  std::vector<int64_t> Ls = {128, 512};
  if (lens) Ls = {std::atoll(lens)};
  for (int64_t L : Ls) {
    std::vector<std::vector<int32_t>> wins(2, std::vector<int32_t>(static_cast<size_t>(L)));
    for (size_t s = 0; s < wins.size(); s++)
      for (int64_t t = 0; t < L; t++) wins[s][size_t(t)] = int32_t((t * 7919 + int64_t(s) * 104729) % V);
    report("llama-7B shape, 2 layers", L, time_model(m, wins, ptrs), pool.size());
  }
}

}  // namespace
