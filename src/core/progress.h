// A progress bar on stderr with rate and ETA, for calibration, quantization and evaluation:
//   calibrate [#########-----------]  45% 58/128 seq  812 tok/s  ETA 0:42  layers.3.mlp
// Redrawn at most every 100 ms on a terminal. When stderr is not a terminal (a log file, CI) it prints
// a plain line at most every log_interval_seconds, and the final line: a job of a few seconds logs one
// line, one of hours a line every 5 s rather than one per update.
// Results never go here: stdout stays machine-readable.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace sq {

class Progress {
 public:
  // total: number of steps; unit: what a step is ("seq", "win", "rows"); rate_unit/rate_per_step let
  // the bar show e.g. tokens/s while counting sequences (rate_per_step = tokens per sequence).
  Progress(std::string label, int64_t total, std::string unit, bool enabled = true,
           std::string rate_unit = "", double rate_per_step = 1.0);
  ~Progress();
  void update(int64_t done, const std::string& note = "");
  void add(int64_t n = 1, const std::string& note = "") { update(done_ + n, note); }
  void finish();

  // Seconds between lines when stderr is not a terminal (5; tests shorten it).
  static inline double log_interval_seconds = 5.0;

 private:
  void draw(bool final);
  std::string label_, unit_, rate_unit_, note_;
  int64_t total_, done_ = 0;
  double rate_per_step_;
  bool enabled_, tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

std::string format_duration(double seconds);  // "1:05:03" / "4:12"

}  // namespace sq
