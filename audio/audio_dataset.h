// Labelled audio clips for `longseq train --task audio-classify`: a folder with one sub-folder of
// recordings per class, or a manifest CSV `path,label[,start,end]` (seconds; paths relative to the
// manifest). Clips are decoded and resampled once, kept as float samples at the model's rate, and
// each training example is drawn from (seed, step, index) alone (exact resume) with augmentation:
// gain, time shift, added noise and a small speed change. The model reads 8-bit mu-law codes.
#pragma once

#include "core/data/task.h"

#include <filesystem>
#include <string>
#include <vector>

namespace longseq {

struct AudioClip {
  std::filesystem::path path;
  std::string label;
  double start = 0, end = -1;  // seconds; end < 0: to the end of the file
};

// Sorted by label, then path. Throws naming the folder or manifest line and the fix.
std::vector<AudioClip> read_audio_clips(const std::filesystem::path& data, const std::vector<std::string>& extensions);

// The audio extensions libsndfile reads (lower case, without the dot).
const std::vector<std::string>& default_audio_extensions();

// 8-bit mu-law (mu = 255) of a sample in [-1, 1] (clipped): code 0..255, 128 near silence.
int64_t mu_law_encode(float x);

struct AudioAugment {
  bool enabled = true;
  double gain_db = 6;       // uniform in [-gain_db, +gain_db]
  double shift_seconds = 0.1;  // circular shift within the clip, uniform in [-s, +s]
  double noise_snr_db = 20;    // white noise at an SNR uniform in [noise_snr_db, noise_snr_db + 20] (half the examples)
  double speed = 0.05;         // resampling by a factor uniform in [1 - speed, 1 + speed] (linear interpolation)
  double tilt = 0.7;           // x[i] + a x[i-1], a uniform in [-tilt, tilt]: a random spectral slope (other
                               // microphones, rooms, soundfonts), up to +-15 dB between low and high bands
};

class AudioClassifyTask final : public TrainTask {
 public:
  // Decodes every clip (resampled to sample_rate) and fits it to clip_samples: longer clips are
  // cropped (training: at a random offset per example; validation: centred), shorter ones padded
  // with silence. labels: class names in id order. level_rms: see mu_law_window (the model's).
  AudioClassifyTask(const std::vector<AudioClip>& train, const std::vector<AudioClip>& val, const std::vector<std::string>& labels,
                    int sample_rate, int64_t clip_samples, const AudioAugment& augment, double level_rms = 0);
  Example sample(uint64_t seed, int64_t step, int64_t index) const override;
  const std::vector<Example>& validation() const override { return val_; }
  bool classification() const override { return true; }
  std::string token_unit() const override { return "sample"; }
  int64_t train_clips() const { return int64_t(train_.size()); }

 private:
  struct Clip {
    std::vector<float> samples;
    int64_t label;
  };
  std::vector<Clip> train_;
  std::vector<Example> val_;
  int64_t clip_samples_;
  double rate_, level_rms_;
  AudioAugment augment_;
};

// mu-law codes of samples[offset, offset + n), zero-padded past the end. level_rms > 0 first scales
// the window to that RMS (gain at most kMaxLevelGain, so near-silence stays quiet): a model then sees
// recordings at one level whatever their gain, and the 8-bit codes use their whole range.
inline constexpr double kMaxLevelGain = 100.0;
std::vector<int64_t> mu_law_window(const std::vector<float>& samples, int64_t offset, int64_t n, double level_rms = 0);

}  // namespace longseq
