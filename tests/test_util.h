// Shared helpers for the tests: where the repository and ../shared are, temporary directories, and
// running the squeeze CLI as a subprocess (for end-to-end and bad-input tests).
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

namespace sqtest {

std::filesystem::path repo_dir();    // the source tree (SQUEEZE_SOURCE_DIR)
std::filesystem::path shared_dir();  // ../shared next to the repository; empty path if absent
std::filesystem::path bundled_model();  // models/stories260K inside the repository

// A fresh empty directory under the system temp dir, removed when the object dies.
struct TempDir {
  TempDir();
  ~TempDir();
  std::filesystem::path path;
  std::filesystem::path operator/(const std::string& s) const { return path / s; }
};

struct CliResult {
  int rc = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs the squeeze binary with the given arguments (no shell quoting needed). A run still going after
// timeout_s is killed by SIGALRM (rc 128 + 14), so a hang fails its test instead of stalling the suite.
CliResult run_cli(const std::vector<std::string>& args, unsigned timeout_s = 600);

std::string read_file(const std::filesystem::path& p);
void write_file(const std::filesystem::path& p, const std::string& s);

}  // namespace sqtest

// Skips the current test with a visible message when ../shared (or a file in it) is missing.
#define SQ_REQUIRE_SHARED(rel)                                                               \
  do {                                                                                       \
    if (::sqtest::shared_dir().empty() || !std::filesystem::exists(::sqtest::shared_dir() / (rel))) \
      GTEST_SKIP() << "SKIPPED: ../shared/" << (rel) << " not present (tests of shared data need it)"; \
  } while (0)
