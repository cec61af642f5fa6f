// safetensors: an 8-byte little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F16", "shape": [out, in], "data_offsets": [begin, end]}, ..., "__metadata__": {...}}
// then the byte buffer; offsets are relative to the end of the header.
// Reading maps the file and validates everything before any tensor is used: header inside the file,
// known dtypes, offsets inside the buffer, size == product(shape) * dtype size, no two tensors overlapping.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/mmap_file.h"

namespace sq {

// A view of one stored tensor. `data` points into a mapped file (or owned memory) and is not aligned
// beyond what the file gives; kernels that need alignment repack at load time.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;
  std::string file;  // where it came from, for error messages
  bool mapped = false;  // data points into a read-only file mapping (see release_pages below)

  int64_t numel() const;
  int64_t dim(int i) const { return shape.at(i); }
  std::string shape_str() const;  // "[64, 172]"
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);  // maps + validates; throws sq::Error

  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorView* find(const std::string& name) const;
  const TensorView& get(const std::string& name) const;  // throws naming file and tensor
  const std::filesystem::path& path() const { return file_.path(); }
  size_t file_size() const { return file_.size(); }

 private:
  MappedFile file_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint directory: model.safetensors, or the shards listed by
// model.safetensors.index.json ("weight_map": {tensor: shard file}).
// After a loader has copied `t` into its own buffer: drops t's pages from RSS when t is a view into a
// file mapping (they stay in the page cache); does nothing for views of ordinary memory, which
// MADV_DONTNEED would zero.
void release_pages(const TensorView& t);

class Checkpoint {
 public:
  explicit Checkpoint(const std::filesystem::path& dir);

  const TensorView* find(const std::string& name) const;
  const TensorView& get(const std::string& name) const;
  bool has(const std::string& name) const { return find(name) != nullptr; }
  std::vector<std::string> names() const;
  size_t bytes_on_disk() const;
  const std::map<std::string, std::string>& metadata() const;  // of the first shard
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> index_;
};

// Index of the first NaN or infinity in a floating-point tensor (F32, F16, BF16), or -1 (also for
// integer tensors). Reads every element; a mapped tensor's pages are released afterwards.
int64_t first_non_finite(const TensorView& t);

// Fails naming the tensor, its file and the element when any floating-point tensor of `ckpt` holds NaN
// or infinity: calibrating or quantizing such weights would write NaN statistics or copy NaN norms.
void check_finite_weights(const Checkpoint& ckpt);

// Collects tensors and writes one safetensors file atomically (temporary name, then rename).
class SafetensorsWriter {
 public:
  // Copies the bytes. shape product * dtype size must equal nbytes.
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data, size_t nbytes);
  void add_f32(const std::string& name, std::vector<int64_t> shape, const float* data);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  void write(const std::filesystem::path& path) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace sq
