// Outputs are written to "<path>.tmp.<pid>" and renamed over the target only when complete, so a
// failed or interrupted run never leaves a half-written file under the real name.
#pragma once
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

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
  bool committed_ = false;
};

// Writes a whole small file (config.json and the like) atomically.
void write_file_atomic(const std::filesystem::path& target, std::string_view contents);
std::string read_text_file(const std::filesystem::path& path);  // throws sq::Error naming the file

}  // namespace sq

namespace sq {
// Moves a completed temporary directory onto `target`. An existing target is replaced only if it is
// empty or looks like a model directory (has config.json), so a mistyped -o never deletes other data.
void replace_directory(const std::filesystem::path& tmp, const std::filesystem::path& target);
// Refuses, before any work, a target that replace_directory would refuse.
void check_output_directory(const std::filesystem::path& target);

// An output directory built under "<target>.tmp.<pid>" (the parent must exist) and moved onto the
// target by commit(); destroyed with everything in it if commit() is never reached. The constructor
// refuses, before any work, a target that replace_directory would refuse.
class AtomicDirectory {
 public:
  explicit AtomicDirectory(const std::filesystem::path& target);
  ~AtomicDirectory();
  AtomicDirectory(const AtomicDirectory&) = delete;
  AtomicDirectory& operator=(const AtomicDirectory&) = delete;

  const std::filesystem::path& path() const { return tmp_; }  // write the files here
  std::filesystem::path operator/(const std::filesystem::path& name) const { return tmp_ / name; }
  void commit();  // replace_directory(path(), target)

 private:
  std::filesystem::path target_, tmp_;
  bool committed_ = false;
};
}  // namespace sq
