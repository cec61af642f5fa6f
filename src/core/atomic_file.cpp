#include "core/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace sq {

AtomicFile::AtomicFile(const std::filesystem::path& target) : target_(target) {
  tmp_ = target;
  tmp_ += cat(".tmp.", ::getpid());
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) fail(target.string(), ": cannot write: ", std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (f_) std::fclose(f_);
  if (!committed_) {
    std::error_code ec;
    std::filesystem::remove(tmp_, ec);
  }
}

void AtomicFile::write(const void* data, size_t n) {
  if (n && std::fwrite(data, 1, n, f_) != n) fail(target_.string(), ": write failed: ", std::strerror(errno));
}

void AtomicFile::commit() {
  if (std::fflush(f_) != 0 || ::fsync(fileno(f_)) != 0)
    fail(target_.string(), ": write failed: ", std::strerror(errno));
  std::FILE* f = f_;
  f_ = nullptr;
  if (std::fclose(f) != 0) fail(target_.string(), ": write failed: ", std::strerror(errno));
  std::error_code ec;
  std::filesystem::rename(tmp_, target_, ec);
  if (ec) fail(target_.string(), ": cannot rename temporary into place: ", ec.message());
  committed_ = true;
}

void write_file_atomic(const std::filesystem::path& target, std::string_view contents) {
  AtomicFile f(target);
  f.write(contents);
  f.commit();
}

std::string read_text_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail(path.string(), ": file not found");
  if (std::filesystem::is_directory(path, ec)) fail(path.string(), ": is a directory, expected a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace sq

namespace sq {

void check_output_directory(const std::filesystem::path& target) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  if (!fs::is_directory(parent, ec)) fail(target.string(), ": parent directory does not exist");
  if (!fs::exists(target, ec)) return;
  if (!fs::is_directory(target, ec)) fail(target.string(), ": exists and is not a directory");
  if (!fs::is_empty(target, ec) && !fs::exists(target / "config.json", ec))
    fail(target.string(), ": exists, is not empty and is not a model directory; refusing to replace it");
}

void replace_directory(const std::filesystem::path& tmp, const std::filesystem::path& target) {
  namespace fs = std::filesystem;
  check_output_directory(target);
  std::error_code ec;
  if (fs::exists(target, ec)) {
    fs::path old = target;
    old += cat(".old.", ::getpid());
    fs::rename(target, old, ec);
    if (ec) fail(target.string(), ": cannot replace existing directory: ", ec.message());
    fs::rename(tmp, target, ec);
    if (ec) fail(target.string(), ": cannot rename temporary directory into place: ", ec.message());
    fs::remove_all(old, ec);
  } else {
    fs::rename(tmp, target, ec);
    if (ec) fail(target.string(), ": cannot rename temporary directory into place: ", ec.message());
  }
}

AtomicDirectory::AtomicDirectory(const std::filesystem::path& target) : target_(target) {
  namespace fs = std::filesystem;
  check_output_directory(target_);
  tmp_ = target_;
  tmp_ += cat(".tmp.", ::getpid());
  std::error_code ec;
  fs::remove_all(tmp_, ec);  // a leftover of an earlier process with the same pid
  if (!fs::create_directory(tmp_, ec)) fail(target_.string(), ": cannot create output directory: ", ec.message());
}

AtomicDirectory::~AtomicDirectory() {
  if (committed_) return;
  std::error_code ec;
  std::filesystem::remove_all(tmp_, ec);
}

void AtomicDirectory::commit() {
  replace_directory(tmp_, target_);
  committed_ = true;
}

}  // namespace sq
