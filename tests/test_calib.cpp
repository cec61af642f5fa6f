// Calibration: the GEMM against a naive product, half-precision conversion, gradients of every linear
// kind and of an untied head against central finite differences (llama with GQA, mistral with a
// sliding window shorter than the sequence, opt with biases), the Fisher accumulation (head included), window cutting, the sensitivity file
// round trip and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <random>
#include <set>

#include "calib/calibrate.h"
#include "calib/gemm.h"
#include "calib/model.h"
#include "core/error.h"
#include "formats/linear.h"
#include "io/safetensors.h"
#include "model/names.h"
#include "test_calib_util.h"
#include "test_util.h"

namespace {

using calibtest::TinySpec;

// ---- GEMM ----------------------------------------------------------------------------------------

template <typename T>
void check_gemm(sq::Isa isa, sq::ThreadPool* pool, double tol, bool tall = false) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(-1, 1);
  // Covers: edge tiles, K over one block (256), several row blocks in one task (M > 192), rows split
  // into groups (few column tiles), products big enough (>= 2M multiply-adds) to be spread over the
  // pool; `tall` adds the tall-A order (one thread: a single row group of 1030 > 1024 rows, K over
  // two blocks).
  std::vector<std::array<int64_t, 3>> shapes = {{1, 1, 1},    {5, 7, 3},     {13, 37, 300}, {100, 70, 260},
                                                {7, 400, 33}, {97, 385, 5},  {300, 50, 20}, {1100, 20, 9},
                                                {200, 700, 40}, {1500, 30, 50}};
  if (tall) shapes = {{1030, 390, 257}};
  for (auto& s : shapes) {
    const int64_t M = s[0], N = s[1], K = s[2];
    for (int layout = 0; layout < 4; layout += tall ? 3 : 1) {  // tall: A row-major and dYᵀ-like A
      const bool at = layout & 1, bt = layout & 2;
      std::vector<T> A(size_t(M * K)), B(size_t(K * N));
      for (auto& x : A) x = T(u(rng));
      for (auto& x : B) x = T(u(rng));
      // A stored [M, K] or transposed [K, M]; B [K, N] or [N, K].
      auto a = [&](int64_t i, int64_t k) { return at ? A[size_t(k * M + i)] : A[size_t(i * K + k)]; };
      auto b = [&](int64_t k, int64_t j) { return bt ? B[size_t(j * K + k)] : B[size_t(k * N + j)]; };
      sq::calib::MatRef<T> ra = at ? sq::calib::transposed(A.data(), M) : sq::calib::row_major(A.data(), K);
      sq::calib::MatRef<T> rb = bt ? sq::calib::transposed(B.data(), K) : sq::calib::row_major(B.data(), N);
      const int64_t ldc = N + 3;
      std::vector<T> C(size_t(M * ldc), T(0.5));
      std::vector<float> F(size_t(M * ldc), 0.25f);
      sq::calib::gemm<T>(M, N, K, ra, rb, C.data(), ldc, /*accumulate=*/layout == 3, isa, pool);
      sq::calib::gemm_square_add<T>(M, N, K, ra, rb, F.data(), ldc, isa, pool);
      // Every element of small products; for big ones a random sample plus the last row and column
      // (the edge tiles), which keeps the naive reference cheap under sanitizers.
      std::vector<std::pair<int64_t, int64_t>> at_ij;
      if (M * N <= 40000) {
        for (int64_t i = 0; i < M; i++)
          for (int64_t j = 0; j < N; j++) at_ij.push_back({i, j});
      } else {
        for (int n = 0; n < 3000; n++) at_ij.push_back({int64_t(rng() % M), int64_t(rng() % N)});
        for (int64_t i = 0; i < M; i++) at_ij.push_back({i, N - 1});
        for (int64_t j = 0; j < N; j++) at_ij.push_back({M - 1, j});
      }
      for (auto [i, j] : at_ij) {
        double ref = 0;
        for (int64_t k = 0; k < K; k++) ref += double(a(i, k)) * double(b(k, j));
        const double c0 = layout == 3 ? 0.5 : 0.0;
        ASSERT_NEAR(double(C[size_t(i * ldc + j)]), c0 + ref, tol * (1 + std::sqrt(double(K))))
            << M << "x" << N << "x" << K << " layout " << layout << " at " << i << "," << j;
        // F is an f32 accumulator: f32 rounding on top of the product's own error.
        ASSERT_NEAR(double(F[size_t(i * ldc + j)]), 0.25 + ref * ref,
                    1e-7 * (0.25 + ref * ref) + tol * (1 + double(K)) * (1 + std::fabs(ref)));
      }
      for (int64_t i = 0; i < M; i++)  // padding columns untouched
        for (int64_t j = N; j < ldc; j++) ASSERT_EQ(C[size_t(i * ldc + j)], T(0.5));
    }
  }
}

TEST(CalibGemm, FloatBestIsaMatchesNaive) {
  sq::ThreadPool pool(2);
  check_gemm<float>(sq::Isa::kBest, &pool, 2e-6);
}
TEST(CalibGemm, FloatTallOrderMatchesNaive) { check_gemm<float>(sq::Isa::kBest, nullptr, 2e-6, true); }
TEST(CalibGemm, FloatScalarMatchesNaive) { check_gemm<float>(sq::Isa::kScalar, nullptr, 2e-6); }
TEST(CalibGemm, DoubleMatchesNaive) {
  sq::ThreadPool pool(2);
  check_gemm<double>(sq::Isa::kBest, &pool, 1e-13);
}

TEST(CalibConvert, HalfToFloatMatchesScalarReference) {
  std::vector<uint16_t> all(65536);
  for (size_t i = 0; i < all.size(); i++) all[i] = uint16_t(i);
  std::vector<float> f16(all.size()), bf16(all.size());
  // Offset by one element: mapped tensors are only 2-byte aligned.
  sq::calib::f16_to_f32_bulk(all.data() + 1, f16.data(), all.size() - 1);
  sq::calib::bf16_to_f32_bulk(all.data() + 1, bf16.data(), all.size() - 1);
  for (size_t i = 1; i < all.size(); i++) {
    const float a = sq::f16_to_f32(uint16_t(i)), b = sq::bf16_to_f32(uint16_t(i));
    if (!std::isnan(a)) {
      ASSERT_EQ(f16[i - 1], a) << i;
    }
    if (!std::isnan(b)) {
      ASSERT_EQ(bf16[i - 1], b) << i;
    }
  }
}

// ---- gradients vs finite differences ------------------------------------------------------------

struct Loaded {
  sq::ModelConfig cfg;
  std::unique_ptr<sq::Checkpoint> ckpt;
  sq::TensorNames names;
  std::unique_ptr<sq::CheckpointWeights> src;
};

Loaded load(const std::filesystem::path& dir) {
  Loaded l;
  l.cfg = sq::ModelConfig::load(dir);
  l.ckpt = std::make_unique<sq::Checkpoint>(dir);
  l.names = sq::tensor_names(l.cfg, *l.ckpt);
  l.src = std::make_unique<sq::CheckpointWeights>(*l.ckpt);
  return l;
}

std::vector<int32_t> random_ids(int64_t L, int64_t V, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(L));
  for (auto& x : ids) x = int32_t(rng() % uint32_t(V));
  return ids;
}

void check_gradients(const TinySpec& spec, int64_t L) {
  sqtest::TempDir tmp;
  calibtest::write_tiny_model(tmp.path, spec, 11);
  Loaded m = load(tmp.path);
  sq::ThreadPool pool(2);
  sq::ExecContext ctx{&pool, sq::Isa::kBest};
  const auto ids = random_ids(L, spec.V, 3);

  sq::CalibModel<double> model(m.cfg, m.names, *m.src, ctx);
  // The layers' linears and an untied head.
  std::vector<sq::LinearInfo> lins = model.linears();
  if (!m.names.head_is_embed) lins.push_back({sq::head_prefix(m.names), spec.V, spec.d});
  std::map<std::string, std::vector<double>> grads;
  sq::GradSinks<double> sinks;
  for (const auto& li : lins) {
    grads[li.prefix].resize(size_t(li.rows * li.cols));
    sinks.grad[li.prefix] = grads[li.prefix].data();
  }
  const double loss = model.forward_backward(ids, sinks);
  EXPECT_NEAR(loss, sq::sequence_loss(m.cfg, m.names, *m.src, ids, ctx, true), 1e-12);

  const float eps = std::ldexp(1.0f, -14);  // exact on the weight grid (see calibtest::grid)
  std::mt19937 rng(5);
  int checked = 0;
  for (const auto& li : lins) {
    const auto& g = grads[li.prefix];
    // Of 24 random elements, the 3 with the largest gradient (relative error of a ~0 gradient says nothing).
    std::vector<int64_t> cand(24);
    for (auto& c : cand) c = int64_t(rng() % uint32_t(g.size()));
    std::sort(cand.begin(), cand.end(), [&](int64_t a, int64_t b) { return std::fabs(g[a]) > std::fabs(g[b]); });
    for (int s = 0; s < 3; s++) {
      const int64_t idx = cand[size_t(s)];
      calibtest::PerturbedWeights plus(*m.src, li.prefix + ".weight", idx, eps), minus(*m.src, li.prefix + ".weight", idx, -eps);
      const double fd = (sq::sequence_loss(m.cfg, m.names, plus, ids, ctx, true) -
                         sq::sequence_loss(m.cfg, m.names, minus, ids, ctx, true)) / (2.0 * double(eps));
      ASSERT_GT(std::fabs(g[size_t(idx)]), 1e-7) << li.prefix << " has a vanishing gradient";
      EXPECT_LE(std::fabs(fd - g[size_t(idx)]), 1e-3 * std::fabs(g[size_t(idx)]))
          << li.prefix << "[" << idx << "]: analytic " << g[size_t(idx)] << " vs finite difference " << fd;
      checked++;
    }
  }
  EXPECT_EQ(checked, 3 * int(lins.size()));

  // The float path gives the same gradients to float accuracy.
  sq::CalibModel<float> fmodel(m.cfg, m.names, *m.src, ctx);
  std::map<std::string, std::vector<float>> fgrads;
  sq::GradSinks<float> fsinks;
  for (const auto& li : lins) {
    fgrads[li.prefix].resize(size_t(li.rows * li.cols));
    fsinks.grad[li.prefix] = fgrads[li.prefix].data();
  }
  EXPECT_NEAR(fmodel.forward_backward(ids, fsinks), loss, 1e-5);
  for (const auto& li : lins) {
    std::vector<float> gd(grads[li.prefix].begin(), grads[li.prefix].end());
    EXPECT_LT(calibtest::rel_frob(fgrads[li.prefix].data(), gd.data(), gd.size()), 1e-4) << li.prefix;
  }
}

TEST(CalibGradients, LlamaGqaMatchesFiniteDifferences) {
  TinySpec s;
  s.type = "llama";  // 4 query heads over 2 KV heads, head_dim 6
  check_gradients(s, 12);
}

TEST(CalibGradients, MistralSlidingWindowMatchesFiniteDifferences) {
  TinySpec s;
  s.type = "mistral";
  s.window = 5;  // < L = 12: the window cuts into the attention
  check_gradients(s, 12);
}

TEST(CalibGradients, OptWithBiasesMatchesFiniteDifferences) {
  TinySpec s;
  s.type = "opt";
  s.d = 16;
  s.H = 4;
  s.KV = 4;
  s.I = 32;
  s.V = 40;
  check_gradients(s, 10);
}

TEST(CalibGradients, HeadGradientSumsOverLogitBlocks) {
  // Logits are made 2^22 / V positions at a time (calib/model.cpp head_loss): with V = 100000 a
  // 64-token window spans two blocks (41 + 23 positions). The head's gradient must sum both blocks, and
  // ∂loss/∂x (seen through q_proj's gradient) must take rows from both.
  sqtest::TempDir tmp;
  TinySpec s;
  s.layers = 1;
  s.V = 100000;
  calibtest::write_tiny_model(tmp.path, s, 7);
  Loaded m = load(tmp.path);
  sq::ThreadPool pool(2);
  sq::ExecContext ctx{&pool, sq::Isa::kBest};
  const auto ids = random_ids(64, s.V, 9);
  sq::CalibModel<double> model(m.cfg, m.names, *m.src, ctx);
  const sq::LinearInfo& q = model.linears()[0];
  std::vector<double> gh(size_t(s.V * s.d)), gq(size_t(q.rows * q.cols));
  sq::GradSinks<double> sinks;
  sinks.grad["lm_head"] = gh.data();
  sinks.grad[q.prefix] = gq.data();
  model.forward_backward(ids, sinks);

  const float eps = std::ldexp(1.0f, -14);
  auto check = [&](const std::string& tensor, int64_t idx, double g) {
    calibtest::PerturbedWeights plus(*m.src, tensor, idx, eps), minus(*m.src, tensor, idx, -eps);
    const double fd = (sq::sequence_loss(m.cfg, m.names, plus, ids, ctx, true) -
                       sq::sequence_loss(m.cfg, m.names, minus, ids, ctx, true)) / (2.0 * double(eps));
    ASSERT_GT(std::fabs(g), 1e-7) << tensor << "[" << idx << "]";
    EXPECT_LE(std::fabs(fd - g), 1e-3 * std::fabs(g)) << tensor << "[" << idx << "]: analytic " << g << " vs " << fd;
  };
  // The largest entry of the head rows of a target predicted in the first block (position 0 predicts
  // ids[1]) and in the second (position 62 predicts ids[63]).
  for (int32_t row : {ids[1], ids[63]}) {
    const double* r = gh.data() + int64_t(row) * s.d;
    const int64_t j = std::max_element(r, r + s.d, [](double a, double b) { return std::fabs(a) < std::fabs(b); }) - r;
    check("lm_head.weight", int64_t(row) * s.d + j, r[j]);
  }
  const int64_t k = std::max_element(gq.begin(), gq.end(), [](double a, double b) { return std::fabs(a) < std::fabs(b); }) -
                    gq.begin();
  check(q.prefix + ".weight", k, gq[size_t(k)]);
}

TEST(CalibGradients, SlidingWindowChangesTheLoss) {
  // Guards against the window being ignored: the same weights with and without it differ.
  sqtest::TempDir tmp;
  TinySpec s;
  s.type = "mistral";
  s.window = 4;
  calibtest::write_tiny_model(tmp / "w", s, 2);
  s.window = 0;
  calibtest::write_tiny_model(tmp / "nw", s, 2);
  Loaded a = load(tmp / "w"), b = load(tmp / "nw");
  sq::ThreadPool pool(1);
  sq::ExecContext ctx{&pool, sq::Isa::kBest};
  const auto ids = random_ids(10, s.V, 1);
  const auto few = std::vector<int32_t>(ids.begin(), ids.begin() + 4);  // within the window: identical
  EXPECT_GT(std::fabs(sq::sequence_loss(a.cfg, a.names, *a.src, ids, ctx, true) -
                      sq::sequence_loss(b.cfg, b.names, *b.src, ids, ctx, true)), 1e-6);
  EXPECT_NEAR(sq::sequence_loss(a.cfg, a.names, *a.src, few, ctx, true),
              sq::sequence_loss(b.cfg, b.names, *b.src, few, ctx, true), 1e-12);
}

// Fisher = Σ over sequences of dW², statistics over all tokens, and the scalar and SIMD paths agree.
TEST(CalibFisher, SumsSquaredPerSequenceGradients) {
  sqtest::TempDir tmp;
  TinySpec s;
  calibtest::write_tiny_model(tmp.path, s, 4);
  Loaded m = load(tmp.path);
  sq::ThreadPool pool(2);
  sq::ExecContext ctx{&pool, sq::Isa::kBest};
  std::vector<std::vector<int32_t>> wins = {random_ids(9, s.V, 1), random_ids(9, s.V, 2), random_ids(9, s.V, 3)};
  sq::CalibOptions opts;
  opts.progress = false;
  opts.f64 = true;
  sq::CalibResult r = sq::calibrate(m.cfg, *m.ckpt, wins, ctx, opts);
  EXPECT_EQ(r.tokens, 27);

  sq::CalibModel<double> model(m.cfg, m.names, *m.src, ctx);
  std::vector<sq::LinearInfo> lins = model.linears();
  lins.push_back({"lm_head", s.V, s.d});  // untied: its Fisher values are kept too
  ASSERT_EQ(r.head.prefix, "lm_head");
  std::map<std::string, std::vector<double>> sum;
  double loss = 0;
  for (const auto& w : wins) {
    std::map<std::string, std::vector<double>> g;
    sq::GradSinks<double> sinks;
    for (const auto& li : lins) {
      g[li.prefix].resize(size_t(li.rows * li.cols));
      sinks.grad[li.prefix] = g[li.prefix].data();
    }
    loss += model.forward_backward(w, sinks);
    for (auto& [k, v] : g) {
      auto& acc = sum[k];
      acc.resize(v.size());
      for (size_t i = 0; i < v.size(); i++) acc[i] += v[i] * v[i];
    }
  }
  EXPECT_NEAR(r.mean_loss, loss / 3, 1e-12);
  for (const auto& li : lins) {
    std::vector<float> ref(sum[li.prefix].begin(), sum[li.prefix].end());
    EXPECT_LT(calibtest::rel_frob(r.fisher[li.prefix].data(), ref.data(), ref.size()), 1e-6) << li.prefix;
  }
  // The input of q_proj of layer 0 is rmsnorm(embed) * w: check the statistics directly.
  {
    std::vector<float> emb(size_t(s.V * s.d)), nw(size_t(s.d));
    m.src->read_rows("model.embed_tokens.weight", 0, s.V, emb.data());
    m.src->read_rows("model.layers.0.input_layernorm.weight", 0, s.d, nw.data());
    std::vector<double> amax(size_t(s.d), 0), ms(size_t(s.d), 0);
    for (const auto& w : wins)
      for (int32_t id : w) {
        double ss = 0;
        for (int64_t j = 0; j < s.d; j++) ss += double(emb[size_t(id * s.d + j)]) * emb[size_t(id * s.d + j)];
        const double inv = 1 / std::sqrt(ss / double(s.d) + 1e-5);
        for (int64_t j = 0; j < s.d; j++) {
          const double x = emb[size_t(id * s.d + j)] * inv * nw[size_t(j)];
          amax[size_t(j)] = std::max(amax[size_t(j)], std::fabs(x));
          ms[size_t(j)] += x * x / 27.0;
        }
      }
    for (const char* lin : {"q_proj", "k_proj", "v_proj"})
      for (int64_t j = 0; j < s.d; j++) {
        const std::string p = std::string("model.layers.0.self_attn.") + lin;
        EXPECT_NEAR(r.absmax[p][size_t(j)], amax[size_t(j)], 1e-5 * amax[size_t(j)]);
        EXPECT_NEAR(r.meansq[p][size_t(j)], ms[size_t(j)], 1e-5 * ms[size_t(j)]);
      }
  }

  // float with the SIMD kernels and float with the scalar reference agree with double.
  for (sq::Isa isa : {sq::Isa::kBest, sq::Isa::kScalar}) {
    sq::ExecContext c2{&pool, isa};
    opts.f64 = false;
    sq::CalibResult rf = sq::calibrate(m.cfg, *m.ckpt, wins, c2, opts);
    EXPECT_LT(calibtest::rel_frob(rf.fisher["lm_head"].data(), r.fisher["lm_head"].data(), r.fisher["lm_head"].size()),
              1e-4);
    for (const auto& li : r.linears) {
      EXPECT_LT(calibtest::rel_frob(rf.fisher[li.prefix].data(), r.fisher[li.prefix].data(), r.fisher[li.prefix].size()), 1e-4);
      EXPECT_LT(calibtest::rel_frob(rf.meansq[li.prefix].data(), r.meansq[li.prefix].data(), r.meansq[li.prefix].size()), 1e-5);
    }
  }
}

// ---- weight sources ------------------------------------------------------------------------------

// A LinearWeight holding an f32 matrix (as a quantized format would hold its dequantized values).
class VectorLinear : public sq::LinearWeight {
 public:
  VectorLinear(std::vector<float> w, int64_t rows, int64_t cols) : w_(std::move(w)) {
    rows_ = rows;
    cols_ = cols;
  }
  void matmul(const float* x, int64_t n, float* y, const sq::ExecContext&) const override {
    for (int64_t t = 0; t < n; t++)
      for (int64_t r = 0; r < rows_; r++) {
        float acc = 0;
        for (int64_t c = 0; c < cols_; c++) acc += w_[size_t(r * cols_ + c)] * x[t * cols_ + c];
        y[t * rows_ + r] = acc;
      }
  }
  void dequant_row(int64_t r, float* out) const override {
    std::copy(w_.begin() + r * cols_, w_.begin() + (r + 1) * cols_, out);
  }
  size_t weight_bytes() const override { return w_.size() * 4; }
  std::string describe() const override { return "test f32"; }

 private:
  std::vector<float> w_;
};

TEST(CalibWeights, OverlayReplacesLinearsThroughDequantRow) {
  sqtest::TempDir tmp;
  TinySpec s;
  calibtest::write_tiny_model(tmp.path, s, 8);
  Loaded m = load(tmp.path);
  sq::ThreadPool pool(2);
  sq::ExecContext ctx{&pool, sq::Isa::kBest};
  const auto ids = random_ids(10, s.V, 4);
  // Replace up_proj of layer 1 by a modified copy: the loss must equal that of the same change made
  // through another source, and differ from the original.
  const std::string name = "model.layers.1.mlp.up_proj.weight";
  std::vector<float> w(size_t(s.I * s.d));
  m.src->read_rows(name, 0, s.I, w.data());
  w[17] += 0.25f;
  VectorLinear lw(w, s.I, s.d);
  sq::OverlayWeights over(*m.src, {{name, &lw}});
  calibtest::PerturbedWeights pert(*m.src, name, 17, 0.25f);
  const double base = sq::sequence_loss(m.cfg, m.names, *m.src, ids, ctx);
  const double a = sq::sequence_loss(m.cfg, m.names, over, ids, ctx);
  EXPECT_NEAR(a, sq::sequence_loss(m.cfg, m.names, pert, ids, ctx), 1e-6);
  EXPECT_GT(std::fabs(a - base), 1e-5);
  EXPECT_EQ(over.shape(name), (std::vector<int64_t>{s.I, s.d}));
}

// ---- windows ------------------------------------------------------------------------------------

TEST(CalibWindows, SequentialAndRandom) {
  std::vector<int32_t> toks(100);
  for (size_t i = 0; i < toks.size(); i++) toks[i] = int32_t(i);
  sq::CalibOptions o;
  o.samples = 4;
  o.seqlen = 24;
  o.sampling = "sequential";
  auto w = sq::calibration_windows(toks, o, "data.txt", 512);
  ASSERT_EQ(w.size(), 4u);
  for (int i = 0; i < 4; i++) {
    ASSERT_EQ(w[size_t(i)].size(), 24u);
    EXPECT_EQ(w[size_t(i)][0], 24 * i);
    EXPECT_EQ(w[size_t(i)][23], 24 * i + 23);
  }
  o.sampling = "random";
  o.samples = 50;
  o.seed = 9;
  auto r1 = sq::calibration_windows(toks, o, "data.txt", 512);
  auto r2 = sq::calibration_windows(toks, o, "data.txt", 512);
  EXPECT_EQ(r1, r2);  // deterministic for a seed
  std::set<int32_t> starts;
  for (auto& x : r1) {
    ASSERT_EQ(x.size(), 24u);
    EXPECT_LE(x[0], 100 - 24);
    for (size_t j = 1; j < x.size(); j++) EXPECT_EQ(x[j], x[0] + int32_t(j));  // contiguous
    starts.insert(x[0]);
  }
  EXPECT_GT(starts.size(), 20u);  // spread over the data
  o.seed = 10;
  EXPECT_NE(sq::calibration_windows(toks, o, "data.txt", 512), r1);
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const sq::Error& e) {
    return e.what();
  }
  return "";
}

TEST(CalibWindows, BadInputIsAClearError) {
  std::vector<int32_t> toks(50, 7);
  sq::CalibOptions o;
  o.samples = 4;
  o.seqlen = 64;
  std::string e = error_of([&] { sq::calibration_windows(toks, o, "short.txt", 512); });
  EXPECT_NE(e.find("short.txt"), std::string::npos) << e;
  EXPECT_NE(e.find("shorter than one window"), std::string::npos) << e;
  o.seqlen = 1024;
  e = error_of([&] { sq::calibration_windows(std::vector<int32_t>(5000, 1), o, "d.txt", 512); });
  EXPECT_NE(e.find("exceeds the model context of 512"), std::string::npos) << e;
  o.seqlen = 20;
  o.sampling = "sequential";
  e = error_of([&] { sq::calibration_windows(toks, o, "d.txt", 512); });
  EXPECT_NE(e.find("only 2 non-overlapping windows"), std::string::npos) << e;
  o.sampling = "strided";
  e = error_of([&] { sq::calibration_windows(toks, o, "d.txt", 512); });
  EXPECT_NE(e.find("unknown sampling mode"), std::string::npos) << e;
}

// ---- sensitivity file ---------------------------------------------------------------------------

TEST(CalibFile, RoundTripAndValidation) {
  sqtest::TempDir tmp;
  TinySpec s;
  calibtest::write_tiny_model(tmp / "a", s, 1);
  TinySpec s2 = s;
  s2.I = 48;  // same names, other MLP width
  calibtest::write_tiny_model(tmp / "b", s2, 1);
  Loaded a = load(tmp / "a"), b = load(tmp / "b");
  sq::ThreadPool pool(2);
  sq::ExecContext ctx{&pool, sq::Isa::kBest};
  sq::CalibOptions opts;
  opts.progress = false;
  sq::CalibResult r = sq::calibrate(a.cfg, *a.ckpt, {random_ids(8, s.V, 1), random_ids(8, s.V, 2)}, ctx, opts);
  const auto out = tmp / "calib.safetensors";
  sq::write_calibration(out, r, {{"model", "a"}, {"samples", "2"}});

  sq::Sensitivity sens = sq::load_sensitivity(out, a.cfg, *a.ckpt);
  EXPECT_EQ(sens.metadata().at("model"), "a");
  EXPECT_EQ(sens.all().size(), r.linears.size() + 1);  // + the untied head's Fisher values
  {
    ASSERT_TRUE(sens.has("lm_head"));
    const auto& h = sens.at("lm_head");
    ASSERT_EQ(h.rows, s.V);
    ASSERT_EQ(h.cols, s.d);
    EXPECT_EQ(0, std::memcmp(h.fisher, r.fisher["lm_head"].data(), size_t(s.V * s.d) * 4));
    EXPECT_EQ(h.absmax, nullptr);
  }
  for (const auto& li : r.linears) {
    const auto& ls = sens.at(li.prefix);
    ASSERT_EQ(ls.rows, li.rows);
    ASSERT_EQ(ls.cols, li.cols);
    EXPECT_EQ(0, std::memcmp(ls.fisher, r.fisher[li.prefix].data(), size_t(li.rows * li.cols) * 4));
    EXPECT_EQ(0, std::memcmp(ls.absmax, r.absmax[li.prefix].data(), size_t(li.cols) * 4));
    EXPECT_EQ(0, std::memcmp(ls.meansq, r.meansq[li.prefix].data(), size_t(li.cols) * 4));
  }

  std::string e = error_of([&] { sq::load_sensitivity(out, b.cfg, *b.ckpt); });
  EXPECT_NE(e.find("was computed for another model"), std::string::npos) << e;
  EXPECT_NE(e.find(out.string()), std::string::npos) << e;
  EXPECT_NE(e.find("fisher.model.layers.0.mlp.gate_proj has shape [40, 24] but the model's weight is [48, 24]"),
            std::string::npos) << e;

  TinySpec s3 = s;
  s3.layers = 3;  // a layer the file does not have
  calibtest::write_tiny_model(tmp / "c", s3, 1);
  Loaded c = load(tmp / "c");
  e = error_of([&] { sq::load_sensitivity(out, c.cfg, *c.ckpt); });
  EXPECT_NE(e.find("no tensor fisher.model.layers.2.self_attn.q_proj"), std::string::npos) << e;

  // Unwritable destinations: an error naming the path, and no file (or temporary) left behind.
  const auto missing = tmp / "no-such-dir" / "x.safetensors";
  e = error_of([&] { sq::write_calibration(missing, r, {}); });
  EXPECT_NE(e.find(missing.string()), std::string::npos) << e;
  EXPECT_FALSE(std::filesystem::exists(tmp / "no-such-dir"));
  std::filesystem::create_directories(tmp / "adir");
  e = error_of([&] { sq::write_calibration(tmp / "adir", r, {}); });
  EXPECT_NE(e.find("adir"), std::string::npos) << e;
  size_t n_files = 0;
  for (auto& ent : std::filesystem::directory_iterator(tmp.path)) n_files += ent.is_regular_file();
  EXPECT_EQ(n_files, 1u);  // only calib.safetensors
  EXPECT_TRUE(std::filesystem::is_empty(tmp / "adir"));
}

TEST(CalibModelInput, BadSequencesAreClearErrors) {
  sqtest::TempDir tmp;
  TinySpec s;
  s.max_pos = 16;
  calibtest::write_tiny_model(tmp.path, s, 1);
  Loaded m = load(tmp.path);
  sq::ThreadPool pool(1);
  sq::ExecContext ctx{&pool, sq::Isa::kBest};
  std::string e = error_of([&] { sq::sequence_loss(m.cfg, m.names, *m.src, random_ids(17, s.V, 1), ctx); });
  EXPECT_NE(e.find("exceeds the model context of 16"), std::string::npos) << e;
  e = error_of([&] { sq::sequence_loss(m.cfg, m.names, *m.src, {1, 2, 999}, ctx); });
  EXPECT_NE(e.find("token id 999 out of range"), std::string::npos) << e;
  e = error_of([&] { sq::sequence_loss(m.cfg, m.names, *m.src, {1}, ctx); });
  EXPECT_NE(e.find("at least 2 tokens"), std::string::npos) << e;
  sq::CalibOptions o;
  o.progress = false;
  e = error_of([&] { sq::calibrate(m.cfg, *m.ckpt, {random_ids(20, s.V, 1)}, ctx, o); });
  EXPECT_NE(e.find("exceeds the model context of 16"), std::string::npos) << e;
}

}  // namespace
