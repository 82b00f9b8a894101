#include "audio/windows.h"

#include "audio/audio_file.h"
#include "core/error.h"

#include <algorithm>

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

int64_t for_each_window(const std::filesystem::path& path, int rate, int channel, int64_t window, int64_t hop,
                        const std::function<void(const SampleRange&, std::span<const float>)>& fn) {
  LS_CHECK(window >= 1 && hop >= 1, "window and hop must be at least one sample (got {} and {})", window, hop);
  AudioReader reader = AudioReader::open(path, channel);
  Resampler resampler(reader.info().sample_rate, rate);
  std::vector<float> block(1 << 16), buf;  // buf[0] is sample `base` of the recording
  int64_t base = 0, total = 0, next = 0, emitted = 0;
  auto emit_ready = [&] {
    for (; next + window <= total; next += hop, ++emitted)
      fn({next, next + window}, std::span<const float>(buf.data() + (next - base), size_t(window)));
    const int64_t keep_from = std::max(base, std::min(next, total - window));  // the end-aligned tail stays available
    buf.erase(buf.begin(), buf.begin() + (keep_from - base));
    base = keep_from;
  };
  for (int64_t n; (n = reader.read(block.data(), int64_t(block.size()))) > 0;) {
    const size_t before = buf.size();
    resampler.process(block.data(), n, buf);
    total += int64_t(buf.size() - before);
    emit_ready();
  }
  const size_t before = buf.size();
  resampler.flush(buf);
  total += int64_t(buf.size() - before);
  emit_ready();
  const std::vector<SampleRange> all = audio_windows(total, window, hop);
  for (size_t k = size_t(emitted); k < all.size(); ++k) {
    const SampleRange& w = all[k];
    fn(w, std::span<const float>(buf.data() + (w.start - base), size_t(w.end - w.start)));
  }
  return total;
}

}  // namespace longseq
