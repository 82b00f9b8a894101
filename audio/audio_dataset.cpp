#include "audio/audio_dataset.h"

#include "audio/audio_file.h"
#include "core/error.h"
#include "core/random.h"
#include "core/data/split.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

namespace longseq {

namespace {

std::string lower_ext(const std::filesystem::path& p) {
  std::string e = p.extension().string();
  if (!e.empty()) e.erase(0, 1);
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return e;
}

std::vector<AudioClip> clips_from_folders(const std::filesystem::path& dir, const std::vector<std::string>& exts) {
  std::vector<AudioClip> out;
  for (const auto& cls : std::filesystem::directory_iterator(dir)) {
    if (!cls.is_directory()) continue;
    for (const auto& f : std::filesystem::recursive_directory_iterator(cls.path()))
      if (f.is_regular_file() && std::find(exts.begin(), exts.end(), lower_ext(f.path())) != exts.end())
        out.push_back({f.path(), cls.path().filename().string()});
  }
  LS_CHECK(!out.empty(), "{}: no audio files ({}) in class sub-folders; make one folder per label holding its recordings",
           dir.string(), fmt::join(exts, ","));
  return out;
}

double parse_seconds(const std::string& s, const std::filesystem::path& file, int64_t line) {
  try {
    size_t used = 0;
    const double v = std::stod(s, &used);
    if (used == s.size() && v >= 0) return v;
  } catch (const std::exception&) {
  }
  fail("{}:{}: '{}' is not a time in seconds (columns: path,label[,start,end])", file.string(), line, s);
}

std::vector<AudioClip> clips_from_manifest(const std::filesystem::path& csv) {
  std::ifstream in(csv);
  LS_CHECK(in, "{}: cannot read the manifest", csv.string());
  std::vector<AudioClip> out;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string x; std::getline(ss, x, ',');) f.push_back(x);
    if (n == 1 && !f.empty() && f[0] == "path") continue;  // header
    LS_CHECK(f.size() == 2 || f.size() == 4, "{}:{}: expected path,label[,start,end], got {} fields", csv.string(), n, f.size());
    AudioClip c{f[0], f[1]};
    if (c.path.is_relative()) c.path = csv.parent_path() / c.path;
    if (f.size() == 4) {
      c.start = parse_seconds(f[2], csv, n);
      c.end = parse_seconds(f[3], csv, n);
      LS_CHECK(c.end > c.start, "{}:{}: end {} is not after start {}", csv.string(), n, c.end, c.start);
    }
    LS_CHECK(!c.label.empty(), "{}:{}: empty label", csv.string(), n);
    out.push_back(std::move(c));
  }
  LS_CHECK(!out.empty(), "{}: the manifest lists no clips", csv.string());
  return out;
}

std::vector<float> load_clip(const AudioClip& c, int rate) {
  std::vector<float> s = load_audio(c.path, rate);
  if (c.start > 0 || c.end >= 0) {
    const auto a = std::min<int64_t>(int64_t(std::llround(c.start * rate)), int64_t(s.size()));
    const auto b = c.end < 0 ? int64_t(s.size()) : std::min<int64_t>(int64_t(std::llround(c.end * rate)), int64_t(s.size()));
    LS_CHECK(b > a, "{}: the segment {}..{} s is past the end of the recording ({:.3f} s)", c.path.string(), c.start, c.end,
             double(s.size()) / rate);
    s = std::vector<float>(s.begin() + a, s.begin() + b);
  }
  return s;
}

int64_t label_id(const std::vector<std::string>& labels, const AudioClip& c) {
  const auto it = std::find(labels.begin(), labels.end(), c.label);
  LS_CHECK(it != labels.end(), "{}: label '{}' is not one the model knows ({})", c.path.string(), c.label, fmt::join(labels, ", "));
  return int64_t(it - labels.begin());
}

}  // namespace

const std::vector<std::string>& default_audio_extensions() {
  static const std::vector<std::string> e{"wav", "flac", "ogg", "oga", "opus", "mp3", "aif", "aiff", "caf", "rf64", "w64"};
  return e;
}

std::vector<AudioClip> read_audio_clips(const std::filesystem::path& data, const std::vector<std::string>& extensions) {
  LS_CHECK(std::filesystem::exists(data), "{}: no such folder or manifest", data.string());
  auto out = std::filesystem::is_directory(data) ? clips_from_folders(data, extensions) : clips_from_manifest(data);
  std::sort(out.begin(), out.end(), [](const AudioClip& a, const AudioClip& b) {
    return std::tie(a.label, a.path, a.start) < std::tie(b.label, b.path, b.start);
  });
  return out;
}

int64_t mu_law_encode(float x) {
  const double v = std::clamp(double(x), -1.0, 1.0);
  const double y = std::copysign(std::log1p(255.0 * std::abs(v)) / std::log1p(255.0), v);  // [-1, 1]
  return std::clamp<int64_t>(int64_t(std::floor((y + 1.0) * 127.5 + 0.5)), 0, 255);
}

std::vector<int64_t> mu_law_window(const std::vector<float>& samples, int64_t offset, int64_t n, double level_rms) {
  const auto at = [&](int64_t i) { return offset + i >= 0 && offset + i < int64_t(samples.size()) ? samples[size_t(offset + i)] : 0.0f; };
  double gain = 1;
  if (level_rms > 0) {
    double power = 0;
    for (int64_t i = 0; i < n; ++i) power += double(at(i)) * double(at(i));
    const double rms = std::sqrt(power / double(std::max<int64_t>(n, 1)));
    gain = rms > 0 ? std::min(level_rms / rms, kMaxLevelGain) : 1.0;
  }
  std::vector<int64_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[size_t(i)] = mu_law_encode(float(gain * double(at(i))));
  return ids;
}

AudioClassifyTask::AudioClassifyTask(const std::vector<AudioClip>& train, const std::vector<AudioClip>& val,
                                     const std::vector<std::string>& labels, int sample_rate, int64_t clip_samples,
                                     const AudioAugment& augment, double level_rms)
    : clip_samples_(clip_samples), rate_(sample_rate), level_rms_(level_rms), augment_(augment) {
  LS_CHECK(clip_samples >= 1, "clip length must be positive");
  for (const auto& c : train) train_.push_back({load_clip(c, sample_rate), label_id(labels, c)});
  for (const auto& c : val) {
    const std::vector<float> s = load_clip(c, sample_rate);
    Example e;
    e.ids = mu_law_window(s, (int64_t(s.size()) - clip_samples) / 2, clip_samples, level_rms);  // centred (padded when short)
    e.label = label_id(labels, c);
    val_.push_back(std::move(e));
  }
  LS_CHECK(!train_.empty(), "no training clips");
}

Example AudioClassifyTask::sample(uint64_t seed, int64_t step, int64_t index) const {
  Rng rng = example_rng(seed, step, index);
  const Clip& clip = train_[size_t(rng.below(train_.size()))];
  const int64_t n = clip_samples_, len = int64_t(clip.samples.size());
  // Crop (or centre, when short) before augmenting, so the work is per window, not per recording.
  const int64_t offset = len > n ? int64_t(rng.below(uint64_t(len - n + 1))) : (len - n) / 2;
  std::vector<float> x(static_cast<size_t>(n), 0.0f);
  const AudioAugment& a = augment_;
  const double speed = a.enabled ? rng.uniform(1 - a.speed, 1 + a.speed) : 1.0;
  const double gain = a.enabled ? std::pow(10.0, rng.uniform(-a.gain_db, a.gain_db) / 20) : 1.0;
  const int64_t shift = a.enabled ? int64_t(std::llround(rng.uniform(-a.shift_seconds, a.shift_seconds) * rate_)) : 0;
  for (int64_t i = 0; i < n; ++i) {
    const double t = (double(i) - double(n) / 2) * speed + double(n) / 2 + double(offset);  // speed change about the centre
    const auto k = int64_t(std::floor(t));
    const double f = t - double(k);
    auto at = [&](int64_t j) { return j >= 0 && j < len ? double(clip.samples[size_t(j)]) : 0.0; };
    x[size_t(((i + shift) % n + n) % n)] = float(gain * ((1 - f) * at(k) + f * at(k + 1)));
  }
  if (a.enabled && a.tilt > 0) {
    const double k = rng.uniform(-a.tilt, a.tilt);
    for (int64_t i = n - 1; i >= 1; --i) x[size_t(i)] += float(k * x[size_t(i - 1)]);
  }
  if (a.enabled && rng.uniform() < 0.5) {
    double power = 0;
    for (float v : x) power += double(v) * v;
    power /= double(n);
    const double snr = rng.uniform(a.noise_snr_db, a.noise_snr_db + 20);
    const double sd = std::sqrt(power / std::pow(10.0, snr / 10));
    for (float& v : x) v += float(sd * rng.normal());
  }
  Example e;
  e.ids = mu_law_window(x, 0, n, level_rms_);
  e.label = clip.label;
  return e;
}

}  // namespace longseq
