// Window/hop arithmetic for classifying long recordings: fixed windows every `hop` samples, the last
// one moved back to end exactly at the end of the recording (so its tail is classified, never padded
// with silence unless the whole recording is shorter than one window). Pure arithmetic, shared by
// the classifier and its tests.
#pragma once

#include <cstdint>
#include <vector>

namespace longseq {

struct SampleRange {
  int64_t start = 0, end = 0;  // [start, end) in samples
  bool operator==(const SampleRange&) const = default;
};

// Windows over `total` samples; window, hop >= 1. total < window: one window [0, total). total 0: none.
std::vector<SampleRange> audio_windows(int64_t total, int64_t window, int64_t hop);

}  // namespace longseq
