#include "audio/audio_file.h"

#include "core/error.h"

#include <sndfile.h>
#include <soxr.h>

#include <algorithm>
#include <cmath>

namespace longseq {

namespace {

constexpr const char* kConvertHint =
    "libsndfile reads WAV, FLAC, Ogg Vorbis, Opus, MP3, AIFF and CAF; convert other formats (M4A, WMA, ...) "
    "with e.g. `ffmpeg -i IN -ac 1 -ar 16000 OUT.wav`";

std::string format_name(int format) {
  SF_FORMAT_INFO major{}, minor{};
  major.format = format & SF_FORMAT_TYPEMASK;
  minor.format = format & SF_FORMAT_SUBMASK;
  sf_command(nullptr, SFC_GET_FORMAT_INFO, &major, sizeof major);
  sf_command(nullptr, SFC_GET_FORMAT_INFO, &minor, sizeof minor);
  return std::string(major.name ? major.name : "?") + " / " + (minor.name ? minor.name : "?");
}

}  // namespace

struct AudioReader::Impl {
  SNDFILE* file = nullptr;
  std::vector<float> interleaved;
  ~Impl() {
    if (file) sf_close(file);
  }
};

AudioReader::~AudioReader() = default;
AudioReader::AudioReader(AudioReader&&) noexcept = default;
AudioReader& AudioReader::operator=(AudioReader&&) noexcept = default;

AudioReader AudioReader::open(const std::filesystem::path& path, int channel) {
  std::error_code ec;
  LS_CHECK(std::filesystem::is_regular_file(path, ec), "{}: no such audio file (check the path)", path.string());
  LS_CHECK(std::filesystem::file_size(path, ec) > 0, "{}: empty file (0 bytes): nothing to decode", path.string());
  AudioReader r;
  r.path_ = path;
  r.impl_ = std::make_unique<Impl>();
  SF_INFO sfi{};
  r.impl_->file = sf_open(path.c_str(), SFM_READ, &sfi);
  if (!r.impl_->file) fail("{}: cannot decode ({}); {}", path.string(), sf_strerror(nullptr), kConvertHint);
  r.info_ = {sfi.frames, sfi.samplerate, sfi.channels, format_name(sfi.format)};
  LS_CHECK(sfi.channels >= 1 && sfi.samplerate > 0, "{}: no channels or no sample rate in the header (corrupt file?)", path.string());
  LS_CHECK(sfi.frames > 0, "{}: no audio frames (empty recording)", path.string());
  LS_CHECK(channel < sfi.channels, "{}: --channel {} asked but the file has {} channel(s) (channels count from 0)", path.string(),
           channel, sfi.channels);
  r.channel_ = channel;
  return r;
}

int64_t AudioReader::read(float* out, int64_t n) {
  const int C = info_.channels;
  const int64_t want = std::min(n, info_.frames - position_);
  if (want <= 0) return 0;
  std::vector<float>& buf = impl_->interleaved;
  buf.resize(size_t(want * C));
  const sf_count_t got = sf_readf_float(impl_->file, buf.data(), want);
  if (got < want)
    fail("{}: truncated or corrupt: the header promises {} frames but decoding stopped at {} ({}); re-encode or re-download it",
         path_.string(), info_.frames, position_ + got, sf_strerror(impl_->file));
  for (int64_t i = 0; i < got; ++i) {
    const float* f = buf.data() + i * C;
    if (channel_ >= 0) {
      out[i] = f[channel_];
    } else {
      float s = 0;
      for (int c = 0; c < C; ++c) s += f[c];
      out[i] = s / float(C);
    }
  }
  position_ += got;
  return got;
}

void AudioReader::seek(int64_t frame) {
  LS_CHECK(frame >= 0 && frame <= info_.frames, "{}: seek to frame {} outside 0..{}", path_.string(), frame, info_.frames);
  LS_CHECK(sf_seek(impl_->file, frame, SEEK_SET) == frame, "{}: cannot seek to frame {} ({})", path_.string(), frame,
           sf_strerror(impl_->file));
  position_ = frame;
}

Resampler::Resampler(double in_rate, double out_rate) : ratio_(out_rate / in_rate) {
  LS_CHECK(in_rate > 0 && out_rate > 0, "sample rates must be positive ({} -> {})", in_rate, out_rate);
  if (in_rate == out_rate) return;
  soxr_error_t err = nullptr;
  const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  const soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
  soxr_ = soxr_create(in_rate, out_rate, 1, &err, &io, &q, nullptr);
  LS_CHECK(soxr_ && !err, "libsoxr cannot resample {} Hz -> {} Hz: {}", in_rate, out_rate, err ? err : "unknown error");
}

Resampler::~Resampler() {
  if (soxr_) soxr_delete(static_cast<soxr_t>(soxr_));
}

void Resampler::process(const float* in, int64_t n, std::vector<float>& out) {
  if (!soxr_) {
    out.insert(out.end(), in, in + n);
    return;
  }
  const size_t base = out.size(), room = size_t(std::ceil(double(n) * ratio_)) + 64;
  out.resize(base + room);
  size_t done_in = 0, done_out = 0;
  const soxr_error_t err = soxr_process(static_cast<soxr_t>(soxr_), in, size_t(n), &done_in, out.data() + base, room, &done_out);
  LS_CHECK(!err && done_in == size_t(n), "libsoxr failed: {}", err ? err : "input not consumed");
  out.resize(base + done_out);
}

void Resampler::flush(std::vector<float>& out) {
  if (!soxr_) return;
  for (;;) {
    const size_t base = out.size(), room = 4096;
    out.resize(base + room);
    size_t done_out = 0;
    const soxr_error_t err = soxr_process(static_cast<soxr_t>(soxr_), nullptr, 0, nullptr, out.data() + base, room, &done_out);
    LS_CHECK(!err, "libsoxr failed: {}", err);
    out.resize(base + done_out);
    if (done_out == 0) return;
  }
}

std::vector<float> load_audio(const std::filesystem::path& path, int rate, int channel) {
  AudioReader r = AudioReader::open(path, channel);
  Resampler rs(r.info().sample_rate, rate > 0 ? rate : r.info().sample_rate);
  std::vector<float> block(65536), out;
  for (int64_t n; (n = r.read(block.data(), int64_t(block.size()))) > 0;) rs.process(block.data(), n, out);
  rs.flush(out);
  return out;
}

}  // namespace longseq
