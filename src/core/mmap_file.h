// Read-only memory map of a whole file. Loaders read tensors through it; those that keep a tensor in
// another buffer (every linear weight, see formats/dense.cpp) release its mapped pages afterwards, so a
// model costs its file size in RSS, not twice that.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>

namespace sq {

class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::filesystem::path& path);  // throws sq::Error naming the file
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Drops the whole pages inside [p, p + n) of a read-only mapping from this process's resident set
// (madvise MADV_DONTNEED; they stay in the page cache and fault back in if read again). Loaders call it
// after copying a tensor into another layout, so its mapped bytes do not count twice in RSS.
void release_pages(const void* p, size_t n);

}  // namespace sq
