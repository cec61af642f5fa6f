#include "engine/kv_cache.h"

#include "core/error.h"

namespace sq {

KvCache::KvCache(int64_t n_layers, int64_t kv_dim, int64_t capacity_blocks)
    : n_layers_(n_layers), slice_(kBlockTokens * kv_dim), capacity_(capacity_blocks) {
  SQ_CHECK(n_layers > 0 && kv_dim > 0 && capacity_blocks > 0, "KV cache: bad shape (layers ", n_layers, ", kv_dim ",
           kv_dim, ", blocks ", capacity_blocks, ")");
  blocks_.resize(size_t(capacity_blocks));
  free_.reserve(size_t(capacity_blocks));
}

int32_t KvCache::take() {
  int32_t id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else if (int64_t(next_fresh_) < capacity_) {
    id = int32_t(next_fresh_);
    // Uninitialised (new float[] without ()): positions are always written before they are read.
    blocks_[next_fresh_++].reset(new float[size_t(2 * n_layers_ * slice_)]);
  } else {
    return -1;
  }
  used_++;
  return id;
}

void KvCache::give(int32_t id) {
  SQ_CHECK(id >= 0 && size_t(id) < next_fresh_, "KV cache: block ", id, " was never taken");
  free_.push_back(id);
  used_--;
}

}  // namespace sq
