// A std::vector whose data starts on a 64-byte (cache line) boundary.
//
// Why: the decode kernels read packed weights 64 bytes per load; with std::vector's 16-byte alignment
// most of those loads straddle two cache lines (measured: 49 of 57 weight buffers of an int4 model were
// off a line boundary), and each such load costs two L1 accesses.
#pragma once
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace sq {

inline constexpr std::size_t kCacheLine = 64;

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(kCacheLine)));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t(kCacheLine)); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const noexcept {
    return true;
  }
};

template <class T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

// 32-bit words in the whole cache lines that hold `bytes` bytes (row strides that keep rows on lines).
inline constexpr std::int64_t line_words(std::int64_t bytes) {
  return (bytes + std::int64_t(kCacheLine) - 1) / std::int64_t(kCacheLine) * std::int64_t(kCacheLine / 4);
}

}  // namespace sq
