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
