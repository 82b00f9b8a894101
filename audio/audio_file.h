// Audio input: libsndfile decoding (WAV/WAVEX/RF64, FLAC, Ogg Vorbis, Opus, MP3, AIFF, CAF; any integer
// or float sample format) streamed block by block, downmixed to mono by averaging (or one channel
// picked), and libsoxr (HQ) resampling to the model's rate, also streamed, so an hours-long
// recording never sits in memory whole. Every failure names the file and what to do.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace longseq {

struct AudioInfo {
  int64_t frames = 0;  // per channel, at the file's rate
  int sample_rate = 0;
  int channels = 0;
  std::string format;  // e.g. "WAV (Microsoft) / Signed 16 bit PCM"
  double seconds() const { return sample_rate > 0 ? double(frames) / sample_rate : 0.0; }
};

class AudioReader {
 public:
  // channel < 0: the mean of all channels; otherwise that channel (0-based). Throws naming the file
  // for unreadable, unsupported (with a conversion hint), empty or channel-less input.
  static AudioReader open(const std::filesystem::path& path, int channel = -1);
  ~AudioReader();
  AudioReader(AudioReader&&) noexcept;
  AudioReader& operator=(AudioReader&&) noexcept;

  const AudioInfo& info() const { return info_; }
  const std::filesystem::path& path() const { return path_; }
  // Up to n mono samples at the file's rate into out; returns how many (0 at the end). A file that
  // ends before the frame count its header promises is an error (truncated).
  int64_t read(float* out, int64_t n);
  // Positions the next read at `frame`.
  void seek(int64_t frame);

 private:
  AudioReader() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::filesystem::path path_;
  AudioInfo info_;
  int channel_ = -1;
  int64_t position_ = 0;
};

// Streaming sample-rate conversion (libsoxr, HQ recipe, mono float).
class Resampler {
 public:
  Resampler(double in_rate, double out_rate);
  ~Resampler();
  Resampler(const Resampler&) = delete;
  Resampler& operator=(const Resampler&) = delete;
  // Appends the output for `n` more input samples to `out`.
  void process(const float* in, int64_t n, std::vector<float>& out);
  // Appends the remaining output at the end of the input.
  void flush(std::vector<float>& out);
  bool identity() const { return soxr_ == nullptr; }

 private:
  void* soxr_ = nullptr;  // soxr_t, null when the rates are equal (samples pass through)
  double ratio_;
};

// Every sample of a (short) file as mono at `rate` (0: the file's own rate).
std::vector<float> load_audio(const std::filesystem::path& path, int rate, int channel = -1);

}  // namespace longseq
