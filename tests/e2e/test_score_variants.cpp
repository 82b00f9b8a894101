// `longseq score-variants` end to end on real data from Debian packages: human GRCh37 chr20
// (vt-examples) with the real chr20 VCFs of python-pysam-tests and vt-examples, htslib-test's edge
// cases, and hand-made bad input. Small random-weight models of both families (mechanics, not
// biology). bcftools must accept every output; record order and content are preserved.
#include "core/backend.h"
#include "tests/testing.h"

#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

using namespace longseq::testing;

namespace {

const std::filesystem::path kChr20 = "/usr/share/doc/vt/examples/ref/20.fa.gz";
const std::filesystem::path kPysam = "/usr/share/doc/python-pysam/tests/tabix_data/vcf";
const std::filesystem::path kVtNormalize = "/usr/share/doc/vt/examples/normalize/01_IN.vcf.gz";
const std::filesystem::path kHtslibTest = "/usr/share/htslib-test/test";

// The reference copied once into a temp folder (its index is built there, never in /usr/share), and
// one tiny model per family.
class ScoreVariantsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(kChr20) || !std::filesystem::exists(kPysam) || std::system("bcftools --version >/dev/null 2>&1"))
      return;
    dir_ = new TempDir;
    std::filesystem::copy_file(kChr20, *dir_ / "20.fa.gz");
    std::filesystem::copy_file(kChr20.string() + ".fai", *dir_ / "20.fa.gz.fai");
    ASSERT_EQ(run_cli("-q init -o " + (*dir_ / "mamba").string() + " --family mamba --d-model 16 --n-layer 2 --seed 1").exit_code, 0);
    ASSERT_EQ(run_cli("-q init -o " + (*dir_ / "hyena").string() +
                      " --family hyenadna --d-model 16 --n-layer 2 --max-seq-len 258 --seed 2")
                  .exit_code,
              0);
    ASSERT_EQ(run_cli("-q init -o " + (*dir_ / "caduceus").string() + " --family caduceus --d-model 16 --n-layer 2 --seed 3").exit_code, 0);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (!dir_) GTEST_SKIP() << "needs vt-examples, python-pysam-tests and bcftools (scripts/setup installs them)";
  }
  static std::string ref() { return (*dir_ / "20.fa.gz").string(); }
  static std::string model(const std::string& family) { return (*dir_ / family).string(); }
  // score-variants with the common options; returns the CLI result.
  static CliResult score(const std::string& family, const std::string& args, const std::string& stdin_path = "/dev/null") {
    return run_cli("score-variants -r " + ref() + " -m " + model(family) + " --window 256 " + args, stdin_path);
  }
  static TempDir* dir_;
};
TempDir* ScoreVariantsTest::dir_ = nullptr;

std::map<std::string, int> status_counts(const std::string& tsv) {
  std::map<std::string, int> n;
  for (const auto& l : lines(tsv)) {
    if (l.empty() || l[0] == '#') continue;
    ++n[l.substr(l.rfind('\t') + 1)];
  }
  return n;
}

}  // namespace

TEST_F(ScoreVariantsTest, RealSnvsToIndexedVcfGzKeepEveryRecord) {
  TempDir t;
  const std::string in = (kPysam / "20.vcf.gz").string(), out = (t / "out.vcf.gz").string();
  const auto r = score("mamba", "-i " + in + " -o " + out + " --write-index");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("300 records"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("300 scored"), std::string::npos) << r.err;
  ASSERT_TRUE(std::filesystem::exists(out + ".tbi"));
  EXPECT_EQ(sh("bcftools index -n " + out), "300\n");
  EXPECT_EQ(sh("bcftools view -H -r 20:1-1000000 " + out).empty(), false);  // the index answers region queries
  // Same records, same order, unchanged apart from the new tag.
  EXPECT_EQ(sh("bcftools annotate -x INFO/LONGSEQ_DLL " + out + " | bcftools view -H"), sh("bcftools view -H " + in));
  const auto scores = lines(sh("bcftools query -f '%LONGSEQ_DLL\\n' " + out));
  ASSERT_EQ(scores.size(), 300u);
  for (const auto& s : scores) EXPECT_NE(s, ".");
  const int neg = int(lines(sh("bcftools view -H -i 'LONGSEQ_DLL<0' " + out)).size());
  const int nonneg = int(lines(sh("bcftools view -H -e 'LONGSEQ_DLL<0' " + out)).size());
  EXPECT_EQ(neg + nonneg, 300);
  EXPECT_GT(neg, 0);
  EXPECT_GT(nonneg, 0);
  const std::string header = sh("bcftools view -h " + out);
  EXPECT_NE(header.find("##contig=<ID=20,length=63025520>"), std::string::npos);  // the input has no ##contig lines
  EXPECT_NE(header.find("##INFO=<ID=LONGSEQ_DLL,Number=A,Type=Float"), std::string::npos);
  EXPECT_NE(header.find("##longseqVersion="), std::string::npos);
  EXPECT_NE(header.find("##longseqCommand=longseq score-variants"), std::string::npos);
}

TEST_F(ScoreVariantsTest, InputFormatsThreadsAndBatchesGiveTheSameScores) {
  TempDir t;
  // vt's indels (a header that declares everything, so it converts to BCF): VCF, VCF.gz, BCF, stdin.
  const std::string vt = kVtNormalize.string();
  sh("bcftools view -O v -o " + (t / "in.vcf").string() + " " + vt);
  sh("bcftools view -O b -o " + (t / "in.bcf").string() + " " + vt);
  const auto vt_want = score("mamba", "-i " + vt + " -O t");
  ASSERT_EQ(vt_want.exit_code, 0) << vt_want.err;
  EXPECT_EQ(status_counts(vt_want.out).at("scored"), 194);
  for (const std::string& variant : {"-i " + (t / "in.vcf").string(), "-i " + (t / "in.bcf").string(), std::string("-i -")}) {
    const auto got = score("mamba", variant + " -O t", vt);
    ASSERT_EQ(got.exit_code, 0) << variant << ": " << got.err;
    EXPECT_EQ(got.out, vt_want.out) << variant;
  }
  // pysam's 2.vcf (SNVs, indels, multi-allelic sites): any thread count and batch size.
  const std::string gz = (kPysam / "2.vcf.gz").string();
  const auto want = score("mamba", "-i " + gz + " -O t --threads 2 --batch 64");
  ASSERT_EQ(want.exit_code, 0) << want.err;
  for (const char* variant : {"--threads 1 --batch 1", "--threads 2 --batch 7", "--threads 1 --batch 1000"}) {
    const auto got = score("mamba", "-i " + gz + " -O t " + variant);
    ASSERT_EQ(got.exit_code, 0) << variant << ": " << got.err;
    EXPECT_EQ(got.out, want.out) << variant;
  }
  // Every ALT is either scored or counted in a reason: one TSV row per ALT.
  int alts = 0;
  for (const auto& l : lines(sh("bcftools query -f '%ALT\\n' " + gz))) alts += 1 + int(std::count(l.begin(), l.end(), ','));
  const auto counts = status_counts(want.out);
  int rows = 0;
  for (const auto& [k, n] : counts) rows += n;
  EXPECT_EQ(rows, alts);
  EXPECT_GT(counts.at("scored"), alts / 2);
  EXPECT_NE(want.err.find(fmt::format("{} ALT alleles", alts)), std::string::npos) << want.err;
}

TEST_F(ScoreVariantsTest, HyenaIndelsToBcfAndUndeclaredTagsNeedVcfOutput) {
  TempDir t;
  // vt's normalize input declares its contigs and tags: BCF output works and bcftools reads it.
  const std::string bcf = (t / "vt.bcf").string();
  const auto r = score("hyena", "-i " + kVtNormalize.string() + " -o " + bcf + " --write-index --per-strand --reduce mean");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(bcf + ".csi"));
  EXPECT_EQ(sh("bcftools view -H " + bcf + " | wc -l"), sh("bcftools view -H " + kVtNormalize.string() + " | wc -l"));
  const auto q = lines(sh("bcftools query -f '%LONGSEQ_DLL %LONGSEQ_DLL_FWD %LONGSEQ_DLL_REV\\n' " + bcf));
  int checked = 0;
  for (const auto& l : q) {
    double s, f, rv;
    if (std::sscanf(l.c_str(), "%lf %lf %lf", &s, &f, &rv) == 3) {
      EXPECT_NEAR(s, 0.5 * (f + rv), 1e-5 + 1e-5 * std::abs(s)) << l;
      ++checked;
    }
  }
  EXPECT_GT(checked, 100);
  // pysam's 2.vcf uses INFO tags its header does not declare: VCF output is fine, BCF is refused
  // with a hint, and nothing is left behind.
  const std::string bad = (t / "two.bcf").string();
  const auto refused = score("hyena", "-i " + (kPysam / "2.vcf.gz").string() + " -o " + bad);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("write VCF"), std::string::npos) << refused.err;
  EXPECT_FALSE(std::filesystem::exists(bad));
  EXPECT_EQ(score("hyena", "-i " + (kPysam / "2.vcf.gz").string() + " -o " + (t / "two.vcf.gz").string()).exit_code, 0);
}

TEST_F(ScoreVariantsTest, BadRecordsAreCountedByReasonAndStrictStops) {
  TempDir t;
  const std::string vcf = (t / "hand.vcf").string();
  {
    std::ofstream f(vcf);
    f << "##fileformat=VCFv4.2\n"
         "##contig=<ID=chr20>\n##contig=<ID=chrZ>\n"
         "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
         "chr20\t207414\tgood\tG\tA\t.\t.\t.\n"
         "chr20\t207414\tmismatch\tT\tA\t.\t.\t.\n"
         "chrZ\t100\tnocontig\tA\tC\t.\t.\t.\n"
         "chr20\t792106\tsymbolic\tC\t<DEL>,*,G\t.\t.\t.\n"
         "chr20\t1\tnrun\tN\tA\t.\t.\t.\n"
         "chr20\t63025520\tend\tN\tG\t.\t.\t.\n"
         "chr20\t63025521\tbeyond\tN\tG\t.\t.\t.\n";
  }
  const auto r = score("mamba", "-i " + vcf + " -O t");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto c = status_counts(r.out);
  EXPECT_EQ(c.at("ref_mismatch"), 1);
  EXPECT_EQ(c.at("missing_contig"), 1);
  EXPECT_EQ(c.at("unsupported_allele"), 2);
  EXPECT_EQ(c.at("too_many_n"), 2);
  EXPECT_EQ(c.at("out_of_range"), 1);
  EXPECT_EQ(c.at("scored"), 2);
  EXPECT_NE(r.err.find("'chr20' of the VCF is '20'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ref_mismatch"), std::string::npos) << r.err;
  const std::string out = (t / "strict.vcf").string();
  const auto strict = score("mamba", "-i " + vcf + " -o " + out + " --strict");
  EXPECT_EQ(strict.exit_code, 1);
  EXPECT_NE(strict.err.find("record 2 (chr20:207414 T>A)"), std::string::npos) << strict.err;
  int error_lines = 0;
  for (const auto& l : lines(strict.err)) error_lines += l.starts_with("longseq: error:");
  EXPECT_EQ(error_lines, 1) << strict.err;
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST_F(ScoreVariantsTest, MalformedInputFailsCleanly) {
  TempDir t;
  const std::string out = (t / "o.vcf").string();
  // A header with spaces instead of tabs (a real file in python-pysam-tests).
  auto r = score("mamba", "-i " + (kPysam / "24.vcf.gz").string() + " -o " + out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot read the VCF header"), std::string::npos) << r.err;
  // A record with too few columns.
  const std::string bad = (t / "bad.vcf").string();
  {
    std::ofstream f(bad);
    f << "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n20\t207414\t.\tG\tA\t.\t.\t.\n20\tnotanumber\n";
  }
  r = score("mamba", "-i " + bad + " -o " + out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("record 2 has no valid POS or REF"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out));
  // A bgzipped VCF cut inside a block, and one cut exactly before its end-of-file block.
  const std::string whole = (t / "whole.vcf.gz").string();
  sh("bcftools view -O z -o " + whole + " " + (kPysam / "20.vcf.gz").string());
  const auto size = std::filesystem::file_size(whole);
  for (const auto cut : {size / 2, size - 28}) {  // the BGZF EOF block is 28 bytes
    std::filesystem::copy_file(whole, t / "cut.vcf.gz", std::filesystem::copy_options::overwrite_existing);
    std::filesystem::resize_file(t / "cut.vcf.gz", cut);
    r = score("mamba", "-i " + (t / "cut.vcf.gz").string() + " -o " + out);
    EXPECT_EQ(r.exit_code, 1) << cut;
    EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(out));
  }
  r = score("mamba", "-i " + (t / "missing.vcf").string() + " -o " + out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot open the input"), std::string::npos) << r.err;
  r = score("mamba", "-i " + bad + " --tag 1bad");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not a valid VCF INFO key"), std::string::npos) << r.err;
  r = run_cli("score-variants -r " + ref() + " -m " + model("hyena") + " -i " + bad + " --window 300");  // max_seq_len 258
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("longer than the model accepts"), std::string::npos) << r.err;
}

TEST_F(ScoreVariantsTest, RegionsRestrictTheOutput) {
  TempDir t;
  const std::string in = (kPysam / "20.vcf.gz").string();
  const auto want = lines(sh("bcftools view -H -t 20:1-5000000 " + in + " | cut -f2"));
  const auto a = score("mamba", "-i " + in + " -O t --strand fwd --regions 20:1-5000000");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  {
    std::ofstream bed(t / "r.bed");
    bed << "chr20\t0\t5000000\n";  // the reference's other naming is accepted too
  }
  const auto b = score("mamba", "-i " + in + " -O t --strand fwd --regions-file " + (t / "r.bed").string());
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const auto rows = lines(a.out);
  ASSERT_EQ(rows.size(), want.size() + 1);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(rows[i + 1].substr(0, rows[i + 1].find('\t', 3)), "20\t" + want[i]);
  EXPECT_EQ(a.out, b.out);
}

TEST_F(ScoreVariantsTest, HtslibEdgeCaseFilesPassThrough) {
  if (!std::filesystem::exists(kHtslibTest)) GTEST_SKIP() << "htslib-test not installed";
  for (const std::string name : {"formatcols.vcf", "formatmissing.vcf", "index.vcf", "tabix/vcf_file.vcf"}) {
    TempDir t;
    const std::string in = (kHtslibTest / name).string(), out = (t / "o.vcf").string();
    const auto r = score("mamba", "-i " + in + " -o " + out);
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    EXPECT_EQ(sh("bcftools view -H " + out + " | wc -l"), sh("bcftools view -H " + in + " | wc -l")) << name;
    EXPECT_NE(r.err.find("missing_contig"), std::string::npos) << name << ": " << r.err;  // contigs 1..22, not chr20
  }
}

TEST_F(ScoreVariantsTest, MaskedModelMethodsWriteOneTagPerFeature) {
  // A Caduceus model: llr by default; several methods give several Number=A tags and TSV columns in
  // the feature-table layout; dll is refused in one line naming the methods it can give.
  TempDir t;
  const std::string in = (kPysam / "20.vcf.gz").string(), out = (t / "o.vcf").string();
  const auto r = score("caduceus", "-i " + in + " -o " + out + " --method llr,embed-dist,inner --regions 20:1-20000000");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string header = sh("bcftools view -h " + out);
  for (const char* tag : {"LONGSEQ_LLR", "LONGSEQ_L2", "LONGSEQ_COSINE", "LONGSEQ_INNER"})
    EXPECT_NE(header.find(std::string("##INFO=<ID=") + tag + ",Number=A,Type=Float"), std::string::npos) << tag;
  const auto rows = lines(sh("bcftools query -f '%LONGSEQ_LLR %LONGSEQ_L2 %LONGSEQ_COSINE\\n' " + out));
  ASSERT_FALSE(rows.empty());
  int scored = 0;
  for (const auto& row : rows) {
    std::istringstream f(row);
    double llr = 0, l2 = -1, cosine = -1;
    if (!(f >> llr >> l2 >> cosine)) continue;  // '.': not scored
    ++scored;
    EXPECT_TRUE(std::isfinite(llr));
    EXPECT_GE(l2, 0.0);
    EXPECT_GE(cosine, -1e-6);
  }
  EXPECT_GT(scored, 50) << rows.size() << " rows";
  const auto tsv = score("caduceus", "-i " + in + " -O t --strand fwd --method llr,inner --regions 20:1-20000000");
  ASSERT_EQ(tsv.exit_code, 0) << tsv.err;
  EXPECT_EQ(lines(tsv.out).at(0), "#CHROM\tPOS\tREF\tALT\tllr\tinner\tstatus");
  const auto bad = score("caduceus", "-i " + in + " -o " + (t / "x.vcf").string() + " --method dll");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("bidirectional"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("llr, embed-dist or inner"), std::string::npos) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(t / "x.vcf"));
}

TEST_F(ScoreVariantsTest, Evo2FromItsReleasedFilesScoresEveryRecord) {
  // Evo 2's released formats as they are: config.yml + model.pt (bf16, per-head Wqkv rows) score the
  // same bytes as config.json + model.safetensors, at any thread count, through the byte-level ids.
  LONGSEQ_REQUIRE_FIXTURE(fx, "evo2_tiny");
  TempDir t;
  std::filesystem::create_directories(t / "yml");
  std::filesystem::copy_file(fx / "config.yml", t / "yml/config.yml");
  std::filesystem::copy_file(fx / "model.pt", t / "yml/model.pt");
  const std::string in = (kPysam / "20.vcf.gz").string();
  const auto run = [&](const std::filesystem::path& m, const std::string& extra) {
    // One strand and a short window: the test is about the formats, and it runs under the sanitizers too.
    const auto r = run_cli(extra + "score-variants -r " + ref() + " -m " + m.string() + " --window 64 --strand fwd -i " + in + " -o -");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("300 scored"), std::string::npos) << r.err;
    return r.out;
  };
  const std::string a = run(fx, "--threads 2 "), b = run(t / "yml", "--threads 1 ");
  const auto records = [](const std::string& vcf) {  // the header names the model folder and the command
    std::string out;
    for (const auto& l : lines(vcf))
      if (!l.starts_with("##")) out += l + "\n";
    return out;
  };
  EXPECT_TRUE(records(a) == records(b)) << "the released .pt + yml folder scores differently from the safetensors folder";
  {
    std::ofstream(t / "a.vcf") << a;
  }
  const auto scores = lines(sh("bcftools query -f '%LONGSEQ_DLL\\n' " + (t / "a.vcf").string()));
  ASSERT_EQ(scores.size(), 300u);
  for (const auto& s : scores) EXPECT_NE(s, ".");
  const auto info = run_cli("info --no-tensors " + (t / "yml").string());
  EXPECT_NE(info.out.find("stripedhyena2"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("model.pt (pytorch zip)"), std::string::npos) << info.out;
  // --device cuda on a machine without a GPU stops in one line (the device path itself is tested on
  // the emulated device: DeviceModel.EmulatedStripedHyena2MatchesTheCpu).
  if (longseq::cuda_device_count() == 0) {
    const auto cuda = run_cli("loglik -m " + (t / "yml").string() + " --text ACGTACGT --device cuda");
    EXPECT_NE(cuda.exit_code, 0);
    EXPECT_NE(cuda.err.find("--device cuda"), std::string::npos) << cuda.err;
  }
}
