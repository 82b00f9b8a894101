// DNA tokenizer ids and FASTA access (plain, bgzipped, plain gzip refused, index placement, regions),
// including the real human chr20 of Debian's vt-examples.
#include "genomics/fasta.h"
#include "genomics/tokenizer.h"
#include "tests/testing.h"

#include <cstdlib>
#include <fstream>

using namespace longseq;
using longseq::testing::TempDir;

namespace {
// Points the faidx cache at a scratch folder for the duration of a test.
struct CacheEnv {
  TempDir dir;
  CacheEnv() { setenv("XDG_CACHE_HOME", dir.path().c_str(), 1); }
  ~CacheEnv() { unsetenv("XDG_CACHE_HOME"); }
};

void write_fasta(const std::filesystem::path& p) {
  std::ofstream f(p);
  f << ">chrA description\nACGTACGTAC\nGTNNNNacgt\nRYA\n>chrB\nTTTTGGGGCC\n";
}
}  // namespace

TEST(Tokenizer, HyenaDnaIds) {
  const DnaTokenizer t = DnaTokenizer::standard();
  TokenizeStats s;
  std::vector<int64_t> ids(10);
  t.encode("ACGTNacgRX", ids.data(), &s);
  EXPECT_EQ(ids, (std::vector<int64_t>{7, 8, 9, 10, 11, 7, 8, 9, 11, 6}));
  EXPECT_EQ(s.soft_masked, 3);
  EXPECT_EQ(s.ambiguous, 1);
  EXPECT_EQ(s.unknown, 1);
  EXPECT_EQ(t.base(9), 'G');
  DnaTokenizer keep = t;
  keep.set_keep_case(true);
  EXPECT_EQ(keep.id('a'), 6);
}

TEST(Tokenizer, FromConfig) {
  const Config c = Config::parse(R"({"longseq_tokenizer": {"type": "char", "vocab": {"A": 0, "C": 1, "G": 2, "T": 3, "N": 4}, "unk": "N"}})", "c");
  const DnaTokenizer t = DnaTokenizer::from_config(c, 8);
  EXPECT_EQ(t.id('G'), 2);
  EXPECT_EQ(t.id('X'), 4);
  EXPECT_THROW(DnaTokenizer::from_config(Config::parse("{}", "c"), 8), Error);  // default ids need vocab > 11
  EXPECT_THROW(DnaTokenizer::from_config(Config::parse(R"({"longseq_tokenizer": {"type": "bpe"}})", "c"), 16), Error);
}

TEST(Fasta, RegionsParse) {
  const Region r = parse_region("chr20:1,000,001-1,000,100");
  EXPECT_EQ(r.contig, "chr20");
  EXPECT_EQ(r.start, 1000000);
  EXPECT_EQ(r.end, 1000100);
  EXPECT_EQ(parse_region("chrM").end, -1);
  EXPECT_THROW(parse_region("chr1:0-5"), Error);
  EXPECT_THROW(parse_region("chr1:9-5"), Error);
  EXPECT_THROW(parse_region("chr1:a-b"), Error);
}

TEST(Fasta, PlainAndBgzipped) {
  CacheEnv cache;
  TempDir dir;
  write_fasta(dir / "ref.fa");
  auto fa = FastaReader::open(dir / "ref.fa");
  EXPECT_EQ(fa.contigs(), (std::vector<std::string>{"chrA", "chrB"}));
  EXPECT_EQ(fa.length("chrA"), 23);
  EXPECT_EQ(fa.fetch("chrA", 8, 16), "ACGTNNNN");
  EXPECT_EQ(fa.fetch("chrB", 0, 4), "TTTT");
  EXPECT_TRUE(std::filesystem::exists(dir / "ref.fa.fai")) << "own writable folder: index beside the file";
  EXPECT_THROW(fa.fetch("chrB", 5, 11), Error);
  try {
    fa.length("chr1");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("chrA"), std::string::npos) << "lists contigs present: " << e.what();
  }
  ASSERT_EQ(std::system(("bgzip -c " + (dir / "ref.fa").string() + " > " + (dir / "ref.fa.gz").string()).c_str()), 0);
  EXPECT_EQ(FastaReader::open(dir / "ref.fa.gz").fetch("chrA", 18, 23), "gtRYA");
  ASSERT_EQ(std::system(("gzip -c " + (dir / "ref.fa").string() + " > " + (dir / "plain.fa.gz").string()).c_str()), 0);
  try {
    FastaReader::open(dir / "plain.fa.gz");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bgzip"), std::string::npos) << e.what();
  }
  EXPECT_THROW(FastaReader::open(dir / "missing.fa"), Error);
}

TEST(Fasta, RealChr20FromSystemFolderIndexedInCache) {
  const std::filesystem::path ref = "/usr/share/doc/vt/examples/ref/20.fa.gz";
  if (!std::filesystem::exists(ref)) GTEST_SKIP() << "vt-examples not installed (scripts/setup installs it)";
  CacheEnv cache;
  const auto before = std::filesystem::last_write_time(ref.parent_path());
  auto fa = FastaReader::open(ref);
  EXPECT_EQ(fa.length("20"), 63025520);
  const std::string s = fa.fetch("20", 1000000, 1000060);
  EXPECT_EQ(s.size(), 60u);
  EXPECT_EQ(s.find_first_not_of("ACGTNacgtn"), std::string::npos);
  EXPECT_EQ(std::filesystem::last_write_time(ref.parent_path()), before) << "system folder must not be written";
  EXPECT_FALSE(std::filesystem::is_empty(cache.dir.path()));
}
