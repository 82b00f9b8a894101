// `longseq bench-vep`, `longseq ism` and `score-variants --report` end to end: on a small genome of
// random genes on both strands written here (every label known), with a random-weight Mamba model and
// Markov chains (mechanics, not biology), and on the real S. aureus NCTC8325 genome with prodigal's
// genes when the Debian packages are installed. Checked: outputs bcftools and cairo read back, scores
// equal to what score-variants gives for the same SNVs, the same bytes for any thread count and
// batch, determinism in --seed, and one-line errors for bad input.
#include "core/random.h"
#include "tests/testing.h"

#include <cairo.h>
#include <fmt/format.h>

#include <fstream>
#include <map>
#include <sstream>

using namespace longseq;
using namespace longseq::testing;

namespace {

const std::filesystem::path kNctc8325 = "/usr/share/doc/sibelia/examples/C-Sibelia/Staphylococcus_aureus/NCTC8325.fasta.gz";

std::vector<std::string> fields(const std::string& line) {
  std::vector<std::string> f;
  std::stringstream ss(line);
  for (std::string x; std::getline(ss, x, '\t');) f.push_back(x);
  return f;
}

std::string revcomp(const std::string& s) {
  std::string out(s.rbegin(), s.rend());
  for (char& c : out) c = c == 'A' ? 'T' : c == 'C' ? 'G' : c == 'G' ? 'C' : 'A';
  return out;
}

std::pair<int, int> png_size(const std::filesystem::path& path) {
  cairo_surface_t* s = cairo_image_surface_create_from_png(path.c_str());
  std::pair<int, int> wh{0, 0};
  if (cairo_surface_status(s) == CAIRO_STATUS_SUCCESS) wh = {cairo_image_surface_get_width(s), cairo_image_surface_get_height(s)};
  cairo_surface_destroy(s);
  return wh;
}

// A genome of 12 random genes (6 per strand) between random spacers, its GFF3 in prodigal's form, a
// second genome to fit Markov chains on, and a tiny Mamba model.
class VepCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (std::system("bcftools --version >/dev/null 2>&1")) return;
    dir_ = new TempDir;
    Rng rng(17);
    const auto dna = [&](int n) {
      std::string s(size_t(n), 'A');
      for (char& c : s) c = "ACGT"[rng.below(4)];
      return s;
    };
    const char* sense[] = {"GCT", "CGT", "AAT", "GAT", "TGT", "CAA", "GAA", "GGT", "CAT", "ATT", "CTG", "AAA",
                           "TTT", "CCG", "TCT", "ACC", "TGG", "TAT", "GTG", "ATG", "CAG", "GAG", "TTA", "AGC"};
    std::string genome = dna(50), gff = "##gff-version  3\n";
    for (int g = 0; g < 12; ++g) {
      std::string gene = "ATG";
      for (int i = 0; i < 60; ++i) gene += sense[rng.below(24)];
      gene += "TAA";
      const bool minus = g % 2 == 1;
      const int64_t start = int64_t(genome.size());
      genome += minus ? revcomp(gene) : gene;
      gff += fmt::format("chrS\tProdigal_v2.6.3\tCDS\t{}\t{}\t50.0\t{}\t0\tID=1_{};partial=00;start_type=ATG;\n", start + 1,
                         start + int64_t(gene.size()), minus ? '-' : '+', g + 1);
      genome += dna(40);
    }
    std::ofstream(*dir_ / "genome.fa") << ">chrS\n" << genome << "\n";
    std::ofstream(*dir_ / "genes.gff") << gff;
    std::ofstream(*dir_ / "train.fa") << ">t\n" << dna(20000) << "\n";
    genome_ = new std::string(genome);
    ASSERT_EQ(run_cli("-q init -o " + (*dir_ / "mamba").string() + " --family mamba --d-model 16 --n-layer 2 --seed 1").exit_code, 0);
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete genome_;
    dir_ = nullptr;
    genome_ = nullptr;
  }
  void SetUp() override {
    if (!dir_) GTEST_SKIP() << "needs bcftools (scripts/setup installs it)";
  }
  static std::string path(const std::string& name) { return (*dir_ / name).string(); }
  static CliResult bench(const std::string& out, const std::string& extra) {
    return run_cli("bench-vep -r " + path("genome.fa") + " --gff " + path("genes.gff") + " -m " + path("mamba") + " --markov-train " +
                   path("train.fa") + " --markov-order 2,4 --window 64 --per-class 40 --bootstrap 200 -o " + out + " " + extra);
  }
  static TempDir* dir_;
  static std::string* genome_;
};
TempDir* VepCliTest::dir_ = nullptr;
std::string* VepCliTest::genome_ = nullptr;

}  // namespace

TEST_F(VepCliTest, BenchVepWritesLabelledVariantsScoresAurocAndPictures) {
  TempDir t;
  const std::string out = (t / "bench").string();
  const auto r = bench(out, "--threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The labelled VCF: sorted, indexed, one label each, REF matching the genome.
  const std::string vcf = out + "/variants.vcf.gz";
  ASSERT_TRUE(std::filesystem::exists(vcf + ".tbi"));
  const auto records = lines(sh("bcftools query -f '%CHROM\\t%POS\\t%REF\\t%ALT\\t%CSQ\\t%GENE\\t%CODON\\t%AA\\n' " + vcf));
  std::map<std::string, int> per_class;
  int64_t last = 0;
  for (const std::string& l : records) {
    const auto f = fields(l);
    ASSERT_EQ(f.size(), 8u) << l;
    const int64_t pos = std::stoll(f[1]);
    EXPECT_GE(pos, last);
    last = pos;
    EXPECT_EQ(f[2], genome_->substr(size_t(pos - 1), 1)) << l;
    ++per_class[f[4]];
    if (f[4] == "stop_gained") {
      EXPECT_EQ(f[7].back(), '*') << l;
    }
    if (f[4] == "synonymous_variant") {
      EXPECT_EQ(f[7][0], f[7][2]) << l;
    }
  }
  // 12 genes of 62 codons: far more than 40 synonymous, missense and nonsense candidates; 12 starts
  // and 12 stops give fewer start-lost / stop-lost SNVs than that.
  EXPECT_EQ(per_class["synonymous_variant"], 40);
  EXPECT_EQ(per_class["missense_variant"], 40);
  EXPECT_EQ(per_class["stop_gained"], 40);
  EXPECT_EQ(per_class.count("stop_retained_variant"), 0u);
  EXPECT_GT(per_class["start_lost"], 0);
  EXPECT_LE(per_class["start_lost"], 40);
  // scores.tsv: one row per SNV, one column per scorer.
  const auto scores = lines(read_all(out + "/scores.tsv"));
  ASSERT_EQ(scores.size(), records.size() + 1);
  EXPECT_EQ(fields(scores[0]).back(), "markov-4:dll");
  // auroc.tsv: 3 scorers x 4 comparisons x (all, same substitution), values in [0, 1], lo <= auroc <= hi.
  const auto auroc = lines(read_all(out + "/auroc.tsv"));
  ASSERT_EQ(auroc.size(), 1u + 3 * 4 * 2);
  for (size_t i = 1; i < auroc.size(); ++i) {
    const auto f = fields(auroc[i]);
    const double a = std::stod(f[7]), lo = std::stod(f[8]), hi = std::stod(f[9]);
    EXPECT_LE(lo, a);
    EXPECT_GE(hi, a);
    EXPECT_GE(lo, 0.0);
    EXPECT_LE(hi, 1.0);
  }
  EXPECT_NE(r.out.find("nonsense vs synonymous"), std::string::npos) << r.out;
  // Pictures: 2 x 2 ROC panels of 460 x 440, 2 x 2 histogram panels of 460 x 320.
  EXPECT_EQ(png_size(out + "/roc.png"), std::make_pair(920, 880));
  EXPECT_EQ(png_size(out + "/hist.png"), std::make_pair(920, 640));
}

TEST_F(VepCliTest, BenchVepScoresAreScoreVariantsScoresAndDeterministic) {
  TempDir t;
  ASSERT_EQ(bench((t / "a").string(), "--threads 2").exit_code, 0);
  ASSERT_EQ(bench((t / "b").string(), "--threads 1").exit_code, 0);
  const std::string a = read_all(t / "a/scores.tsv");
  EXPECT_EQ(a, read_all(t / "b/scores.tsv"));
  EXPECT_EQ(read_all(t / "a/auroc.tsv"), read_all(t / "b/auroc.tsv"));
  // Another seed samples other SNVs.
  ASSERT_EQ(bench((t / "c").string(), "--seed 2").exit_code, 0);
  EXPECT_NE(read_all(t / "c/scores.tsv"), a);
  // The model's column is what score-variants writes for the same VCF and window.
  const auto sv = run_cli("score-variants -r " + path("genome.fa") + " -m " + path("mamba") + " --window 64 -O t -i " +
                          (t / "a/variants.vcf.gz").string());
  ASSERT_EQ(sv.exit_code, 0) << sv.err;
  const auto want = lines(sv.out), got = lines(a);
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 1; i < got.size(); ++i) EXPECT_EQ(fields(got[i])[9], fields(want[i])[4]) << got[i];
  // --strand gene scores each SNV on its gene's strand only: score-variants' per-strand values.
  ASSERT_EQ(bench((t / "g").string(), "--strand gene").exit_code, 0);
  const auto gene = lines(read_all(t / "g/scores.tsv"));
  for (size_t i = 1; i < gene.size(); ++i) {
    const auto f = fields(gene[i]), w = fields(want[i]);
    EXPECT_EQ(f[9], f[6] == "+" ? w[5] : w[6]) << gene[i];
  }
}

TEST_F(VepCliTest, BenchVepRejectsBadInputInOneLine) {
  TempDir t;
  std::ofstream(t / "empty.gff") << "##gff-version 3\n";
  auto r = run_cli("bench-vep -r " + path("genome.fa") + " --gff " + (t / "empty.gff").string() + " --markov-train " + path("train.fa") +
                   " -o " + (t / "x").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("no complete CDS"), std::string::npos) << r.err;
  std::ofstream(t / "other.gff") << "chrOther\tx\tCDS\t1\t9\t.\t+\t0\tID=a\n";
  r = run_cli("bench-vep -r " + path("genome.fa") + " --gff " + (t / "other.gff").string() + " --markov-train " + path("train.fa") +
              " -o " + (t / "x").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("chrOther"), std::string::npos) << r.err;
  r = run_cli("bench-vep -r " + path("genome.fa") + " --gff " + path("genes.gff") + " -o " + (t / "x").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("nothing to score with"), std::string::npos) << r.err;
  r = bench((t / "y").string(), "--per-class 0");
  EXPECT_NE(r.exit_code, 0);
  // An output that is an input is refused before any work; the input is untouched.
  std::filesystem::create_directories(t / "z");
  std::filesystem::copy_file(path("genome.fa"), t / "z/scores.tsv");
  r = run_cli("bench-vep -r " + (t / "z/scores.tsv").string() + " --gff " + path("genes.gff") + " --markov-train " + path("train.fa") +
              " -o " + (t / "z").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("same file as the input"), std::string::npos) << r.err;
  EXPECT_EQ(read_all(t / "z/scores.tsv"), read_all(path("genome.fa")));
}

TEST_F(VepCliTest, IsmEqualsScoreVariantsAndDoesNotDependOnBatchOrThreads) {
  TempDir t;
  const std::string region = "chrS:101-140";  // inside the first gene
  const auto ism = [&](const std::string& out, const std::string& extra) {
    return run_cli("ism -m " + path("mamba") + " -r " + path("genome.fa") + " --region " + region + " --window 64 -o " + out + " " + extra);
  };
  const auto r = ism((t / "a.tsv").string(), "--threads 2 --plot " + (t / "a.png").string() + " --gff " + path("genes.gff"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto rows = lines(read_all(t / "a.tsv"));
  ASSERT_EQ(rows.size(), 41u);
  EXPECT_EQ(rows[0], "#CHROM\tPOS\tREF\tA\tC\tG\tT\tmean\tmin");
  // Every change as a VCF, scored by score-variants: the same numbers.
  std::string vcf = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n";
  for (int64_t pos = 101; pos <= 140; ++pos) {
    const char ref = (*genome_)[size_t(pos - 1)];
    for (char alt : {'A', 'C', 'G', 'T'})
      if (alt != ref) vcf += fmt::format("chrS\t{}\t.\t{}\t{}\t.\t.\t.\n", pos, ref, alt);
  }
  std::ofstream(t / "all.vcf") << vcf;
  const auto sv = run_cli("score-variants -r " + path("genome.fa") + " -m " + path("mamba") + " --window 64 -O t -i " + (t / "all.vcf").string());
  ASSERT_EQ(sv.exit_code, 0) << sv.err;
  std::map<std::pair<std::string, char>, std::string> want;
  for (const auto& l : lines(sv.out))
    if (l[0] != '#') {
      const auto f = fields(l);
      want[{f[1], f[3][0]}] = f[4];
    }
  for (size_t i = 1; i < rows.size(); ++i) {
    const auto f = fields(rows[i]);
    for (int b = 0; b < 4; ++b) {
      if ("ACGT"[b] == f[2][0]) {
        EXPECT_EQ(f[3 + size_t(b)], ".");
      } else {
        EXPECT_EQ(f[3 + size_t(b)], want.at({f[1], "ACGT"[b]})) << rows[i];
      }
    }
  }
  // Batches of 1 and 1 thread: the same bytes. Without prefix sharing: the same values to rounding.
  ASSERT_EQ(ism((t / "b.tsv").string(), "--threads 1 --batch 1").exit_code, 0);
  EXPECT_EQ(read_all(t / "b.tsv"), read_all(t / "a.tsv"));
  ASSERT_EQ(ism((t / "c.tsv").string(), "--no-prefix-sharing").exit_code, 0);
  const auto naive = lines(read_all(t / "c.tsv"));
  for (size_t i = 1; i < rows.size(); ++i) {
    const auto f = fields(rows[i]), g = fields(naive[i]);
    EXPECT_NEAR(std::stod(f[7]), std::stod(g[7]), 1e-3) << rows[i];
  }
  // The heatmap, sized to the region (40 columns: the 700-point minimum) and the bedGraph track.
  EXPECT_EQ(png_size(t / "a.png"), std::make_pair(700, 290));
  ASSERT_EQ(ism((t / "m.bedgraph").string(), "--track min").exit_code, 0);
  const auto bg = lines(read_all(t / "m.bedgraph"));
  ASSERT_EQ(bg.size(), 41u);
  EXPECT_TRUE(bg[0].starts_with("track type=bedGraph"));
  const auto f = fields(bg[1]);
  EXPECT_EQ(f[0], "chrS");
  EXPECT_EQ(f[1], "100");
  EXPECT_EQ(f[2], "101");
  EXPECT_EQ(f[3], fields(rows[1])[8]);
  // Bad input: one line, non-zero.
  auto bad = run_cli("ism -m " + path("mamba") + " -r " + path("genome.fa") + " --region chrX:1-10 -o " + (t / "x.tsv").string());
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("chrX"), std::string::npos) << bad.err;
  bad = ism((t / "y.tsv").string(), "--plot " + (t / "y.jpg").string());
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find(".png, .svg or .pdf"), std::string::npos) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(t / "y.tsv"));
}

TEST_F(VepCliTest, ScoreVariantsReportIsASelfContainedPage) {
  TempDir t;
  ASSERT_EQ(bench((t / "b").string(), "").exit_code, 0);
  const auto r = run_cli("score-variants -r " + path("genome.fa") + " -m " + path("mamba") + " --window 64 -i " +
                         (t / "b/variants.vcf.gz").string() + " -o " + (t / "s.vcf.gz").string() + " --report " + (t / "r.html").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string html = read_all(t / "r.html");
  EXPECT_TRUE(html.starts_with("<!DOCTYPE html>"));
  EXPECT_NE(html.find("<svg"), std::string::npos);  // the histogram, inline
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org"));  // nothing fetched (only XML namespaces)
  EXPECT_EQ(html.find("src="), std::string::npos);
  const int n = int(lines(sh("bcftools view -H " + (t / "b/variants.vcf.gz").string())).size());
  EXPECT_NE(html.find(fmt::format("<tr><td>scored</td><td class=\"n\">{}</td></tr>", n)), std::string::npos);
  EXPECT_NE(html.find("Top 25 by dll"), std::string::npos);
}

TEST(VepRealGenome, Nctc8325GenesFromProdigalGiveEveryClass) {
  if (!std::filesystem::exists(kNctc8325) || std::system("prodigal -v >/dev/null 2>&1") ||
      std::system("bcftools --version >/dev/null 2>&1"))
    GTEST_SKIP() << "needs sibelia-examples, prodigal and bcftools (scripts/setup installs them)";
  TempDir t;
  ASSERT_EQ(std::system(("zcat " + kNctc8325.string() + " > " + (t / "g.fa").string()).c_str()), 0);
  ASSERT_EQ(std::system(("prodigal -q -i " + (t / "g.fa").string() + " -f gff -g 11 -o " + (t / "g.gff").string()).c_str()), 0);
  std::ofstream(t / "train.fa") << ">t\nACGTTGCAAGCTTAGC\n";
  const auto r = run_cli("bench-vep -r " + (t / "g.fa").string() + " --gff " + (t / "g.gff").string() + " --markov-train " +
                         (t / "train.fa").string() + " --markov-order 1 --per-class 30 --bootstrap 100 -o " + (t / "out").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("2631 genes"), std::string::npos) << r.err;  // prodigal 2.6.3 on NCTC8325: every gene complete
  const auto records = lines(sh("bcftools query -f '%CSQ\\n' " + (t / "out/variants.vcf.gz").string()));
  EXPECT_EQ(records.size(), 5u * 30);
}
