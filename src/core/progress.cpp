#include "core/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace sq {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  long t = long(s + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  return buf;
}

Progress::Progress(std::string label, int64_t total, std::string unit, bool enabled, std::string rate_unit,
                   double rate_per_step)
    : label_(std::move(label)), unit_(std::move(unit)), rate_unit_(std::move(rate_unit)), total_(total),
      rate_per_step_(rate_per_step), enabled_(enabled && total > 0), tty_(isatty(2)) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
  if (rate_unit_.empty()) rate_unit_ = unit_;
}

Progress::~Progress() {
  if (!finished_ && enabled_ && tty_) std::fputc('\n', stderr);
}

void Progress::update(int64_t done, const std::string& note) {
  done_ = done;
  if (!note.empty()) note_ = note;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_draw_ < std::chrono::milliseconds(100) && done_ < total_) return;
  } else {
    // No line for reaching the total either: finish() prints the last one.
    if (std::chrono::duration<double>(now - last_draw_).count() < log_interval_seconds) return;
  }
  last_draw_ = now;
  draw(false);
}

void Progress::draw(bool final) {
  double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double frac = total_ ? double(done_) / double(total_) : 1.0;
  double rate = el > 0 ? done_ * rate_per_step_ / el : 0;
  double eta = done_ > 0 ? el * (double(total_ - done_) / double(done_)) : NAN;
  const int width = 24;
  int filled = int(frac * width);
  std::string bar(filled, '#');
  bar.append(width - filled, '-');
  char rbuf[64];
  if (rate >= 100) std::snprintf(rbuf, sizeof rbuf, "%.0f", rate);
  else std::snprintf(rbuf, sizeof rbuf, "%.2f", rate);
  std::string time = final ? "in " + format_duration(el) : "ETA " + format_duration(eta);
  std::fprintf(stderr, "%s%s [%s] %3d%% %lld/%lld %s  %s %s/s  %s  %s%s", tty_ ? "\r\033[K" : "", label_.c_str(),
               bar.c_str(), int(frac * 100 + 1e-9), (long long)done_, (long long)total_, unit_.c_str(), rbuf,
               rate_unit_.c_str(), time.c_str(), note_.c_str(), tty_ && !final ? "" : "\n");
  std::fflush(stderr);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_) draw(true);
}

}  // namespace sq
