// Progress for long work: count, rate and ETA redrawn on one stderr line, only when stderr is a
// terminal and CI is not set, so pipelines and CI logs stay clean.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace longseq {

class Progress {
 public:
  // total <= 0 when unknown (no ETA). `unit` names what is counted ("variants", "tokens").
  Progress(std::string label, int64_t total, std::string unit);
  ~Progress();
  void add(int64_t n);
  void finish();
  // True when progress would be drawn (stderr is a TTY, CI unset, not quiet).
  static bool enabled();
  static void set_quiet(bool quiet);

 private:
  void draw(bool final);
  std::string label_, unit_;
  int64_t total_, done_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool active_, finished_ = false;
};

}  // namespace longseq
