#include "audio/windows.h"

#include "core/error.h"

namespace longseq {

std::vector<SampleRange> audio_windows(int64_t total, int64_t window, int64_t hop) {
  LS_CHECK(window >= 1 && hop >= 1, "window and hop must be at least one sample (got {} and {})", window, hop);
  std::vector<SampleRange> out;
  if (total <= 0) return out;
  if (total <= window) return {{0, total}};
  int64_t s = 0;
  for (; s + window <= total; s += hop) out.push_back({s, s + window});
  if (out.back().end < total) out.push_back({total - window, total});  // the tail, aligned to the end
  return out;
}

}  // namespace longseq
