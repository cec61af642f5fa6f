// The paged KV cache: a pool of fixed-size blocks shared by every sequence of an engine. A block holds
// kBlockTokens consecutive positions of one sequence for every layer: per layer its K rows then its V
// rows, [kBlockTokens, kv_dim] f32 each, so attention over one layer of a sequence reads each block's
// slice contiguously. Sequences keep block tables (src/engine/engine.h); this class only hands out and
// takes back block ids. A block's memory is allocated the first time the block is used and kept for
// reuse (freed blocks are reused first, last freed first), so the memory held follows the most positions
// in use at once, not the pool's capacity.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace sq {

class KvCache {
 public:
  static constexpr int64_t kBlockTokens = 16;

  // capacity_blocks > 0; kv_dim = n_kv_heads · head_dim.
  KvCache(int64_t n_layers, int64_t kv_dim, int64_t capacity_blocks);

  // A free block's id, or -1 when all capacity() blocks are in use.
  int32_t take();
  // Returns a block taken before (its contents are left as they are).
  void give(int32_t id);

  float* k(int32_t block, int64_t layer) { return blocks_[size_t(block)].get() + layer * 2 * slice_; }
  float* v(int32_t block, int64_t layer) { return k(block, layer) + slice_; }

  int64_t capacity() const { return capacity_; }          // blocks the pool may hold
  int64_t used() const { return used_; }                  // blocks held by sequences
  int64_t allocated() const { return int64_t(next_fresh_); }  // blocks whose memory exists
  int64_t free_blocks() const { return capacity_ - used_; }
  size_t bytes_per_block() const { return size_t(2 * n_layers_ * slice_) * sizeof(float); }
  size_t bytes_per_position() const { return bytes_per_block() / size_t(kBlockTokens); }
  size_t bytes_allocated() const { return size_t(allocated()) * bytes_per_block(); }

 private:
  int64_t n_layers_, slice_, capacity_;  // slice_ = kBlockTokens · kv_dim floats
  int64_t used_ = 0;
  size_t next_fresh_ = 0;                // ids below it have memory
  std::vector<std::unique_ptr<float[]>> blocks_;
  std::vector<int32_t> free_;            // ids with memory that no sequence holds (a stack)
};

}  // namespace sq
