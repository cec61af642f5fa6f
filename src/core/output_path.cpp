#include "core/output_path.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mmap_file.h"

namespace sq {

namespace fs = std::filesystem;

namespace {

// Absolute, with symbolic links of the existing part resolved and "." / ".." folded.
fs::path canonical_path(const fs::path& p) {
  std::error_code ec;
  fs::path a = fs::absolute(p, ec);
  if (ec) a = p;
  fs::path c = fs::weakly_canonical(a, ec);
  return ec ? a.lexically_normal() : c;
}

// inner is outer or below it (component-wise, on canonical paths).
bool within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (o->empty()) continue;  // a trailing separator
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

void check_against_inputs(const fs::path& target, const OutputPolicy& policy) {
  const fs::path t = canonical_path(target);
  std::error_code ec;
  for (const fs::path& in : policy.inputs) {
    if (in.empty()) continue;
    const fs::path c = canonical_path(in);
    if (within(t, c) || (fs::exists(target, ec) && fs::exists(in, ec) && fs::equivalent(target, in, ec)))
      fail(target.string(), ": output is or is inside the input ", in.string(), "; choose another output path");
    if (within(c, t))
      fail(target.string(), ": output contains the input ", in.string(), "; choose another output path");
  }
}

void check_parent(const fs::path& target) {
  std::error_code ec;
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  if (!fs::is_directory(parent, ec)) fail(target.string(), ": cannot write: directory ", parent.string(), " does not exist");
  if (::access(parent.c_str(), W_OK) != 0) fail(target.string(), ": cannot write: directory ", parent.string(), " is not writable");
}

// Up to max_bytes from the start of p; "" when p is not a readable regular file (never blocks on a FIFO).
std::string read_prefix(const fs::path& p, size_t max_bytes) {
  try {
    uint64_t size = 0;
    const int fd = open_regular_file(p, &size);
    std::string s(size_t(std::min<uint64_t>(size, max_bytes)), '\0');
    const ssize_t n = ::pread(fd, s.data(), s.size(), 0);
    ::close(fd);
    s.resize(n > 0 ? size_t(n) : 0);
    return s;
  } catch (const Error&) {
    return {};
  }
}

// "<name>.tmp.<pid>" / "<name>.old.<pid>": the pid, or -1.
long temporary_pid(const std::string& entry, const std::string& name) {
  for (const char* kind : {".tmp.", ".old."}) {
    const std::string pre = name + kind;
    if (entry.size() <= pre.size() || entry.compare(0, pre.size(), pre) != 0) continue;
    const std::string digits = entry.substr(pre.size());
    if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
    return std::stol(digits);
  }
  return -1;
}

}  // namespace

fs::path output_path(std::string_view arg) {
  if (arg.empty()) fail("output path is empty");
  fs::path p(arg);
  while (!p.has_filename() && p.has_parent_path() && p.parent_path() != p) p = p.parent_path();
  const fs::path name = p.filename();
  if (name.empty() || name == "." || name == "..") fail(std::string(arg), ": output path names no file or directory");
  return p;
}

bool is_squeeze_directory(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_symlink(dir, ec) || !fs::is_directory(dir, ec)) return false;
  if (fs::is_regular_file(dir / kOutputMarker, ec)) return true;
  // Written by squeeze before the marker existed: synth's config records the preset, quantize's the
  // calibration provenance inside quantization_config.
  const fs::path cfg = dir / "config.json";
  if (!fs::is_regular_file(cfg, ec) || fs::file_size(cfg, ec) > (1u << 20)) return false;
  const nlohmann::json j = nlohmann::json::parse(read_prefix(cfg, 1u << 20), nullptr, false);
  if (!j.is_object()) return false;
  if (j.contains("squeeze_synthetic")) return true;
  const auto qc = j.find("quantization_config");
  return qc != j.end() && qc->is_object() && qc->contains("calibration");
}

bool is_squeeze_file(const fs::path& file) {
  std::error_code ec;
  if (fs::is_symlink(file, ec) || !fs::is_regular_file(file, ec)) return false;
  const std::string head = read_prefix(file, 8);
  if (head.size() < 8) return false;
  uint64_t n = 0;
  std::memcpy(&n, head.data(), 8);
  if (n == 0 || n > (uint64_t(1) << 26) || n + 8 > fs::file_size(file, ec)) return false;
  const std::string h = read_prefix(file, size_t(n) + 8).substr(8);
  const nlohmann::json j = nlohmann::json::parse(h, nullptr, false);
  if (!j.is_object()) return false;
  const auto m = j.find("__metadata__");
  if (m == j.end() || !m->is_object()) return false;
  if (m->value("created_by", "") == "squeeze calibrate") return true;
  for (const char* k : {"samples", "seqlen", "sampling", "mean_loss", "tokens"})  // calibrate, before created_by
    if (!m->contains(k)) return false;
  return true;
}

void check_output_directory(const fs::path& target, const OutputPolicy& policy) {
  std::error_code ec;
  check_parent(target);
  check_against_inputs(target, policy);
  if (fs::is_symlink(target, ec)) fail(target.string(), ": is a symbolic link; give the directory it points to or another path");
  if (!fs::exists(target, ec)) return;
  if (!fs::is_directory(target, ec)) fail(target.string(), ": exists and is not a directory; refusing to replace it");
  if (fs::is_empty(target, ec)) return;
  if (!is_squeeze_directory(target))
    fail(target.string(), ": exists, is not empty and was not written by squeeze; refusing to replace it");
  if (!policy.force) fail(target.string(), ": exists (an earlier squeeze output); pass --force to replace it");
}

void check_output_file(const fs::path& target, const OutputPolicy& policy) {
  std::error_code ec;
  check_parent(target);
  check_against_inputs(target, policy);
  if (fs::is_symlink(target, ec)) fail(target.string(), ": is a symbolic link; give the file it points to or another path");
  if (!fs::exists(target, ec)) return;
  if (fs::is_directory(target, ec)) fail(target.string(), ": is a directory, expected an output file name");
  if (!is_squeeze_file(target)) fail(target.string(), ": exists and was not written by squeeze; refusing to overwrite it");
  if (!policy.force) fail(target.string(), ": exists (an earlier squeeze output); pass --force to replace it");
}

int remove_stale_temporaries(const fs::path& target) {
  std::error_code ec;
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string name = target.filename().string();
  int removed = 0;
  for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
    const long pid = temporary_pid(it->path().filename().string(), name);
    if (pid <= 0 || pid == long(::getpid())) continue;
    if (::kill(pid_t(pid), 0) == 0 || errno != ESRCH) continue;  // still running (or not ours to ask)
    if (!is_squeeze_directory(it->path())) continue;
    std::error_code ec2;
    if (fs::remove_all(it->path(), ec2) > 0 && !ec2) removed++;
  }
  return removed;
}

}  // namespace sq
