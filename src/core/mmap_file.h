// Read-only memory map of a whole file. Loaders read tensors through it; those that keep a tensor in
// another buffer (every linear weight, see formats/dense.cpp) release its mapped pages afterwards, so a
// model costs its file size in RSS, not twice that.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

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

// Opens `path` read-only (O_CLOEXEC), refusing anything but a regular file: a FIFO would block the
// open forever and a device such as /dev/zero never ends. Returns the descriptor and sets *size.
// Throws sq::Error naming the file.
int open_regular_file(const std::filesystem::path& path, uint64_t* size);

// Files read whole into memory (configs, tokenizers, text data) stop at 1 GiB: WikiText-103 is 0.5 GB,
// Llama 3's tokenizer.json 9 MB. Larger is a mistake, refused before any reading.
inline constexpr uint64_t kMaxReadBytes = uint64_t(1) << 30;

// The whole regular file at `path`, at most max_bytes (else an error naming the file and the limit).
std::string read_whole_file(const std::filesystem::path& path, uint64_t max_bytes = kMaxReadBytes);

// Drops the whole pages inside [p, p + n) of a read-only mapping from this process's resident set
// (madvise MADV_DONTNEED; they stay in the page cache and fault back in if read again). Loaders call it
// after copying a tensor into another layout, so its mapped bytes do not count twice in RSS.
void release_pages(const void* p, size_t n);

}  // namespace sq
