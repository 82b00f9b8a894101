// Audio decoding (libsndfile, any container it recognises) and streamed resampling (libsoxr) into
// windows, as classify-audio and the audio datasets read recordings.
#include "audio/audio_file.h"
#include "audio/windows.h"
#include "tests/fuzz/fuzz.h"

#include <algorithm>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = longseq::fuzz::write_input("in.wav", data, size);
  return longseq::fuzz::run_one([&] {
    const longseq::AudioInfo info = longseq::AudioReader::open(path).info();
    // Keep each input cheap: headers may promise hours of audio that the bytes do not hold.
    if (double(info.frames) * 16000.0 / double(std::max(info.sample_rate, 1)) > double(1 << 22) || info.frames > (int64_t(1) << 22)) return;
    longseq::for_each_window(path, 16000, info.channels > 1 ? 1 : -1, 4000, 1600, [](const longseq::SampleRange&, std::span<const float>) {});
  });
}
