// What longseq promises under bad, odd and hostile use (docs/RELIABILITY.md), end to end through the
// CLI: inputs are never modified (an output that is an input is refused before any work), outputs
// are complete or absent (also after SIGINT/SIGTERM/SIGHUP), no non-finite number is written as a
// result, every numeric option is range-checked with one line, and the same input gives the same
// bytes for any --threads. Real data: human chr20 (vt-examples) and its VCF (python-pysam-tests).
#include "core/safetensors.h"

#include "tests/testing.h"

#include <fmt/format.h>

#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

using namespace longseq;
using namespace longseq::testing;
namespace fs = std::filesystem;

namespace {

const fs::path kChr20 = "/usr/share/doc/vt/examples/ref/20.fa.gz";
const fs::path kVcf = "/usr/share/doc/python-pysam/tests/tabix_data/vcf/20.vcf.gz";

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

// A user-facing failure: non-zero exit, exactly one line on stderr besides the progress log's
// "[info]" lines, which names `what`; none of htslib's own "[E::" lines.
void expect_one_line_error(const CliResult& r, const std::string& what) {
  EXPECT_NE(r.exit_code, 0) << r.err;
  int lines = 0;
  std::istringstream in(r.err);
  for (std::string l; std::getline(in, l);) lines += l.starts_with("[info]") ? 0 : 1;
  EXPECT_EQ(lines, 1) << r.err;
  EXPECT_NE(r.err.find(what), std::string::npos) << "expected '" << what << "' in: " << r.err;
  EXPECT_EQ(r.err.find("[E::"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
}

// Hidden temp files or folders (".name.tmp...") left in `dir`.
// Hidden temp files and folders under dir. While a job still runs, entries come and go under the
// walk: a walk that loses one (an entry removed between listing and visiting) starts again.
std::vector<std::string> temp_leftovers(const fs::path& dir) {
  for (int attempt = 0;; ++attempt) {
    std::vector<std::string> out;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.starts_with(".") && name.find(".tmp") != std::string::npos) out.push_back(it->path().string());
    }
    if (!ec || attempt == 100) return out;
  }
}

// (1, L) I64 token ids, as `forward` reads them.
Tensor id_rows(const std::vector<int64_t>& ids) { return Tensor::from_ids(ids).reshape({1, int64_t(ids.size())}); }

// Sets every value of one stored tensor, rewriting the model file.
void poke_weight(const fs::path& model_dir, const std::string& tensor, float value) {
  const fs::path file = model_dir / "model.safetensors";
  std::vector<std::pair<std::string, Tensor>> tensors;
  {
    const auto f = SafetensorsFile::open(file);
    for (const auto& t : f.tensors()) tensors.emplace_back(t.name, f.view(t.name).clone());
  }
  bool found = false;
  for (auto& [name, t] : tensors)
    if (name == tensor) found = (t.fill(value), true);
  ASSERT_TRUE(found) << tensor << " not in " << file;
  write_safetensors(file, tensors, {{"format", "pt"}});
}

std::string file_bytes(const fs::path& p) { return read_all(p); }

// Real data and tiny models shared by the suite: chr20 copied into a temp folder (its index is built
// there), the pysam chr20 VCF, one random model per family, a 0.74 s recording.
class Reliability : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(kChr20) || !fs::exists(kVcf) || std::system("sox --version >/dev/null 2>&1")) return;
    dir_ = new TempDir;
    fs::copy_file(kChr20, *dir_ / "20.fa.gz");
    fs::copy_file(kChr20.string() + ".fai", *dir_ / "20.fa.gz.fai");
    fs::copy_file(kVcf, *dir_ / "in.vcf.gz");
    ASSERT_EQ(run_cli("-q init -o " + q(*dir_ / "mamba") + " --family mamba --d-model 16 --n-layer 2 --seed 1").exit_code, 0);
    ASSERT_EQ(run_cli("-q init -o " + q(*dir_ / "hyena") + " --family hyenadna --d-model 16 --n-layer 2 --max-seq-len 514 --seed 2")
                  .exit_code,
              0);
    // A small plain FASTA of real sequence (no N) for loglik, forward inputs and training.
    ASSERT_EQ(std::system(("samtools faidx " + q(*dir_ / "20.fa.gz") + " 20:1000001-1012000 | sed '1s/.*/>20/' > " +
                           q(*dir_ / "small.fa"))
                              .c_str()),
              0);
    ASSERT_EQ(std::system(("sox -n -r 16000 -b 16 " + q(*dir_ / "short.wav") + " synth 0.74 sine 440 2>/dev/null").c_str()), 0);
    // Two classes of short tones for audio training.
    for (const auto& [label, base] : {std::pair{"low", 200}, std::pair{"high", 2000}})
      for (int i = 0; i < 4; ++i) {
        fs::create_directories(*dir_ / "tones" / label);
        ASSERT_EQ(std::system(fmt::format("sox -n -r 16000 -b 16 {} synth 0.3 sine {} 2>/dev/null",
                                          q(*dir_ / "tones" / label / fmt::format("{}.wav", i)), base + 37 * i)
                                  .c_str()),
                  0);
      }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!dir_) GTEST_SKIP() << "needs vt-examples, python-pysam-tests, samtools and sox (scripts/setup installs them)";
  }
  static fs::path at(const std::string& name) { return *dir_ / name; }
  static std::string ref() { return q(at("20.fa.gz")); }
  static std::string digits() { return q(fs::path(LONGSEQ_SOURCE_DIR) / "models/digits"); }
  static TempDir* dir_;
};
TempDir* Reliability::dir_ = nullptr;

// ---- 1. an output that is an input is refused before any work -----------------------------------

TEST_F(Reliability, OutputEqualToAnInputIsRefusedAndTheInputKept) {
  TempDir t;
  const fs::path vcf = t / "x.vcf", fa = t / "x.fa", ids = t / "ids.safetensors";
  ASSERT_EQ(std::system(("bcftools view -t 20:1-3000000 " + q(at("in.vcf.gz")) + " -o " + q(vcf) + " 2>/dev/null").c_str()), 0);
  fs::copy_file(at("small.fa"), fa);
  write_safetensors(ids, {{"input_ids", id_rows({7, 8, 9, 10, 7, 7})}});
  fs::create_symlink(vcf, t / "link.vcf");
  fs::create_hard_link(fa, t / "hard.fa");
  const std::string vcf0 = file_bytes(vcf), fa0 = file_bytes(fa), ids0 = file_bytes(ids);
  const std::string m = q(at("mamba"));

  expect_one_line_error(run_cli("score-variants -r " + ref() + " -m " + m + " -i " + q(vcf) + " -o " + q(vcf)), "same file as the input");
  expect_one_line_error(run_cli("score-variants -r " + ref() + " -m " + m + " -i " + q(vcf) + " -o " + q(t / "link.vcf")),
                        "same file as the input");
  // stdin redirected from the file that -o names
  expect_one_line_error(run_cli("score-variants -r " + ref() + " -m " + m + " -i - -o " + q(vcf), vcf.string()), "same file as the input");
  expect_one_line_error(run_cli("score-variants -r " + ref() + " -m " + m + " -i " + q(vcf) + " -o " + ref()), "same file as the input");
  expect_one_line_error(run_cli("score-variants -r " + ref() + " -m " + m + " -i " + q(vcf) + " -o " + q(at("mamba/model.safetensors"))),
                        "same file as the input");
  expect_one_line_error(run_cli("loglik -m " + m + " --fasta " + q(fa) + " -o " + q(fa)), "same file as the input");
  expect_one_line_error(run_cli("loglik -m " + m + " --fasta " + q(fa) + " -o " + q(t / "hard.fa")), "same file as the input");
  expect_one_line_error(run_cli("forward -m " + m + " -i " + q(ids) + " -o " + q(ids)), "same file as the input");
  expect_one_line_error(run_cli("forward -m " + m + " -i " + q(ids) + " -o " + q(at("mamba/config.json"))), "same file as the input");
  EXPECT_EQ(file_bytes(vcf), vcf0);
  EXPECT_EQ(file_bytes(fa), fa0);
  EXPECT_EQ(file_bytes(ids), ids0);
  EXPECT_FALSE(fs::exists(fa.string() + ".fai")) << "the refused run must not index the input";
  EXPECT_TRUE(temp_leftovers(t.path()).empty());
}

TEST_F(Reliability, OutputsOfTheWrongKindAreRefusedBeforeAnyWork) {
  TempDir t;
  fs::create_directories(t / "folder");
  std::ofstream(t / "file.txt") << "x\n";
  const std::string m = q(at("mamba"));
  expect_one_line_error(run_cli("score-variants -r " + ref() + " -m " + m + " -i " + q(at("in.vcf.gz")) + " -o " + q(t / "folder")),
                        "is a folder");
  expect_one_line_error(run_cli("loglik -m " + m + " --fasta " + q(at("small.fa")) + " -o " + q(t / "folder")), "is a folder");
  expect_one_line_error(run_cli("loglik -m " + m + " --fasta " + q(at("small.fa")) + " -o " + q(t / "missing/out.tsv")),
                        "does not exist");
  expect_one_line_error(run_cli("classify-audio -m " + digits() + " " + q(at("short.wav")) + " -o " + q(t / "file.txt")),
                        "is not a folder");
  expect_one_line_error(run_cli("train --task lm -r " + q(at("small.fa")) + " -o " + q(t / "file.txt") + " --steps 1"),
                        "is not a folder");
  EXPECT_EQ(file_bytes(t / "file.txt"), "x\n");
}

TEST_F(Reliability, InitAndTrainNeverReplaceAModelSilently) {
  TempDir t;
  const fs::path model = t / "model";
  ASSERT_EQ(run_cli("-q init -o " + q(model) + " --d-model 8 --seed 3").exit_code, 0);
  const std::string weights = file_bytes(model / "model.safetensors");
  expect_one_line_error(run_cli("init -o " + q(model) + " --d-model 8 --seed 4"), "--force");
  EXPECT_EQ(file_bytes(model / "model.safetensors"), weights);
  ASSERT_EQ(run_cli("-q init -o " + q(model) + " --d-model 8 --seed 4 --force").exit_code, 0);
  EXPECT_NE(file_bytes(model / "model.safetensors"), weights);

  const std::string train = "-q train --task lm -r " + q(at("small.fa")) + " --d-model 8 --length 64 --batch 2 --steps 2 -o " + q(t / "run");
  ASSERT_EQ(run_cli(train).exit_code, 0);
  const std::string trained = file_bytes(t / "run/model/model.safetensors");
  expect_one_line_error(run_cli(train), "already holds a training run");
  EXPECT_EQ(file_bytes(t / "run/model/model.safetensors"), trained);
  const auto forced = run_cli(train + " --seed 9 --force");
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_NE(file_bytes(t / "run/model/model.safetensors"), trained);
  // --init from the folder the run would replace
  expect_one_line_error(run_cli("train --task lm -r " + q(at("small.fa")) + " --init " + q(t / "run/model") + " --steps 1 --force -o " +
                                q(t / "run")),
                        "which training replaces");
  // A run that fails before its first checkpoint leaves no folder behind.
  const auto failed = run_cli("train --task lm -r " + q(at("small.fa")) + " --contigs nope -o " + q(t / "fresh"));
  EXPECT_NE(failed.exit_code, 0);
  EXPECT_FALSE(fs::exists(t / "fresh")) << failed.err;
}

// ---- 2. non-finite weights and results ------------------------------------------------------------

TEST_F(Reliability, NonFiniteWeightsAreRefusedAtLoadNamingTheTensor) {
  TempDir t;
  for (const char* family : {"mamba", "hyena"}) {
    const fs::path m = t / family;
    fs::copy(at(family), m);
    const std::string tensor = std::string(family) == "mamba" ? "backbone.norm_f.weight" : "hyena.backbone.ln_f.weight";
    poke_weight(m, tensor, std::nanf(""));
    expect_one_line_error(run_cli("loglik -m " + q(m) + " --text ACGTACGTTG"), "'" + tensor + "' holds a non-finite value");
    expect_one_line_error(
        run_cli("score-variants -r " + ref() + " -m " + q(m) + " -i " + q(at("in.vcf.gz")) + " -o " + q(t / "out.vcf")),
        "non-finite");
    EXPECT_FALSE(fs::exists(t / "out.vcf"));
    poke_weight(m, tensor, -INFINITY);
    write_safetensors(t / "ids.safetensors", {{"input_ids", id_rows({7, 8, 9})}});
    expect_one_line_error(run_cli("forward -m " + q(m) + " -i " + q(t / "ids.safetensors") + " -o " + q(t / "o.safetensors")),
                          "'" + tensor + "' holds a non-finite value (-inf");
    EXPECT_FALSE(fs::exists(t / "o.safetensors"));
  }
}

TEST_F(Reliability, AnOverflowInsideTheModelIsNeverWrittenAsAScore) {
  TempDir t;
  const fs::path m = t / "m";
  fs::copy(at("mamba"), m);
  poke_weight(m, "backbone.norm_f.weight", 3e38f);  // finite, but the logits overflow to inf
  const auto scored = run_cli("score-variants -r " + ref() + " -m " + q(m) + " -i " + q(at("in.vcf.gz")) +
                              " --regions 20:1-2000000 --window 64 -O t -o " + q(t / "s.tsv"));
  ASSERT_EQ(scored.exit_code, 0) << scored.err;
  const std::string tsv = file_bytes(t / "s.tsv");
  EXPECT_NE(tsv.find("non_finite"), std::string::npos) << tsv;
  EXPECT_EQ(tsv.find("nan"), std::string::npos) << tsv;
  EXPECT_EQ(tsv.find("inf"), std::string::npos) << tsv;
  EXPECT_NE(scored.err.find("non_finite"), std::string::npos) << "the summary counts the reason: " << scored.err;
  const auto ll = run_cli("loglik -m " + q(m) + " --text ACGTACGTTGCA -o " + q(t / "ll.tsv"));
  expect_one_line_error(ll, "non-finite log-probability");
  EXPECT_FALSE(fs::exists(t / "ll.tsv"));
}

// ---- 3. threads -------------------------------------------------------------------------------------

TEST_F(Reliability, ThreadCountsAreBoundedAndThreadFailuresAreErrors) {
  for (const char* n : {"100000", "40000", "-1", "1025"})
    expect_one_line_error(run_cli(std::string("--threads ") + n + " info --no-tensors " + q(at("mamba"))), "--threads");
  EXPECT_EQ(run_cli("--threads 1024 info --no-tensors " + q(at("mamba"))).exit_code, 0);
  // Thread stacks that cannot be mapped (an address-space limit): one line, no temp file, no crash.
#if defined(__SANITIZE_ADDRESS__)  // gcc
  GTEST_SKIP() << "AddressSanitizer's shadow memory cannot run under an address-space limit";
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)  // clang
  GTEST_SKIP() << "AddressSanitizer's shadow memory cannot run under an address-space limit";
#endif
#endif
  TempDir t;
  const std::string cmd = "bash -c \"ulimit -v 3000000; " + std::string(std::getenv("LONGSEQ_BIN") ? std::getenv("LONGSEQ_BIN") : LONGSEQ_BIN_PATH) +
                          " --threads 1000 loglik -m " + q(at("mamba")) + " --text ACGTACGT -o " + q(t / "o.tsv") + "\" 2>" +
                          q(t / "err");
  const int status = std::system(cmd.c_str());
  const std::string err = file_bytes(t / "err");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << err;
  EXPECT_NE(err.find("cannot start 1000 threads"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(t / "o.tsv"));
  EXPECT_TRUE(temp_leftovers(t.path()).empty());
}

// Every family and command that promises it: byte-identical output for 1, 2, 3 and 7 threads
// (training: the final weights, for DNA language models, DNA classifiers and audio classifiers).
TEST_F(Reliability, SameBytesForAnyThreadCount) {
  TempDir t;
  write_safetensors(t / "ids.safetensors",
                    {{"input_ids", id_rows({7, 8, 9, 10, 7, 7, 8, 10, 9, 9, 8, 7, 10, 8, 7, 7, 9})}});
  std::ofstream(t / "cls.tsv") << "ACGTACGTACGTAAAAC\ta\nTTTTGGGGCCCCAAAAG\tb\nACGTTTGACCAGTAAAC\ta\nGGGGCCCCAAAATTTTG\tb\n"
                                  "ACGAACGTACGTAAATC\ta\nTTTTGGCGCCCCAAAAG\tb\n";
  std::map<std::string, std::string> first;
  for (const int n : {1, 2, 3, 7}) {
    const std::string th = fmt::format("-q --threads {} ", n), dir = (t / fmt::format("t{}", n)).string();
    fs::create_directories(dir);
    for (const char* family : {"mamba", "hyena"}) {
      // The shipped chr20 models (d_model 128, MLP 512): products deep enough that a K-blocking chosen
      // from the thread count changes the rounding (tiny models hide it).
      const std::string f = family, m = q(fs::path(LONGSEQ_SOURCE_DIR) / "models" / ("chr20-" + f));
      ASSERT_EQ(run_cli(th + "score-variants -r " + ref() + " -m " + m + " -i " + q(at("in.vcf.gz")) +
                        " --regions 20:1-6000000 --window 512 --batch 7 -o " + dir + "/" + f + ".vcf")
                    .exit_code,
                0);
      ASSERT_EQ(run_cli(th + "loglik -m " + m + " --fasta " + q(at("small.fa")) + " --region 20:1-500 -o " + dir + "/" + f +
                        ".ll")
                    .exit_code,
                0);
      ASSERT_EQ(run_cli(th + "forward -m " + m + " -i " + q(t / "ids.safetensors") + " --hidden -o " + dir + "/" + f + ".st").exit_code,
                0);
      ASSERT_EQ(run_cli(th + "train --task lm -r " + q(at("small.fa")) + " --family " + (f == "mamba" ? "mamba" : "hyenadna") +
                        " --d-model 8 --length 64 --batch 4 --steps 2 -o " + dir + "/" + f + "-run")
                    .exit_code,
                0);
    }
    ASSERT_EQ(run_cli(th + "train --task classify --data " + q(t / "cls.tsv") + " --d-model 8 --batch 4 --steps 2 --val-fraction 0.3 -o " +
                      dir + "/cls-run")
                  .exit_code,
              0);
    ASSERT_EQ(run_cli(th + "classify -m " + dir + "/cls-run/model " + q(t / "cls.tsv") + " -o " + dir + "/cls.tsv").exit_code, 0);
    ASSERT_EQ(run_cli(th + "train --task audio-classify --data " + q(at("tones")) +
                      " --d-model 8 --n-layer 1 --clip-seconds 0.2 --filters 16 --batch 4 --steps 2 --val-fraction 0.25 -o " + dir +
                      "/audio-run")
                  .exit_code,
              0);
    ASSERT_EQ(run_cli(th + "classify-audio -m " + digits() + " " + q(at("short.wav")) + " --window 0.25 --hop 0.1 --top-k 3 --combine -o " +
                      dir + "/audio")
                  .exit_code,
              0);
    for (const std::string out : {"mamba.vcf", "hyena.vcf", "mamba.ll", "hyena.ll", "mamba.st", "hyena.st",
                                  "mamba-run/model/model.safetensors", "hyena-run/model/model.safetensors",
                                  "cls-run/model/model.safetensors", "cls.tsv", "audio/results.csv",
                                  "audio-run/model/model.safetensors"}) {
      std::string bytes = file_bytes(fs::path(dir) / out);
      if (out.ends_with(".vcf"))  // the provenance header line names the command, --threads included
        bytes.erase(bytes.find("##longseqCommand"), bytes.find('\n', bytes.find("##longseqCommand")) - bytes.find("##longseqCommand"));
      ASSERT_FALSE(bytes.empty()) << out;
      if (n == 1)
        first[out] = bytes;
      else
        EXPECT_TRUE(bytes == first[out]) << out << " differs between --threads 1 and --threads " << n;
    }
  }
}

// ---- 4. signals leave nothing behind ----------------------------------------------------------------

TEST_F(Reliability, SignalsRemoveTempOutputsAndEndWithTheSignal) {
  const std::string bin = std::getenv("LONGSEQ_BIN") ? std::getenv("LONGSEQ_BIN") : LONGSEQ_BIN_PATH;
  for (const int sig : {SIGINT, SIGTERM, SIGHUP}) {
    for (const std::string job : {"score", "train"}) {
      TempDir t;
      const std::string args =
          job == "score" ? "-q score-variants -r " + ref() + " -m " + q(at("hyena")) + " -i " + q(at("in.vcf.gz")) + " --window 512 -o " +
                               q(t / "out.vcf.gz")
                         : "-q train --task lm -r " + q(at("small.fa")) + " --d-model 16 --length 256 --batch 2 --steps 100000 --save-every 1 -o " +
                               q(t / "run");
      const pid_t pid = fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        execl("/bin/sh", "sh", "-c", ("exec " + bin + " " + args + " 2>/dev/null").c_str(), (char*)nullptr);
        _exit(127);
      }
      // Wait until a temp output exists, then signal.
      bool seen = false;
      for (int i = 0; i < 400 && !seen; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
        seen = !temp_leftovers(t.path()).empty();
      }
      kill(pid, sig);
      int status = 0;
      waitpid(pid, &status, 0);
      EXPECT_TRUE(seen) << job << ": no temp output appeared";
      EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == sig) << job << " status " << status;
      EXPECT_TRUE(temp_leftovers(t.path()).empty()) << job << ": " << fmt::format("{}", fmt::join(temp_leftovers(t.path()), ", "));
      EXPECT_FALSE(fs::exists(t / "out.vcf.gz"));
    }
  }
}

// ---- 5. windows -----------------------------------------------------------------------------------

TEST_F(Reliability, AudioWindowsAreBoundedByTheRecording) {
  TempDir t;
  const auto r = run_cli("classify-audio -m " + digits() + " " + q(at("short.wav")) + " --window 10000 --combine -o " + q(t / "o"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string csv = file_bytes(t / "o/results.csv");
  EXPECT_NE(csv.find(",0.000,0.740,"), std::string::npos) << csv;  // one window, ending at the file's end
  expect_one_line_error(run_cli("classify-audio -m " + digits() + " " + q(at("short.wav")) + " --window 1e9 -o " + q(t / "o")), "--window");
  expect_one_line_error(run_cli("classify-audio -m " + digits() + " " + q(at("short.wav")) + " --channel -1 -o " + q(t / "o")), "--channel");
}

TEST_F(Reliability, DnaWindowsPastTheContigWarnAndHugeOnesAreRefused) {
  TempDir t;
  const std::string base = "score-variants -r " + q(at("small.fa")) + " -m " + q(at("mamba")) + " -i " + q(t / "v.vcf") + " -O t -o " + q(t / "o.tsv");
  std::ofstream(t / "v.vcf") << "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n";
  std::string seq = file_bytes(at("small.fa"));
  seq = seq.substr(seq.find('\n') + 1);
  std::erase(seq, '\n');
  std::ofstream(t / "v.vcf", std::ios::app) << fmt::format("20\t100\t.\t{}\t{}\t.\t.\t.\n20\t150\t.\t{}\t{}\t.\t.\t.\n", seq[99],
                                                            seq[99] == 'A' ? 'C' : 'A', seq[149], seq[149] == 'G' ? 'T' : 'G');
  const auto warned = run_cli(base + " --window 20000");
  ASSERT_EQ(warned.exit_code, 0) << warned.err;
  EXPECT_NE(file_bytes(t / "o.tsv").find("\tscored"), std::string::npos) << file_bytes(t / "o.tsv");
  size_t n = 0;
  for (size_t p = 0; (p = warned.err.find("longer than contig", p)) != std::string::npos; ++p) ++n;
  EXPECT_EQ(n, 1u) << "warned once per contig: " << warned.err;
  expect_one_line_error(run_cli("score-variants -r " + ref() + " -m " + q(at("mamba")) + " -i " + q(at("in.vcf.gz")) + " --window 1e12 -o " +
                                q(t / "o2.vcf")),
                        "--allow-large");
  EXPECT_FALSE(fs::exists(t / "o2.vcf"));
}

// ---- 6. every numeric option is range-checked in one line --------------------------------------------

TEST_F(Reliability, NumericOptionsOutsideTheirRangeFailInOneLine) {
  TempDir t;
  const std::string m = q(at("mamba")), sv = "score-variants -r " + ref() + " -m " + m + " -i " + q(at("in.vcf.gz")) + " -o " + q(t / "o.vcf") + " ";
  const std::string tr = "train --task lm -r " + q(at("small.fa")) + " -o " + q(t / "run") + " ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {sv + "--window 1", "--window"},          {sv + "--window -5", "--window"},       {sv + "--batch 0", "--batch"},
      {sv + "--max-n-fraction 2", "--max-n-fraction"}, {sv + "--max-n-fraction nan", "--max-n-fraction"},
      {"loglik -m " + m + " --text ACGT --chunk 0", "--chunk"},
      {"forward -m " + m + " -i x -o y --chunk -1", "--chunk"},
      {"init -o " + q(t / "i") + " --d-inner -5", "--d-inner"}, {"init -o " + q(t / "i") + " --d-model 0", "--d-model"},
      {"init -o " + q(t / "i") + " --n-layer 100000", "--n-layer"}, {"init -o " + q(t / "i") + " --vocab 0", "--vocab"},
      {tr + "--lr 0", "--lr"},                  {tr + "--lr inf", "--lr"},              {tr + "--batch 0", "--batch"},
      {tr + "--steps -3", "--steps"},           {tr + "--length -1", "--length"},       {tr + "--clip -1", "--clip"},
      {tr + "--val-fraction 1.5", "--val-fraction"}, {tr + "--beta2 2", "--beta2"},     {tr + "--max-minutes -1", "--max-minutes"},
      {tr + "--pool 0", "--pool"},              {tr + "--clip-seconds 0", "--clip-seconds"},
      {"classify-audio -m " + digits() + " x.wav --hop 0 -o " + q(t / "a"), "--hop"},
      {"classify-audio -m " + digits() + " x.wav --min-conf 1.5 -o " + q(t / "a"), "--min-conf"},
      {"classify-audio -m " + digits() + " x.wav --top-k 0 -o " + q(t / "a"), "--top-k"},
      {"classify -m " + m + " x.fa --crop -1", "--crop"},
  };
  for (const auto& [args, what] : cases) {
    SCOPED_TRACE(args);
    expect_one_line_error(run_cli(args), what);
  }
  EXPECT_FALSE(fs::exists(t / "run"));
  EXPECT_FALSE(fs::exists(t / "i"));
}

// ---- 7. smaller ones ---------------------------------------------------------------------------------

TEST_F(Reliability, CorruptInputsGiveOneLineWithoutHtslibChatter) {
  TempDir t;
  const std::string vcf = file_bytes(at("in.vcf.gz"));
  std::ofstream(t / "cut.vcf.gz", std::ios::binary) << vcf.substr(0, vcf.size() / 2);
  std::ofstream(t / "junk.vcf") << "this is not a VCF\n";
  std::ofstream(t / "bad.fa") << ">x\nACGT\nAC\nACGT\n";  // lines of different lengths: faidx cannot index it
  const std::string m = q(at("mamba"));
  for (const char* in : {"cut.vcf.gz", "junk.vcf"}) {
    const auto r = run_cli("score-variants -r " + ref() + " -m " + m + " -i " + q(t / in) + " -o " + q(t / "o.vcf"));
    expect_one_line_error(r, in);
  }
  expect_one_line_error(run_cli("loglik -m " + m + " --fasta " + q(t / "bad.fa") + " --region x"), "bad.fa");
  {  // AddressSanitizer aborts on an allocation this large unless told to fail it as the C++ runtime does
    const char* env = std::getenv("ASAN_OPTIONS");
    const std::string saved = env ? env : "";
    setenv("ASAN_OPTIONS", (saved + (saved.empty() ? "" : ":") + "allocator_may_return_null=1").c_str(), 1);
    const auto huge = run_cli("init -o " + q(t / "huge") + " --d-model 65536 --n-layer 1024 --vocab 16777216");
    EXPECT_NE(huge.exit_code, 0);
    // one line of longseq's (AddressSanitizer adds a "==PID==WARNING" line of its own)
    EXPECT_NE(huge.err.find("longseq: error: out of memory (the weights do not fit in memory: use a smaller --d-model"), std::string::npos)
        << huge.err;
    EXPECT_EQ(std::count(huge.err.begin(), huge.err.end(), '\n') - (huge.err.starts_with("==") ? 1 : 0), 1) << huge.err;
    if (env)
      setenv("ASAN_OPTIONS", saved.c_str(), 1);
    else
      unsetenv("ASAN_OPTIONS");
  }
  EXPECT_FALSE(fs::exists(t / "huge"));
  EXPECT_FALSE(fs::exists(t / "o.vcf"));
  EXPECT_TRUE(temp_leftovers(t.path()).empty());
}

}  // namespace
