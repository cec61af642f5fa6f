#include "quant/squeezellm.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>

#include "core/error.h"
#include "quant/kmeans.h"

namespace sq {
namespace {

// Exact top-K selection over non-negative floats in two streaming passes and O(bins + boundary bin)
// memory: a histogram over the top 16 bits of the float representation (monotone in the value for
// v >= 0), then only the values of the bin holding the boundary are collected and selected.
constexpr size_t kBins = 65536;
inline uint32_t bin_of(float v) {
  if (v == 0) return 0;  // -0.0 has the sign bit set
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u >> 16;
}

struct TopK {
  float threshold;             // the (K+1)-th largest value, or -1 when there are at most K values
  std::vector<int64_t> above;  // per source: how many of its values are > threshold
};

// Sources are visited as visit(source, sink) with sink(float) per value; sources run in parallel on
// `pool` when given. Exactly K values are > threshold unless values tie there (then fewer).
template <class Visit>
TopK kth_largest_threshold(int64_t K, size_t n_sources, Visit visit, ThreadPool* pool) {
  auto for_sources = [&](const std::function<void(size_t)>& fn) {
    if (pool && n_sources > 1) pool->run(n_sources, [&](size_t s, int) { fn(s); });
    else for (size_t s = 0; s < n_sources; s++) fn(s);
  };
  std::vector<uint64_t> hist(kBins, 0);
  std::vector<int64_t> count(n_sources);
  std::mutex mu;
  for_sources([&](size_t src) {
    std::vector<uint32_t> local(kBins, 0);
    int64_t n = 0;
    visit(src, [&](float v) {
      local[bin_of(v)]++;
      n++;
    });
    count[src] = n;
    std::lock_guard<std::mutex> lk(mu);
    for (size_t b = 0; b < kBins; b++) hist[b] += local[b];
  });
  TopK out{-1.0f, count};
  int64_t above = 0;
  int64_t bin = -1;
  for (int64_t b = int64_t(kBins) - 1; b >= 0; b--) {
    if (above + int64_t(hist[b]) > K) {
      bin = b;
      break;
    }
    above += int64_t(hist[b]);
  }
  if (bin < 0) return out;
  // Second pass: count values in higher bins, collect those in the boundary bin.
  std::vector<std::vector<float>> cand(n_sources);
  for_sources([&](size_t src) {
    int64_t hi = 0;
    visit(src, [&](float v) {
      const uint32_t b = bin_of(v);
      hi += b > uint32_t(bin);
      if (b == uint32_t(bin)) cand[src].push_back(v);
    });
    out.above[src] = hi;
  });
  std::vector<float> all;
  for (const auto& c : cand) all.insert(all.end(), c.begin(), c.end());
  const size_t r = size_t(K - above);  // 0-based rank of the threshold inside the bin, descending
  std::nth_element(all.begin(), all.begin() + r, all.end(), std::greater<float>());
  out.threshold = all[r];
  for (size_t src = 0; src < n_sources; src++)
    for (float v : cand[src]) out.above[src] += v > out.threshold;
  return out;
}

void check_input(const SqueezeInput& m) {
  SQ_CHECK(m.w != nullptr, "squeezellm: matrix '", m.name, "' has no weights");
  SQ_CHECK(m.rows >= 1 && m.cols >= 1 && m.cols < (int64_t(1) << 31), "squeezellm: matrix '", m.name,
           "' has a bad shape [", m.rows, ", ", m.cols, "]");
}

[[noreturn]] void bad_value(const SqueezeInput& m, const char* what, int64_t e) {
  fail("squeezellm: matrix '", m.name, "': ", what, " at [", e / m.cols, ", ", e % m.cols, "]");
}

void check_values(const SqueezeInput& m, int64_t e, float w, float f) {
  if (!std::isfinite(w)) bad_value(m, "weight is not finite", e);
  if (!(std::isfinite(f) && f >= 0)) bad_value(m, "Fisher value is not finite and >= 0", e);
}

}  // namespace

uint64_t squeezellm_row_seed(uint64_t seed, int64_t row) {
  uint64_t s = seed ^ (uint64_t(row) * 0xd1b54a32d192ed03ull);
  return splitmix64(s);
}

SparsePlan plan_sparsity(std::span<const SqueezeInput> mats, double sparsity_percent, double sensitive_percent,
                         const ExecContext& ctx) {
  SQ_CHECK(sparsity_percent >= 0 && sparsity_percent < 100, "squeezellm: sparsity ", sparsity_percent,
           "% is outside [0, 100)");
  SQ_CHECK(sensitive_percent >= 0 && sensitive_percent <= 100, "squeezellm: sensitive ", sensitive_percent,
           "% is outside [0, 100]");
  SparsePlan plan;
  plan.matrices.resize(mats.size());
  for (const SqueezeInput& m : mats) {
    check_input(m);
    plan.total_weights += m.rows * m.cols;
  }
  if (sparsity_percent == 0) return plan;  // dense only

  // Work is split into chunks of ~1M weights (all passes stream over them, in parallel on the pool);
  // per-chunk partial results are combined in chunk order, so the plan does not depend on threads.
  struct Chunk {
    size_t mat;
    int64_t begin, end;  // element range of the matrix
  };
  constexpr int64_t kChunk = int64_t(1) << 20;
  std::vector<Chunk> chunks;
  std::vector<size_t> first_chunk(mats.size() + 1);
  for (size_t i = 0; i < mats.size(); i++) {
    first_chunk[i] = chunks.size();
    const int64_t n = mats[i].rows * mats[i].cols;
    for (int64_t b = 0; b < n; b += kChunk) chunks.push_back({i, b, std::min(n, b + kChunk)});
  }
  first_chunk[mats.size()] = chunks.size();
  ThreadPool* pool = ctx.pool;
  auto for_chunks = [&](size_t c0, size_t c1, const std::function<void(const Chunk&, size_t)>& fn) {
    if (pool && c1 - c0 > 1) pool->run(c1 - c0, [&](size_t t, int) { fn(chunks[c0 + t], c0 + t); });
    else for (size_t c = c0; c < c1; c++) fn(chunks[c], c);
  };

  // Validation and the spread (RMS) of every matrix.
  std::vector<double> sumsq(chunks.size());
  for_chunks(0, chunks.size(), [&](const Chunk& ch, size_t ci) {
    const SqueezeInput& m = mats[ch.mat];
    double ss = 0;
    for (int64_t e = ch.begin; e < ch.end; e++) {
      check_values(m, e, m.w[e], m.fisher ? m.fisher[e] : 1.0f);
      ss += double(m.w[e]) * double(m.w[e]);
    }
    sumsq[ci] = ss;
  });
  for (size_t i = 0; i < mats.size(); i++) {
    double ss = 0;
    for (size_t c = first_chunk[i]; c < first_chunk[i + 1]; c++) ss += sumsq[c];
    const double rms = std::sqrt(ss / double(mats[i].rows * mats[i].cols));
    plan.matrices[i].inv_spread = rms > 0 ? float(1.0 / rms) : 0.0f;
  }

  // Sensitive: per matrix, the top share by Fisher value (ties at the boundary left out).
  plan.sensitive_percent = std::min(sensitive_percent, sparsity_percent);
  for (size_t i = 0; i < mats.size(); i++) {
    const SqueezeInput& m = mats[i];
    const int64_t k = std::llround(plan.sensitive_percent / 100.0 * double(m.rows * m.cols));
    if (!m.fisher || k == 0) continue;  // no Fisher = uniform sensitivity: every value ties
    const float* f = m.fisher;
    const size_t c0 = first_chunk[i], n_chunks = first_chunk[i + 1] - c0;
    const TopK top = kth_largest_threshold(
        k, n_chunks,
        [&](size_t src, auto&& sink) {
          const Chunk& ch = chunks[c0 + src];
          for (int64_t e = ch.begin; e < ch.end; e++) sink(f[e]);
        },
        pool);
    plan.matrices[i].fisher_threshold = top.threshold;  // -1 when k >= n: everything is sensitive
    for (int64_t c : top.above) plan.matrices[i].n_sensitive += c;
  }
  for (const SparseSelection& sel : plan.matrices) plan.total_sensitive += sel.n_sensitive;

  // Outliers: one global multiplier over the scores of all non-sensitive weights.
  const int64_t target = std::llround(sparsity_percent / 100.0 * double(plan.total_weights));
  const int64_t R = target - plan.total_sensitive;
  if (R <= 0) return plan;
  auto visit_scores = [&](size_t ci, auto&& sink) {
    const Chunk& ch = chunks[ci];
    const SqueezeInput& m = mats[ch.mat];
    const SparseSelection& sel = plan.matrices[ch.mat];
    for (int64_t e = ch.begin; e < ch.end; e++) {
      const float f = m.fisher ? m.fisher[e] : 1.0f;
      if (!(f > sel.fisher_threshold)) sink(SparseSelection::score(m.w[e], sel.inv_spread));
    }
  };
  const TopK top = kth_largest_threshold(R, chunks.size(), visit_scores, pool);
  plan.multiplier = top.threshold;
  for (SparseSelection& sel : plan.matrices) sel.multiplier = top.threshold;
  for (size_t ci = 0; ci < chunks.size(); ci++) plan.matrices[chunks[ci].mat].n_outliers += top.above[ci];
  for (const SparseSelection& sel : plan.matrices) plan.total_outliers += sel.n_outliers;
  return plan;
}

LutMatrix squeezellm_quantize(const SqueezeInput& m, const SparseSelection& sel, DType values_dtype,
                              const SqueezeOptions& o, const ExecContext& ctx,
                              const std::function<void(int64_t)>& progress) {
  check_input(m);
  SQ_CHECK(o.bits >= 2 && o.bits <= 8, "squeezellm: bits = ", o.bits, " is outside [2, 8]");
  SQ_CHECK(o.max_iter >= 1, "squeezellm: max_iter must be >= 1");
  const int64_t rows = m.rows, cols = m.cols;
  LutMatrix out;
  out.rows = rows;
  out.cols = cols;
  out.group_size = cols;
  out.bits = o.bits;
  const int L = out.levels();
  out.codes.resize(size_t(rows) * size_t(cols));
  out.lut.resize(size_t(rows) * size_t(L));
  std::vector<std::vector<int32_t>> sp_cols(rows);
  std::vector<std::vector<float>> sp_vals(rows);

  std::atomic<int64_t> done{0};
  std::mutex progress_mu;
  auto do_rows = [&](size_t r0, size_t r1, int) {
    std::vector<float> xs, ws;
    xs.reserve(size_t(cols));
    ws.reserve(size_t(cols));
    float table[256];
    for (int64_t r = int64_t(r0); r < int64_t(r1); r++) {
      const float* w = m.w + r * cols;
      const float* f = m.fisher ? m.fisher + r * cols : nullptr;
      xs.clear();
      ws.clear();
      std::vector<int32_t>& sc = sp_cols[r];
      for (int64_t c = 0; c < cols; c++) {
        const float fc = f ? f[c] : 1.0f;
        check_values(m, r * cols + c, w[c], fc);
        if (sel.is_sparse(w[c], fc)) {
          sc.push_back(int32_t(c));
          sp_vals[r].push_back(w[c]);
        } else {
          xs.push_back(w[c]);
          if (f) ws.push_back(fc);
        }
      }
      // Sparse weights are excluded from the clustering; no Fisher (ws empty) = uniform weights.
      KMeans1D km = o.exact ? kmeans1d_exact(xs, ws, L)
                            : kmeans1d_fast(xs, ws, L, squeezellm_row_seed(o.seed, r), o.max_iter);
      uint16_t* lut = out.lut.data() + size_t(r) * size_t(L);
      int zero_code = 0;
      for (int q = 0; q < L; q++) {
        lut[q] = f32_to_f16(std::clamp(km.centroids[q], -65504.0f, 65504.0f));
        table[q] = f16_to_f32(lut[q]);  // rounding is monotone: still ascending
        if (std::fabs(table[q]) < std::fabs(table[zero_code])) zero_code = q;
      }
      uint8_t* codes = out.codes.data() + size_t(r) * size_t(cols);
      const NearestCode encode(table, L);
      size_t next_sparse = 0;
      for (int64_t c = 0; c < cols; c++) {
        if (next_sparse < sc.size() && sc[next_sparse] == c) {
          codes[c] = uint8_t(zero_code);
          next_sparse++;
        } else {
          codes[c] = encode(w[c]);
        }
      }
    }
    const int64_t total = done += int64_t(r1 - r0);
    if (progress) {
      std::lock_guard<std::mutex> lk(progress_mu);
      progress(total);
    }
  };
  if (ctx.pool) ctx.pool->parallel_for(size_t(rows), 4, do_rows);
  else do_rows(0, size_t(rows), 0);

  int64_t nnz = 0;
  for (const auto& v : sp_cols) nnz += int64_t(v.size());
  if (nnz > 0) {
    SQ_CHECK(nnz < (int64_t(1) << 31), "squeezellm: matrix '", m.name, "' has too many sparse weights");
    out.indptr.resize(size_t(rows) + 1);
    out.indices.reserve(size_t(nnz));
    out.values.reserve(size_t(nnz));
    for (int64_t r = 0; r < rows; r++) {
      out.indices.insert(out.indices.end(), sp_cols[r].begin(), sp_cols[r].end());
      out.values.insert(out.values.end(), sp_vals[r].begin(), sp_vals[r].end());
      out.indptr[r + 1] = int32_t(out.indices.size());
    }
  }
  // Store sparse values in the checkpoint dtype when that is exact (it is for weights read from it).
  out.values_dtype = DType::F32;
  if (values_dtype == DType::F16 || values_dtype == DType::BF16) {
    const bool f16 = values_dtype == DType::F16;
    const bool exact = std::all_of(out.values.begin(), out.values.end(), [&](float v) {
      return (f16 ? f16_to_f32(f32_to_f16(v)) : bf16_to_f32(f32_to_bf16(v))) == v;
    });
    if (exact) out.values_dtype = values_dtype;
  }
  return out;
}

LutMatrix squeezellm_quantize(const SqueezeInput& m, DType values_dtype, const SqueezeOptions& o,
                              const ExecContext& ctx, const std::function<void(int64_t)>& progress) {
  SparsePlan plan = plan_sparsity(std::span<const SqueezeInput>(&m, 1), o.sparsity, o.sensitive, ctx);
  return squeezellm_quantize(m, plan.matrices[0], values_dtype, o, ctx, progress);
}

}  // namespace sq
