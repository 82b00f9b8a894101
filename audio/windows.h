// Window/hop arithmetic for classifying long recordings: fixed windows every `hop` samples, the last
// one moved back to end exactly at the end of the recording (so its tail is classified, never padded
// with silence unless the whole recording is shorter than one window). Pure arithmetic, shared by
// the classifier and its tests.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <vector>

namespace longseq {

struct SampleRange {
  int64_t start = 0, end = 0;  // [start, end) in samples
  bool operator==(const SampleRange&) const = default;
};

// Windows over `total` samples; window, hop >= 1. total < window: one window [0, total). total 0: none.
std::vector<SampleRange> audio_windows(int64_t total, int64_t window, int64_t hop);

// Streams `path` as mono at `rate` (libsndfile + libsoxr, see audio_file.h) and calls fn for every
// window of audio_windows(total, window, hop), in order, while holding at most about window + hop +
// one decoded block of samples: an hours-long recording is never in memory whole. The last window
// may be shorter than `window` only when the whole recording is. Returns the total sample count.
// channel < 0 averages the channels. Throws (naming the file) on decoding errors.
int64_t for_each_window(const std::filesystem::path& path, int rate, int channel, int64_t window, int64_t hop,
                        const std::function<void(const SampleRange&, std::span<const float>)>& fn);

}  // namespace longseq
