// The batched engine (src/engine/engine.h): sequences decoded together in one step per token give the
// logits and greedy text each gives decoded alone; the paged KV cache holds memory for the positions in
// use; bad batches and an exhausted pool are clear errors; a decode step allocates nothing.
// Models: a small synthetic LLaMA (F16, widths that are multiples of 128) as stored, quantized in memory
// with SqueezeLLM 3-bit + 0.45% sparse, and with RTN int4 g128 (the GPTQ format).
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>

#include "core/context.h"
#include "core/error.h"
#include "engine/engine.h"
#include "model/sampler.h"
#include "model/synth.h"
#include "quant/pipeline.h"
#include "test_util.h"

// Counts heap allocations while g_count_allocs is set (every thread). new and delete are malloc and free
// here, so GCC's new/free pairing warning does not apply.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace {
std::atomic<bool> g_count_allocs{false};
std::atomic<long> g_allocs{0};
}  // namespace
void* operator new(size_t n) {
  if (g_count_allocs.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void* operator new(size_t n, std::align_val_t a) {
  if (g_count_allocs.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
  const size_t al = size_t(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { std::free(p); }

namespace sq {
namespace {

// One synthetic model, and the formats to run it in.
struct Fixture {
  sqtest::TempDir dir;
  std::unique_ptr<Model> model;
  OwnedContext ctx = make_context(2);
  Fixture() {
    SynthOptions o;
    o.like = "llama-7b";
    o.layers = 2;
    o.hidden = 256;
    o.intermediate = 512;
    o.heads = 4;
    o.vocab = 300;
    o.progress = false;
    write_synthetic_model(o, dir.path, ctx.ctx);
    model = Model::load(dir.path);
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

enum class Format { kF16, kLut3Sparse, kInt4G128 };
const char* format_name(Format f) {
  return f == Format::kF16 ? "F16" : f == Format::kLut3Sparse ? "SqueezeLLM 3-bit + 0.45% sparse" : "int4 g128";
}

// Installs the format's weights for the lifetime of the object.
struct Formatted {
  Model& m;
  std::unique_ptr<ModelPatch> patch;
  Formatted(Format f, const ExecContext& ctx) : m(*fixture().model) {
    if (f == Format::kF16) return;
    QuantizeOptions o;
    o.progress = false;
    if (f == Format::kLut3Sparse) {
      o.method = "squeezellm";
      o.bits = 3;
      o.sparsity = 0.45;
    } else {
      o.method = "rtn";
      o.bits = 4;
      o.group_size = 128;
    }
    static std::map<Format, QuantizedModel> cache;
    if (!cache.count(f)) cache.emplace(f, quantize_model(m, o, nullptr, {}, ctx));
    patch = std::make_unique<ModelPatch>(m, cache.at(f));
  }
};

double rel_err(const float* a, const float* b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; i++) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

// A sequence of the test: a prompt, how many tokens it generates, and the step at which it joins.
struct Plan {
  std::vector<int32_t> prompt;
  int64_t gen = 0, join = 0;
};

std::vector<Plan> plans(int64_t vocab) {
  std::vector<Plan> p;
  for (int i = 0; i < 8; i++) {
    Plan s;
    for (int t = 0; t < 1 + (i * 5) % 13; t++) s.prompt.push_back(int32_t(3 + (i * 131 + t * 17) % (vocab - 3)));
    s.gen = 4 + (i * 7) % 11;  // 4 .. 14: some finish early
    s.join = (i * 3) % 7;      // 0 .. 6: some join mid-way
    p.push_back(s);
  }
  return p;
}

struct Trace {
  std::vector<int32_t> tokens;
  std::vector<std::vector<float>> logits;  // the logits each generated token was chosen from
};

Trace alone(Engine& e, const Plan& p) {
  const int64_t V = e.model().cfg.vocab_size;
  Trace t;
  const int32_t s = e.add_sequence();
  e.feed(s, p.prompt.data(), int64_t(p.prompt.size()), false);
  for (int64_t g = 0; g < p.gen; g++) {
    t.logits.emplace_back(e.logits(0), e.logits(0) + V);
    t.tokens.push_back(argmax(e.logits(0), V));
    if (g + 1 < p.gen) e.feed(s, &t.tokens.back(), 1, false);
  }
  e.free_sequence(s);
  return t;
}

std::vector<Trace> together(Engine& e, const std::vector<Plan>& ps) {
  const int64_t V = e.model().cfg.vocab_size;
  std::vector<Trace> tr(ps.size());
  std::vector<int32_t> seq(ps.size(), -1);
  for (int64_t step = 0;; step++) {
    std::vector<BatchRow> rows;
    std::vector<size_t> owner;  // the plan of each row that asks for logits
    for (size_t i = 0; i < ps.size(); i++) {
      const Plan& p = ps[i];
      if (seq[i] == -1 && step >= p.join) {  // joins with its whole prompt
        seq[i] = e.add_sequence();
        for (size_t t = 0; t < p.prompt.size(); t++)
          rows.push_back({p.prompt[t], int64_t(t), seq[i], t + 1 == p.prompt.size()});
        owner.push_back(i);
      } else if (seq[i] >= 0 && int64_t(tr[i].tokens.size()) < p.gen) {
        rows.push_back({tr[i].tokens.back(), e.length(seq[i]), seq[i], true});
        owner.push_back(i);
      }
    }
    if (rows.empty()) break;
    e.step(rows);
    for (size_t k = 0; k < owner.size(); k++) {
      const size_t i = owner[k];
      tr[i].logits.emplace_back(e.logits(int64_t(k)), e.logits(int64_t(k)) + V);
      tr[i].tokens.push_back(argmax(e.logits(int64_t(k)), V));
      if (int64_t(tr[i].tokens.size()) == ps[i].gen) {
        e.free_sequence(seq[i]);  // finished: its blocks go back while the others run on
        seq[i] = -2;
      }
    }
  }
  return tr;
}

class BatchFormats : public ::testing::TestWithParam<Format> {};

TEST_P(BatchFormats, BatchedEqualsAlone) {
  Fixture& f = fixture();
  Formatted fm(GetParam(), f.ctx.ctx);
  const auto ps = plans(f.model->cfg.vocab_size);
  EngineOptions eo;
  eo.kv_tokens = 8 * 32;
  Engine e(*f.model, f.ctx.ctx, eo);
  const auto batched = together(e, ps);
  double worst = 0;
  for (size_t i = 0; i < ps.size(); i++) {
    Engine solo(*f.model, f.ctx.ctx, eo);
    const Trace a = alone(solo, ps[i]);
    ASSERT_EQ(batched[i].tokens, a.tokens) << format_name(GetParam()) << ": greedy text of sequence " << i;
    for (size_t g = 0; g < a.logits.size(); g++) {
      const double err = rel_err(batched[i].logits[g].data(), a.logits[g].data(), int64_t(a.logits[g].size()));
      worst = std::max(worst, err);
      EXPECT_LE(err, 1e-5) << format_name(GetParam()) << ": sequence " << i << ", token " << g;
    }
  }
  std::printf("%s (isa %s): batched vs alone, worst relative logit difference %.2e\n", format_name(GetParam()),
              isa_name(resolve_isa(f.ctx.ctx.isa)).c_str(), worst);
  EXPECT_EQ(e.kv_usage().blocks_used, 0);  // every sequence freed
}

TEST_P(BatchFormats, DecodeStepsAllocateNothing) {
  Fixture& f = fixture();
  Formatted fm(GetParam(), f.ctx.ctx);
  const int64_t V = f.model->cfg.vocab_size;
  Engine e(*f.model, f.ctx.ctx);
  std::vector<BatchRow> rows;
  for (int i = 0; i < 4; i++) {
    const int32_t s = e.add_sequence();
    const int32_t prompt[3] = {5, int32_t(10 + i), 20};
    e.feed(s, prompt, 3, false);
    rows.push_back({7, 3, s, true});
  }
  auto decode = [&](int steps, size_t batch) {
    for (int k = 0; k < steps; k++) {
      e.step(std::span<const BatchRow>(rows.data(), batch));
      for (size_t i = 0; i < batch; i++) {
        rows[i].token = argmax(e.logits(int64_t(i)), V);
        rows[i].pos++;
      }
    }
  };
  decode(3, 4);  // warm-up: per-thread buffers grow to this batch's size
  decode(2, 1);
  // A KV block's memory is allocated the first time the block is used, once in the engine's life:
  // give the pool used blocks to hand out again, as a running server has.
  {
    const int32_t s = e.add_sequence();
    std::vector<int32_t> fill(160, 5);
    e.feed(s, fill.data(), 160, false);
    e.free_sequence(s);
  }
  g_allocs = 0;
  g_count_allocs = true;
  decode(20, 4);  // 20 steps: every sequence crosses a 16-position block boundary
  decode(5, 1);
  g_count_allocs = false;
  EXPECT_EQ(g_allocs.load(), 0) << format_name(GetParam()) << ": heap allocations during decode";
}

INSTANTIATE_TEST_SUITE_P(Formats, BatchFormats, ::testing::Values(Format::kF16, Format::kLut3Sparse, Format::kInt4G128),
                         [](const auto& info) {
                           return std::string(info.param == Format::kF16 ? "F16"
                                              : info.param == Format::kLut3Sparse ? "Lut3Sparse"
                                                                                  : "Int4G128");
                         });

// 16 sequences of 100 tokens on a 4096-context model hold at most 1.25x the bytes of 1,600 positions.
TEST(PagedKv, MemoryFollowsThePositionsInUse) {
  Fixture& f = fixture();
  ASSERT_EQ(f.model->cfg.max_pos, 4096);
  EngineOptions eo;
  eo.kv_tokens = 16 * 4096;  // room for 16 full contexts; only what is used may be allocated
  Engine e(*f.model, f.ctx.ctx, eo);
  std::vector<int32_t> ids(100);
  for (size_t i = 0; i < ids.size(); i++) ids[i] = int32_t(3 + i % 200);
  for (int s = 0; s < 16; s++) e.feed(e.add_sequence(), ids.data(), 100, false);
  const KvUsage u = e.kv_usage();
  const double positions_bytes = 1600.0 * double(u.bytes_per_position);
  std::printf("KV: %zu bytes held for 1600 positions (%.3fx), pool of %lld positions\n", u.bytes_allocated,
              double(u.bytes_allocated) / positions_bytes, (long long)(u.blocks_total * u.block_tokens));
  EXPECT_LE(double(u.bytes_allocated), 1.25 * positions_bytes);
  EXPECT_EQ(u.bytes_per_position, size_t(2 * 2 * 256 * 4));  // 2 layers x K,V x kv_dim 256 x f32
  // Freed sequences' blocks are reused, not allocated again.
  e.free_sequence(0);
  e.free_sequence(1);
  const int32_t s = e.add_sequence();
  std::vector<int32_t> more(150, 9);
  e.feed(s, more.data(), 150, false);
  EXPECT_EQ(e.kv_usage().bytes_allocated, u.bytes_allocated);
}

TEST(PagedKv, ExhaustedPoolAndBadRowsAreClearErrors) {
  Fixture& f = fixture();
  EngineOptions eo;
  eo.kv_tokens = 64;  // 4 blocks
  Engine e(*f.model, f.ctx.ctx, eo);
  EXPECT_EQ(e.max_length(), 64);
  const int32_t a = e.add_sequence(), b = e.add_sequence();
  std::vector<int32_t> ids(40, 5);
  e.feed(a, ids.data(), 40, false);  // 3 blocks
  auto error_of = [](auto&& fn) {
    try {
      fn();
    } catch (const Error& err) {
      return std::string(err.what());
    }
    return std::string("no error");
  };
  std::string msg = error_of([&] { e.feed(b, ids.data(), 20, false); });  // 2 more blocks, 1 free
  EXPECT_NE(msg.find("KV cache full"), std::string::npos) << msg;
  EXPECT_EQ(e.length(b), 0);  // nothing changed
  EXPECT_EQ(e.kv_usage().blocks_used, 3);
  e.feed(b, ids.data(), 16, false);  // exactly the last block
  BatchRow bad_pos[] = {{5, 7, a, true}};
  msg = error_of([&] { e.step(bad_pos); });
  EXPECT_NE(msg.find("expected 40"), std::string::npos) << msg;
  BatchRow bad_tok[] = {{99999, 40, a, true}};
  msg = error_of([&] { e.step(bad_tok); });
  EXPECT_NE(msg.find("outside the vocabulary"), std::string::npos) << msg;
  BatchRow bad_seq[] = {{5, 0, 42, true}};
  msg = error_of([&] { e.step(bad_seq); });
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
  std::vector<int32_t> long_ids(70, 5);
  const int32_t c = [&] {
    e.free_sequence(a);
    e.free_sequence(b);
    return e.add_sequence();
  }();
  msg = error_of([&] { e.feed(c, long_ids.data(), 70, false); });
  EXPECT_NE(msg.find("context overflow"), std::string::npos) << msg;
  eo.kv_bytes = 100;
  msg = error_of([&] { Engine tiny(*f.model, f.ctx.ctx, eo); });
  EXPECT_NE(msg.find("less than one KV block"), std::string::npos) << msg;
}

}  // namespace
}  // namespace sq
