// Shared by the libFuzzer harnesses (fuzz/README.md): a scratch directory per process, files written
// from the input, and the rule every harness checks: bad input may only ever end in an sq::Error.
// Anything else (a crash, a sanitizer report, another exception escaping, a hang, an allocation past
// -rss_limit_mb) is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "core/error.h"

namespace sqfuzz {

// A fresh directory under $TMPDIR for this process, removed at exit.
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("squeeze-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch(), ec);
    });
    return d;
  }();
  return dir;
}

// An empty subdirectory of scratch() named `name` (cleared on every call).
inline std::filesystem::path fresh_dir(const std::string& name) {
  const auto d = scratch() / name;
  std::error_code ec;
  std::filesystem::remove_all(d, ec);
  std::filesystem::create_directories(d);
  return d;
}

inline void write(const std::filesystem::path& p, std::string_view bytes) {
  std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

// Runs fn; an sq::Error is the expected answer to bad input, anything else propagates (a finding).
template <class Fn>
void expect_only_sq_errors(Fn fn) {
  try {
    fn();
  } catch (const sq::Error&) {
  }
}

}  // namespace sqfuzz
