// Outputs are written unnamed (O_TMPFILE; "<path>.tmp.<pid>" where the file system lacks it) and
// renamed over the target only when complete, so a failed or interrupted run never leaves a
// half-written file under the real name, nor (with O_TMPFILE) a temporary. What may be replaced is
// core/output_path.h's business: check there first.
#pragma once
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace sq {

class AtomicFile {
 public:
  explicit AtomicFile(const std::filesystem::path& target);  // opens the temporary; throws on failure
  ~AtomicFile();                                             // removes the temporary unless committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  void commit();  // flush, fsync, close, rename onto the target
  const std::filesystem::path& target() const { return target_; }

 private:
  std::filesystem::path target_, tmp_;
  std::FILE* f_ = nullptr;
  bool unnamed_ = false;  // O_TMPFILE: linked as tmp_ only in commit()
  bool committed_ = false;
};

// Writes a whole small file (config.json and the like) atomically.
void write_file_atomic(const std::filesystem::path& target, std::string_view contents);
std::string read_text_file(const std::filesystem::path& path);  // throws sq::Error naming the file

}  // namespace sq

namespace sq {
struct OutputPolicy;

// An output directory built under "<target>.tmp.<pid>" (the parent must exist), with squeeze's marker
// file in it from the start, and moved onto the target by commit(); destroyed with everything in it if
// commit() is never reached. The constructor checks the target against `policy` (core/output_path.h)
// before any work and removes temporaries that killed runs left beside it; commit() checks again and
// replaces an existing target (an earlier squeeze output, with --force) only then.
class AtomicDirectory {
 public:
  AtomicDirectory(const std::filesystem::path& target, const OutputPolicy& policy);
  ~AtomicDirectory();
  AtomicDirectory(const AtomicDirectory&) = delete;
  AtomicDirectory& operator=(const AtomicDirectory&) = delete;

  const std::filesystem::path& path() const { return tmp_; }  // write the files here
  std::filesystem::path operator/(const std::filesystem::path& name) const { return tmp_ / name; }
  void commit();

 private:
  std::filesystem::path target_, tmp_;
  std::vector<std::filesystem::path> inputs_;
  bool force_ = false;
  bool committed_ = false;
};
}  // namespace sq
