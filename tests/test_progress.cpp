// Progress on a non-terminal stderr (a log file, CI): at most a line per log interval plus the final
// one, however many updates (issue 18: a log got a line per update for short jobs and only ten for
// hours-long ones).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "core/progress.h"
#include "test_util.h"

namespace {

// Runs fn with stderr sent to a file; returns what was written.
template <class Fn>
std::string capture_stderr(Fn fn) {
  sqtest::TempDir tmp;
  const auto file = tmp / "err";
  std::fflush(stderr);
  const int saved = dup(2);
  std::FILE* f = std::fopen(file.c_str(), "w");
  dup2(fileno(f), 2);
  fn();
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  std::fclose(f);
  return sqtest::read_file(file);
}

size_t count_lines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

TEST(Progress, LogGetsOneLineForAQuickJob) {
  const std::string out = capture_stderr([] {
    sq::Progress bar("job", 1000, "steps");
    for (int i = 1; i <= 1000; i++) bar.update(i);
    bar.finish();
  });
  EXPECT_EQ(count_lines(out), 1u) << out;
  EXPECT_NE(out.find("1000/1000 steps"), std::string::npos) << out;
  EXPECT_EQ(out.find('\r'), std::string::npos) << "no terminal redraws in a log";
}

TEST(Progress, LogGetsALinePerIntervalForALongJob) {
  const double saved = sq::Progress::log_interval_seconds;
  sq::Progress::log_interval_seconds = 0.05;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string out = capture_stderr([] {
    sq::Progress bar("job", 100, "steps");
    for (int i = 1; i <= 100; i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(4));
      bar.update(i);
    }
    bar.finish();
  });
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  sq::Progress::log_interval_seconds = saved;
  const size_t lines = count_lines(out);
  EXPECT_GE(lines, 2u) << out;  // at least one line before the end
  EXPECT_LE(double(lines), elapsed / 0.05 + 1.0 + 1e-9) << out;
  EXPECT_LT(lines, 100u) << out;
}

TEST(Progress, DisabledPrintsNothing) {
  const std::string out = capture_stderr([] {
    sq::Progress bar("job", 10, "steps", false);
    for (int i = 1; i <= 10; i++) bar.update(i);
    bar.finish();
  });
  EXPECT_EQ(out, "");
}

}  // namespace
