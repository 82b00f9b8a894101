// `longseq train --task audio-classify` and `longseq classify-audio` end to end on tones made with
// sox: a small raw-audio Mamba classifier (filterbank front end) learns low vs high tones, then labels
// the segments of a longer recording (windows up to the file's end), writes CSV/JSON/Raven tables per file and
// combined (the same rows), and reports a corrupt file in one line while classifying the rest.
#include "core/backend.h"
#include "tests/testing.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

using namespace longseq;
using namespace longseq::testing;

namespace {

bool have_sox() { return std::system("command -v sox >/dev/null 2>&1") == 0; }

void sox(const std::string& args) { ASSERT_EQ(std::system(("sox -D " + args + " >/dev/null 2>&1").c_str()), 0) << args; }

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string l; std::getline(ss, l);) out.push_back(l);
  return out;
}

// Two classes of 0.3 s tones at 8 kHz: "low" 150..390 Hz, "high" 1500..2460 Hz.
void make_tones(const TempDir& tmp) {
  for (int i = 0; i < 12; ++i) {
    std::filesystem::create_directories(tmp / "data/low");
    std::filesystem::create_directories(tmp / "data/high");
    sox(fmt::format("-n -r 8000 -c 1 -b 16 {} synth 0.3 sine {} vol 0.{}", (tmp / fmt::format("data/low/{}.wav", i)).string(), 150 + 20 * i,
                    3 + i % 6));
    sox(fmt::format("-n -r 8000 -c 1 -b 16 {} synth 0.3 sine {} vol 0.{}", (tmp / fmt::format("data/high/{}.wav", i)).string(),
                    1500 + 80 * i, 3 + i % 6));
  }
}

}  // namespace

TEST(AudioCli, TrainThenClassifySegments) {
  if (!have_sox()) GTEST_SKIP() << "sox not installed (scripts/setup installs it)";
  TempDir tmp;
  make_tones(tmp);
  const auto out = tmp / "run";
  const auto t = run_cli(fmt::format(
      "--threads 2 train --task audio-classify --data {} -o {} --sample-rate 8000 --clip-seconds 0.256 --pool 64 --frame 128 --filters 16 "
      "--n-layer 2 --d-model 16 --steps 60 --batch 8 --lr 1e-2 --warmup 5 --log-every 20 --eval-every 0 --val-fraction 0.25 --seed 3",
      (tmp / "data").string(), out.string()));
  ASSERT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.err.find("validation: accuracy 1.0000"), std::string::npos) << t.err << t.out;
  const std::string metrics = read_all(out / "metrics.jsonl");
  const auto last = nlohmann::json::parse(lines_of(metrics).back());
  ASSERT_TRUE(last.contains("val_confusion")) << metrics;
  EXPECT_EQ(last["val_confusion"], (nlohmann::json{{3, 0}, {0, 3}}));  // labels sorted: high, low
  const auto cfg = nlohmann::json::parse(read_all(out / "model/config.json"));
  EXPECT_EQ(cfg["longseq_audio"]["sample_rate"], 8000);
  EXPECT_EQ(cfg["longseq_audio"]["clip_samples"], 2048);
  EXPECT_EQ(cfg["longseq_audio"]["frontend"]["filters"], 16);
  EXPECT_EQ(cfg["longseq_audio"]["level_rms"], 0.1);  // the default
  EXPECT_NE(t.err.find("fixed 16 filterbank bands over 128-sample frames"), std::string::npos) << t.err;

  // A 2.5 s recording: low 0-1 s, high 1-2 s, low 2-2.5 s (44.1 kHz stereo: resampled, downmixed).
  std::filesystem::create_directories(tmp / "rec/sub");
  sox("-n -r 44100 -c 2 -b 16 " + (tmp / "a.wav").string() + " synth 1 sine 250 vol 0.5");
  sox("-n -r 44100 -c 2 -b 16 " + (tmp / "b.wav").string() + " synth 1 sine 2000 vol 0.5");
  sox("-n -r 44100 -c 2 -b 16 " + (tmp / "c.wav").string() + " synth 0.5 sine 300 vol 0.5");
  sox((tmp / "a.wav").string() + " " + (tmp / "b.wav").string() + " " + (tmp / "c.wav").string() + " " + (tmp / "rec/long.flac").string());
  sox("-n -r 8000 -c 1 -b 16 " + (tmp / "rec/sub/short.wav").string() + " synth 0.1 sine 2200 vol 0.5");
  std::ofstream(tmp / "rec/broken.wav") << "RIFF\x10\0\0\0WAVEfmt garbage";

  const auto res = tmp / "res";
  const auto r = run_cli(fmt::format("--threads 2 classify-audio -m {} {} --recursive --format csv,json,raven -o {}",
                                     (out / "model").string(), (tmp / "rec").string(), res.string()));
  EXPECT_NE(r.exit_code, 0);  // broken.wav failed ...
  EXPECT_NE(r.err.find("broken.wav"), std::string::npos) << r.err;
  const auto csv = lines_of(read_all(res / "long.csv"));  // ... and the others were classified
  ASSERT_EQ(csv.size(), 1u + 10u) << read_all(res / "long.csv");  // 9 windows of 0.256 s + the tail aligned to 2.5 s
  EXPECT_EQ(csv[0], "file,start,end,label,confidence");
  EXPECT_NE(csv[1].find(",0.000,0.256,low,"), std::string::npos) << csv[1];
  EXPECT_NE(csv[6].find(",1.280,1.536,high,"), std::string::npos) << csv[6];
  EXPECT_NE(csv[10].find(",2.244,2.500,low,"), std::string::npos) << csv[10];
  const auto json = nlohmann::json::parse(read_all(res / "long.json"));
  EXPECT_EQ(json.size(), 10u);
  const auto raven = lines_of(read_all(res / "long.selections.txt"));
  ASSERT_EQ(raven.size(), 11u);
  EXPECT_TRUE(raven[0].starts_with("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)"));
  const auto short_csv = lines_of(read_all(res / "short.csv"));
  ASSERT_EQ(short_csv.size(), 2u);  // shorter than a window: one padded window
  EXPECT_NE(short_csv[1].find(",0.000,0.100,high,"), std::string::npos) << short_csv[1];
  const auto sidecar = nlohmann::json::parse(read_all(res / "classify-audio.json"));
  EXPECT_EQ(sidecar["failed"].size(), 1u);

  // --combine: one table holding the per-file rows in file order; --threads does not change them.
  const auto comb = tmp / "comb";
  const auto c = run_cli(fmt::format("--threads 1 classify-audio -m {} {} {} --combine --batch 3 -o {}", (out / "model").string(),
                                     (tmp / "rec/long.flac").string(), (tmp / "rec/sub/short.wav").string(), comb.string()));
  ASSERT_EQ(c.exit_code, 0) << c.err;
  const auto all = lines_of(read_all(comb / "results.csv"));
  std::vector<std::string> expect = csv;
  expect.push_back(short_csv[1]);
  EXPECT_EQ(all, expect);

  // --list-inputs: the recordings a run would classify, in its order (what pipelines/ shards).
  const auto listed = run_cli(fmt::format("classify-audio -m {} {} --recursive --list-inputs", (out / "model").string(), (tmp / "rec").string()));
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(lines_of(listed.out), (std::vector<std::string>{(tmp / "rec/broken.wav").string(), (tmp / "rec/long.flac").string(),
                                                             (tmp / "rec/sub/short.wav").string()}));

  // --skip-existing leaves finished files alone; a token model is refused in one line.
  const auto again = run_cli(fmt::format("classify-audio -m {} {} --skip-existing -o {}", (out / "model").string(),
                                         (tmp / "rec/long.flac").string(), res.string()));
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("1 skipped"), std::string::npos) << again.err;

  // Trained on tones at 0.3..0.8 of full scale, the model still labels tones 30 dB quieter: every
  // window is brought to the model's RMS (level_rms) before encoding.
  sox("-n -r 8000 -c 1 -b 16 " + (tmp / "quiet_low.wav").string() + " synth 0.3 sine 200 vol 0.01");
  sox("-n -r 8000 -c 1 -b 16 " + (tmp / "quiet_high.wav").string() + " synth 0.3 sine 2000 vol 0.01");
  const auto q = run_cli(fmt::format("classify-audio -m {} {} {} --combine -o {}", (out / "model").string(),
                                     (tmp / "quiet_high.wav").string(), (tmp / "quiet_low.wav").string(), (tmp / "quiet").string()));
  ASSERT_EQ(q.exit_code, 0) << q.err;
  const auto quiet = lines_of(read_all(tmp / "quiet/results.csv"));
  ASSERT_EQ(quiet.size(), 5u);  // two windows per file
  EXPECT_NE(quiet[1].find("quiet_high.wav,0.000,0.256,high,"), std::string::npos) << quiet[1];
  EXPECT_NE(quiet[4].find("quiet_low.wav,0.044,0.300,low,"), std::string::npos) << quiet[4];

  // --device cuda without a GPU (and training a raw-audio model on the device) stop in one line
  // naming --device cpu, writing nothing.
  if (cuda_device_count() == 0) {
    const auto g = run_cli(fmt::format("classify-audio -m {} {} --device cuda -o {}", (out / "model").string(),
                                       (tmp / "quiet_low.wav").string(), (tmp / "gpu").string()));
    EXPECT_NE(g.exit_code, 0);
    EXPECT_NE(g.err.find("--device cpu"), std::string::npos) << g.err;
    EXPECT_FALSE(std::filesystem::exists(tmp / "gpu" / "results.csv"));
  }
}

TEST(AudioCli, BadTrainingInputFailsWithOneLine) {
  TempDir tmp;
  std::filesystem::create_directories(tmp / "empty/a");
  const auto r = run_cli(fmt::format("train --task audio-classify --data {} -o {}", (tmp / "empty").string(), (tmp / "o").string()));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("no audio files"), std::string::npos) << r.err;
  std::ofstream(tmp / "m.csv") << "path,label\nx.wav\n";
  const auto m = run_cli(fmt::format("train --task audio-classify --data {} -o {}", (tmp / "m.csv").string(), (tmp / "o").string()));
  EXPECT_NE(m.err.find("m.csv:2"), std::string::npos) << m.err;
}
