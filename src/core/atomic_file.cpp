#include "core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/mmap_file.h"
#include "core/output_path.h"

namespace sq {

AtomicFile::AtomicFile(const std::filesystem::path& target) : target_(target) {
  tmp_ = target;
  tmp_ += cat(".tmp.", ::getpid());
  const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
  // Unnamed until complete; linking it in goes through /proc/self/fd, so only where /proc is there.
  if (::access("/proc/self/fd", X_OK) == 0) {
    const int fd = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
    if (fd >= 0) {
      f_ = ::fdopen(fd, "wb");
      if (f_) unnamed_ = true;
      else ::close(fd);
    }
  }
  if (!f_) f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) fail(target.string(), ": cannot write: ", std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (f_) std::fclose(f_);
  if (!committed_ && !unnamed_) {
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
  if (unnamed_) {  // give it the temporary's name, then rename that over the target as below
    const std::string fdpath = cat("/proc/self/fd/", fileno(f_));
    std::error_code ec;
    std::filesystem::remove(tmp_, ec);  // a leftover of an earlier process with the same pid
    if (::linkat(AT_FDCWD, fdpath.c_str(), AT_FDCWD, tmp_.c_str(), AT_SYMLINK_FOLLOW) != 0)
      fail(target_.string(), ": cannot link the written file into place: ", std::strerror(errno));
    unnamed_ = false;  // from here the destructor removes tmp_ if the rename fails
  }
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

std::string read_text_file(const std::filesystem::path& path) { return read_whole_file(path); }

}  // namespace sq

namespace sq {

AtomicDirectory::AtomicDirectory(const std::filesystem::path& target, const OutputPolicy& policy)
    : target_(target), inputs_(policy.inputs), force_(policy.force) {
  namespace fs = std::filesystem;
  check_output_directory(target_, policy);
  remove_stale_temporaries(target_);
  tmp_ = target_;
  tmp_ += cat(".tmp.", ::getpid());
  std::error_code ec;
  if (fs::exists(tmp_, ec)) {  // a leftover of an earlier process with the same pid: only if it is ours
    if (!is_squeeze_directory(tmp_)) fail(tmp_.string(), ": exists and was not written by squeeze; remove it or choose another output");
    fs::remove_all(tmp_, ec);
  }
  if (!fs::create_directory(tmp_, ec)) fail(target_.string(), ": cannot create output directory: ", ec.message());
  const nlohmann::json marker = {{"created_by", "squeeze"}, {"command", policy.command}};
  write_file_atomic(tmp_ / kOutputMarker, marker.dump() + "\n");
}

AtomicDirectory::~AtomicDirectory() {
  if (committed_) return;
  std::error_code ec;
  std::filesystem::remove_all(tmp_, ec);
}

void AtomicDirectory::commit() {
  namespace fs = std::filesystem;
  check_output_directory(target_, OutputPolicy{inputs_, force_, ""});  // nothing changed meanwhile
  std::error_code ec;
  if (fs::exists(target_, ec)) {  // empty, or an earlier squeeze output replaced with --force
    fs::path old = target_;
    old += cat(".old.", ::getpid());
    fs::rename(target_, old, ec);
    if (ec) fail(target_.string(), ": cannot replace existing directory: ", ec.message());
    fs::rename(tmp_, target_, ec);
    if (ec) {
      std::error_code ec2;
      fs::rename(old, target_, ec2);  // put the earlier output back
      fail(target_.string(), ": cannot rename temporary directory into place: ", ec.message());
    }
    fs::remove_all(old, ec);
  } else {
    fs::rename(tmp_, target_, ec);
    if (ec) fail(target_.string(), ": cannot rename temporary directory into place: ", ec.message());
  }
  committed_ = true;
}

}  // namespace sq
