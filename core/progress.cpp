#include "core/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace longseq {

namespace {
bool g_quiet = false;

std::string human_duration(double s) {
  if (s < 60) return fmt::format("{:.0f}s", s);
  if (s < 3600) return fmt::format("{}m{:02d}s", int(s / 60), int(s) % 60);
  return fmt::format("{}h{:02d}m", int(s / 3600), int(s / 60) % 60);
}
}  // namespace

bool Progress::enabled() { return !g_quiet && isatty(STDERR_FILENO) && std::getenv("CI") == nullptr; }
void Progress::set_quiet(bool quiet) { g_quiet = quiet; }

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), active_(enabled()) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

void Progress::add(int64_t n) {
  done_ += n;
  if (!active_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ > std::chrono::milliseconds(200)) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (active_) draw(true);
}

void Progress::draw(bool final) {
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = secs > 0 ? double(done_) / secs : 0.0;
  std::string line = fmt::format("{}: {}", label_, done_);
  if (total_ > 0) line += fmt::format("/{} ({:.1f}%)", total_, 100.0 * double(done_) / double(total_));
  line += fmt::format(" {}, {:.1f} {}/s", unit_, rate, unit_);
  if (total_ > 0 && rate > 0 && !final) line += ", ETA " + human_duration(double(total_ - done_) / rate);
  if (final) line += ", " + human_duration(secs);
  std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace longseq
