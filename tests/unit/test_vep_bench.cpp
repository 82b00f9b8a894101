// The pieces of the variant-effect benchmark against references written independently here: the
// genetic code against the textbook codon table (grouped by amino acid), SNV consequences on hand-made
// genes of both strands, GFF3 reading and its errors, the SNV sample against a brute-force
// enumeration, AUROC against the O(n m) pair count, the Markov chain's logits against counts taken by
// hand in float64, and the pictures as files (format, dimensions, something drawn).
#include "core/plot.h"
#include "core/random.h"
#include "core/stats.h"
#include "genomics/coding.h"
#include "genomics/coding_snvs.h"
#include "genomics/markov.h"
#include "genomics/variant_scorer.h"
#include "tests/testing.h"

#include <cairo.h>

#include <fstream>
#include <map>
#include <set>

using namespace longseq;
using namespace longseq::testing;

namespace {

void write_text(const std::filesystem::path& path, const std::string& text) { std::ofstream(path) << text; }

std::string revcomp(const std::string& s) {
  std::string out(s.rbegin(), s.rend());
  for (char& c : out) c = c == 'A' ? 'T' : c == 'C' ? 'G' : c == 'G' ? 'C' : c == 'T' ? 'A' : c;
  return out;
}

// The standard code (table 11 differs from it only in its start codons), as printed in textbooks.
const std::map<char, std::vector<std::string>> kCodonsOf = {
    {'A', {"GCT", "GCC", "GCA", "GCG"}}, {'R', {"CGT", "CGC", "CGA", "CGG", "AGA", "AGG"}}, {'N', {"AAT", "AAC"}},
    {'D', {"GAT", "GAC"}}, {'C', {"TGT", "TGC"}}, {'Q', {"CAA", "CAG"}}, {'E', {"GAA", "GAG"}},
    {'G', {"GGT", "GGC", "GGA", "GGG"}}, {'H', {"CAT", "CAC"}}, {'I', {"ATT", "ATC", "ATA"}},
    {'L', {"TTA", "TTG", "CTT", "CTC", "CTA", "CTG"}}, {'K', {"AAA", "AAG"}}, {'M', {"ATG"}}, {'F', {"TTT", "TTC"}},
    {'P', {"CCT", "CCC", "CCA", "CCG"}}, {'S', {"TCT", "TCC", "TCA", "TCG", "AGT", "AGC"}}, {'T', {"ACT", "ACC", "ACA", "ACG"}},
    {'W', {"TGG"}}, {'Y', {"TAT", "TAC"}}, {'V', {"GTT", "GTC", "GTA", "GTG"}}, {'*', {"TAA", "TAG", "TGA"}},
};

// A random gene of n codons: a start, sense codons, a stop (no internal stop).
std::string random_gene(int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<std::string> sense;
  for (const auto& [aa, codons] : kCodonsOf)
    if (aa != '*')
      for (const auto& c : codons) sense.push_back(c);
  std::string g = "ATG";
  for (int i = 1; i + 1 < n; ++i) g += sense[rng.below(sense.size())];
  return g + "TAA";
}

}  // namespace

TEST(Coding, Table11TranslatesEveryCodonAsTheTextbookTable) {
  int seen = 0;
  for (const auto& [aa, codons] : kCodonsOf)
    for (const std::string& c : codons) {
      EXPECT_EQ(translate_codon(c.data()), aa) << c;
      ++seen;
    }
  EXPECT_EQ(seen, 64);
  EXPECT_EQ(translate_codon("ANG"), 'X');
  std::set<std::string> starts;
  for (const char* a : {"A", "C", "G", "T"})
    for (const char* b : {"A", "C", "G", "T"})
      for (const char* c : {"A", "C", "G", "T"}) {
        const std::string codon = std::string(a) + b + c;
        if (is_start_codon(codon.data())) starts.insert(codon);
      }
  EXPECT_EQ(starts, (std::set<std::string>{"ATG", "GTG", "TTG", "CTG", "ATT", "ATC", "ATA"}));
}

TEST(Coding, SnvConsequencesOnBothStrands) {
  //                 start  Leu   Trp   Lys   stop
  const std::string gene = "ATG" "CTT" "TGG" "AAA" "TAA";
  const std::string genome = "GG" + gene + "CC" + revcomp(gene) + "T";
  const Cds plus{"c", "p", 2, 2 + 15, '+'}, minus{"c", "m", 19, 34, '-'};
  ASSERT_EQ(genome.substr(19, 15), revcomp(gene));
  const auto at = [&](const Cds& g, int64_t coding_offset, char coding_alt) {
    // genome position and forward-strand base of a change at `coding_offset` of the gene
    const int64_t pos = g.strand == '+' ? g.start + coding_offset : g.end - 1 - coding_offset;
    const char alt = g.strand == '+' ? coding_alt : revcomp(std::string(1, coding_alt))[0];
    return classify_snv(g, gene, pos, alt);
  };
  for (const Cds& g : {plus, minus}) {
    SCOPED_TRACE(g.id);
    EXPECT_EQ(at(g, 0, 'G').consequence, Consequence::kStartRetained);  // GTG starts in table 11
    EXPECT_EQ(at(g, 2, 'A').consequence, Consequence::kStartRetained);  // ATA too
    EXPECT_EQ(at(g, 1, 'C').consequence, Consequence::kStartLost);      // ACG
    EXPECT_EQ(at(g, 5, 'C').consequence, Consequence::kSynonymous);     // CTT -> CTC, Leu
    EXPECT_EQ(at(g, 3, 'T').consequence, Consequence::kMissense);       // CTT -> TTT, Phe
    EXPECT_EQ(at(g, 8, 'A').consequence, Consequence::kStopGained);     // TGG -> TGA
    EXPECT_EQ(at(g, 9, 'T').consequence, Consequence::kStopGained);     // AAA -> TAA
    EXPECT_EQ(at(g, 12, 'C').consequence, Consequence::kStopLost);      // TAA -> CAA
    EXPECT_EQ(at(g, 14, 'G').consequence, Consequence::kStopRetained);  // TAA -> TAG
    EXPECT_EQ(at(g, 13, 'G').consequence, Consequence::kStopRetained);  // TAA -> TGA
    const CodonChange c = at(g, 8, 'A');
    EXPECT_EQ(c.codon, 2);
    EXPECT_EQ(c.ref_codon, "TGG");
    EXPECT_EQ(c.alt_codon, "TGA");
    EXPECT_EQ(c.ref_aa, 'W');
    EXPECT_EQ(c.alt_aa, '*');
  }
}

TEST(Coding, ClassifiedLikeTranslatingBothGenes) {
  // Every SNV of random genes on both strands against translating the mutated gene directly.
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    const std::string gene = random_gene(40, seed);
    ASSERT_EQ(coding_gene_problem(gene), "");
    for (char strand : {'+', '-'}) {
      const std::string flank = random_dna(7, seed + 10);
      const std::string genome = flank + (strand == '+' ? gene : revcomp(gene)) + flank;
      const Cds g{"c", "g", 7, 7 + int64_t(gene.size()), strand};
      for (int64_t pos = g.start; pos < g.end; ++pos)
        for (char alt : {'A', 'C', 'G', 'T'}) {
          if (alt == genome[size_t(pos)]) continue;
          std::string mutated = genome;
          mutated[size_t(pos)] = alt;
          std::string coding = mutated.substr(size_t(g.start), gene.size());
          if (strand == '-') coding = revcomp(coding);
          const int64_t offset = strand == '+' ? pos - g.start : g.end - 1 - pos, codon = offset / 3;
          const char ref_aa = translate_codon(gene.data() + codon * 3), alt_aa = translate_codon(coding.data() + codon * 3);
          Consequence want;
          if (codon == 0)
            want = is_start_codon(coding.data()) ? Consequence::kStartRetained : Consequence::kStartLost;
          else if (codon == int64_t(gene.size()) / 3 - 1)
            want = alt_aa == '*' ? Consequence::kStopRetained : Consequence::kStopLost;
          else
            want = alt_aa == '*' ? Consequence::kStopGained : alt_aa == ref_aa ? Consequence::kSynonymous : Consequence::kMissense;
          const CodonChange got = classify_snv(g, gene, pos, alt);
          ASSERT_EQ(got.consequence, want) << strand << " pos " << pos << " " << alt;
          EXPECT_EQ(got.ref_aa, ref_aa);
          EXPECT_EQ(got.alt_aa, alt_aa);
          EXPECT_EQ(got.alt_codon, coding.substr(size_t(codon * 3), 3));
        }
    }
  }
}

TEST(Coding, GenesThatCannotBeLabelledSayWhy) {
  EXPECT_EQ(coding_gene_problem("ATGAAATAA"), "");
  EXPECT_NE(coding_gene_problem("ATGAAATA"), "");   // off frame
  EXPECT_NE(coding_gene_problem("CCCAAATAA"), "");  // no start
  EXPECT_NE(coding_gene_problem("ATGAAACCC"), "");  // no stop
  EXPECT_NE(coding_gene_problem("ATGTGATAA"), "");  // internal stop
  EXPECT_NE(coding_gene_problem("ATGNAATAA"), "");  // N
}

TEST(Coding, ReadsGffCdsAndSkipsWhatCannotBeLabelled) {
  TempDir dir;
  write_text(dir / "g.gff",
             "##gff-version 3\n# a comment\n"
             "c\tprodigal\tCDS\t3\t17\t.\t+\t0\tID=1_1;partial=00\n"
             "c\tprodigal\tgene\t3\t17\t.\t+\t.\tID=gene1\n"
             "c\tprodigal\tCDS\t20\t34\t.\t-\t0\tID=1_2;partial=00\n"
             "c\tprodigal\tCDS\t1\t12\t.\t+\t0\tID=1_3;partial=10\n"
             "c\tprodigal\tCDS\t1\t13\t.\t+\t0\tID=1_4\n"
             "c\tx\tCDS\t40\t45\t.\t+\t0\tID=j\n"
             "c\tx\tCDS\t50\t55\t.\t+\t0\tID=j\n"
             "##FASTA\n>c\nACGT\n");
  GffCdsStats st;
  const auto genes = read_gff_cds(dir / "g.gff", &st);
  ASSERT_EQ(genes.size(), 2u);
  EXPECT_EQ(genes[0].id, "1_1");
  EXPECT_EQ(genes[0].start, 2);
  EXPECT_EQ(genes[0].end, 17);
  EXPECT_EQ(genes[1].strand, '-');
  EXPECT_EQ(st.lines, 6);
  EXPECT_EQ(st.partial, 1);
  EXPECT_EQ(st.off_frame, 1);
  EXPECT_EQ(st.joined, 2);
  write_text(dir / "bad.gff", "c\tx\tCDS\t3\n");
  try {
    read_gff_cds(dir / "bad.gff");
    FAIL() << "a 4-column row was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.gff:1"), std::string::npos) << e.what();
  }
  write_text(dir / "bad2.gff", "c\tx\tCDS\tten\t20\t.\t+\t0\tID=a\n");
  EXPECT_THROW(read_gff_cds(dir / "bad2.gff"), Error);
}

TEST(CodingSnvs, SampleMatchesABruteForceEnumeration) {
  TempDir dir;
  const std::string g1 = random_gene(30, 5), g2 = random_gene(25, 6), g3 = random_gene(20, 7);
  // g2 (minus strand) overlaps g1's last 4 bases: those positions carry two labels and are left out.
  std::string c1 = random_dna(10, 8) + g1;
  const int64_t g2_start = int64_t(c1.size()) - 4;
  c1 = c1.substr(0, size_t(g2_start)) + revcomp(g2) + random_dna(9, 9);
  // g1's last 4 bases are overwritten by g2's: rebuild g1 as it now reads and check it still codes.
  const std::string g1_now = c1.substr(10, g1.size());
  const std::string c2 = random_dna(5, 10) + g3 + random_dna(5, 11);
  write_fasta(dir / "ref.fa", {{"c1", c1}, {"c2", c2}});
  const std::vector<Cds> genes = {{"c2", "g3", 5, 5 + int64_t(g3.size()), '+'},
                                  {"c1", "g1", 10, 10 + int64_t(g1.size()), '+'},
                                  {"c1", "g2", g2_start, g2_start + int64_t(g2.size()), '-'}};
  const FastaReader fasta = FastaReader::open(dir / "ref.fa");
  // Brute force: every SNV of every labelable gene, minus positions in two genes.
  std::array<int64_t, size_t(Consequence::kCount)> want{};
  std::set<std::tuple<std::string, int64_t, char>> all;
  for (const Cds& g : genes) {
    const std::string seq = cds_sequence(fasta, g);
    if (!coding_gene_problem(seq).empty()) continue;
    for (int64_t p = g.start; p < g.end; ++p) {
      int cover = 0;
      for (const Cds& h : genes) cover += h.contig == g.contig && p >= h.start && p < h.end;
      if (cover > 1) continue;
      const char ref = fasta.fetch(g.contig, p, p + 1)[0];
      for (char alt : {'A', 'C', 'G', 'T'})
        if (alt != ref) {
          ++want[size_t(classify_snv(g, seq, p, alt).consequence)];
          all.insert({g.contig, p, alt});
        }
    }
  }
  const bool g1_codes = coding_gene_problem(g1_now).empty();
  const CodingSnvSample everything = sample_coding_snvs(fasta, genes, {.per_class = 1 << 20, .seed = 3});
  EXPECT_EQ(everything.candidates, want);
  EXPECT_EQ(everything.shared_positions, 4);
  EXPECT_EQ(everything.genes_used + int64_t(everything.genes_skipped.size()), 3);
  EXPECT_EQ(everything.genes_used, g1_codes ? 3 : 2);
  ASSERT_EQ(everything.snvs.size(), all.size());
  for (size_t i = 1; i < everything.snvs.size(); ++i) {  // genome order: contigs as in the FASTA, then position, then ALT
    const auto& a = everything.snvs[i - 1];
    const auto& b = everything.snvs[i];
    EXPECT_TRUE(std::tie(a.contig, a.pos, a.alt) < std::tie(b.contig, b.pos, b.alt));
  }
  const CodingSnvSample s1 = sample_coding_snvs(fasta, genes, {.per_class = 5, .seed = 3});
  const CodingSnvSample s2 = sample_coding_snvs(fasta, genes, {.per_class = 5, .seed = 3});
  const CodingSnvSample s3 = sample_coding_snvs(fasta, genes, {.per_class = 5, .seed = 4});
  const auto key = [&](const CodingSnvSample& s) {
    std::vector<std::tuple<size_t, int64_t, char>> k;
    for (const auto& v : s.snvs) k.emplace_back(v.contig, v.pos, v.alt);
    return k;
  };
  EXPECT_EQ(key(s1), key(s2));
  EXPECT_NE(key(s1), key(s3));
  for (int c = 0; c < int(Consequence::kCount); ++c) {
    const int64_t n = std::count_if(s1.snvs.begin(), s1.snvs.end(), [&](const CodingSnv& v) { return int(v.change.consequence) == c; });
    EXPECT_EQ(n, std::min<int64_t>(5, want[size_t(c)])) << consequence_name(Consequence(c));
  }
}

TEST(Stats, AurocIsThePairCountWithTiesHalved) {
  Rng rng(4);
  for (int trial = 0; trial < 20; ++trial) {
    const size_t n = 1 + rng.below(40), m = 1 + rng.below(40);
    std::vector<double> a(n), b(m);
    for (double& x : a) x = double(rng.below(8));  // few distinct values: many ties
    for (double& x : b) x = double(rng.below(8)) - 0.5 * (trial % 3);
    double pairs = 0;
    for (double x : a)
      for (double y : b) pairs += x > y ? 1.0 : x == y ? 0.5 : 0.0;
    EXPECT_NEAR(auroc(a, b), pairs / double(n * m), 1e-12);
    // The ROC curve runs (0,0) -> (1,1) and its trapezoid area is the AUROC.
    const auto roc = roc_curve(a, b);
    EXPECT_EQ(roc.front(), std::make_pair(0.0, 0.0));
    EXPECT_EQ(roc.back(), std::make_pair(1.0, 1.0));
    double area = 0;
    for (size_t i = 1; i < roc.size(); ++i) area += (roc[i].first - roc[i - 1].first) * (roc[i].second + roc[i - 1].second) / 2;
    EXPECT_NEAR(area, auroc(a, b), 1e-12);
  }
  EXPECT_EQ(auroc(std::vector<double>{2, 3}, std::vector<double>{0, 1}), 1.0);
  EXPECT_EQ(auroc(std::vector<double>{0}, std::vector<double>{1}), 0.0);
  EXPECT_THROW(auroc(std::vector<double>{}, std::vector<double>{1}), Error);
  EXPECT_THROW(auroc(std::vector<double>{NAN}, std::vector<double>{1}), Error);
}

TEST(Stats, StratifiedAurocCountsOnlyPairsOfTheSameStratum) {
  Rng rng(5);
  for (int trial = 0; trial < 20; ++trial) {
    const size_t n = 1 + rng.below(50), m = 1 + rng.below(50);
    std::vector<double> a(n), b(m);
    std::vector<int> sa(n), sb(m);
    for (size_t i = 0; i < n; ++i) sa[i] = int(rng.below(4)), a[i] = double(rng.below(6)) + sa[i];
    for (size_t i = 0; i < m; ++i) sb[i] = int(rng.below(4)), b[i] = double(rng.below(6)) + 2.0 * sb[i];
    double wins = 0, pairs = 0;
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < m; ++j)
        if (sa[i] == sb[j]) {
          wins += a[i] > b[j] ? 1.0 : a[i] == b[j] ? 0.5 : 0.0;
          pairs += 1;
        }
    if (pairs == 0) {
      EXPECT_THROW(stratified_auroc(a, sa, b, sb), Error);
      continue;
    }
    EXPECT_NEAR(stratified_auroc(a, sa, b, sb), wins / pairs, 1e-12);
    const AurocInterval r = stratified_auroc_bootstrap(a, sa, b, sb, 200, 3);
    EXPECT_NEAR(r.auroc, wins / pairs, 1e-12);
    EXPECT_LE(r.lo, r.auroc);
    EXPECT_GE(r.hi, r.auroc);
  }
  // A score that is only the stratum separates the groups over all pairs but not within strata.
  const std::vector<double> cases{1, 1, 1, 0}, controls{0, 0, 0, 1};
  const std::vector<int> cs{1, 1, 1, 0}, ks{0, 0, 0, 1};
  EXPECT_EQ(auroc(cases, controls), 0.75);  // 9 wins and 6 ties of 16 pairs
  EXPECT_EQ(stratified_auroc(cases, cs, controls, ks), 0.5);
}

TEST(Stats, BootstrapIntervalIsSeededAndShrinksWithData) {
  Rng rng(9);
  const auto draw = [&](size_t n, double shift) {
    std::vector<double> v(n);
    for (double& x : v) x = rng.normal() + shift;
    return v;
  };
  const auto small_a = draw(50, 0.5), small_b = draw(50, 0), big_a = draw(2000, 0.5), big_b = draw(2000, 0);
  const AurocInterval s1 = auroc_bootstrap(small_a, small_b, 500, 7), s2 = auroc_bootstrap(small_a, small_b, 500, 7);
  EXPECT_EQ(s1.lo, s2.lo);
  EXPECT_EQ(s1.hi, s2.hi);
  EXPECT_LE(s1.lo, s1.auroc);
  EXPECT_GE(s1.hi, s1.auroc);
  const AurocInterval big = auroc_bootstrap(big_a, big_b, 500, 7);
  EXPECT_LT(big.hi - big.lo, 0.5 * (s1.hi - s1.lo));
  // A shift of 0.5 sd gives AUROC Phi(0.5 / sqrt 2) = 0.638; the big sample's interval holds it.
  EXPECT_LT(big.lo, 0.638);
  EXPECT_GT(big.hi, 0.638);
}

TEST(MarkovLm, LogitsAreTheSmoothedCountsOfBothStrands) {
  TempDir dir;
  const std::string train = random_dna(3000, 21) + "NN" + random_dna(500, 22);
  write_fasta(dir / "train.fa", {{"a", train}, {"b", "ACGTTGCA"}});
  const int k = 3;
  const auto chain = MarkovLm::fit(dir / "train.fa", k);
  // Counts by hand: every (context, next) of every N-free run of both strands, for every order <= k.
  std::map<std::string, std::array<double, 4>> counts;
  int64_t bases = 0;
  for (const std::string& seq : {train, std::string("ACGTTGCA")})
    for (const std::string& strand : {seq, revcomp(seq)}) {
      size_t run_start = 0;
      for (size_t i = 0; i < strand.size(); ++i) {
        if (strand[i] == 'N') {
          run_start = i + 1;
          continue;
        }
        ++bases;
        const int b = int(std::string("ACGT").find(strand[i]));
        for (size_t o = 0; o <= std::min<size_t>(k, i - run_start); ++o) counts[strand.substr(i - o, o)][size_t(b)] += 1;
      }
    }
  EXPECT_EQ(chain->trained_bases(), bases);
  const std::string query = "GATTACANCCGTAGG";
  const DnaTokenizer tok = DnaTokenizer::standard();
  std::vector<int64_t> ids(query.size());
  tok.encode(query, ids.data());
  const Tensor logits = chain->forward(Tensor::from_ids(ids), {}).logits;
  size_t run_start = 0;
  for (size_t t = 0; t < query.size(); ++t) {
    if (query[t] == 'N') {
      run_start = t + 1;
      continue;
    }
    const size_t o = std::min<size_t>(k, t + 1 - run_start);
    const auto& c = counts[query.substr(t + 1 - o, o)];
    const double total = c[0] + c[1] + c[2] + c[3];
    for (int b = 0; b < 4; ++b)
      EXPECT_NEAR(logits.item({int64_t(t), tok.id("ACGT"[b])}), std::log((c[size_t(b)] + 0.5) / (total + 2)), 1e-5) << t;
  }
  // Streamed in chunks of 4 = whole.
  const std::vector<float> streamed = streamed_logits(*chain, Tensor::from_ids(ids), 4);
  EXPECT_EQ(streamed, logits.to_vector());
  EXPECT_THROW(chain->forward(Tensor::from_ids(ids), {.hidden = true}), Error);
}

TEST(MarkovLm, DllIsTheChangeInTheAffectedPositions) {
  // An order-k chain's dll of an SNV sums only the k + 1 positions whose prediction sees the change.
  TempDir dir;
  write_fasta(dir / "train.fa", {{"t", random_dna(5000, 31)}});
  const std::string contig = random_dna(300, 32);
  write_fasta(dir / "ref.fa", {{"c", contig}});
  const auto chain = MarkovLm::fit(dir / "train.fa", 2);
  const FastaReader fasta = FastaReader::open(dir / "ref.fa");
  const DnaTokenizer tok = DnaTokenizer::standard();
  const VariantScorer scorer(*chain, tok, fasta, {.window = 101, .forward = true, .reverse = false});
  const int64_t pos = 150;
  const char alt = contig[size_t(pos)] == 'A' ? 'C' : 'A';
  const auto got = scorer.score({"c", pos, std::string(1, contig[size_t(pos)]), {std::string(1, alt)}});
  std::string mutated = contig;
  mutated[size_t(pos)] = alt;
  const auto loglik = [&](const std::string& s) {  // positions pos .. pos + 2 of the forward window
    std::vector<int64_t> ids(s.size());
    tok.encode(s, ids.data());
    const Tensor l = chain->forward(Tensor::from_ids(ids), {}).logits;
    double sum = 0;
    for (int64_t t = pos; t <= pos + 2; ++t) {
      double z = 0;
      for (int64_t v = 0; v < l.size(1); ++v) z += std::exp(double(l.item({t - 1, v})));
      sum += double(l.item({t - 1, ids[size_t(t)]})) - std::log(z);
    }
    return sum;
  };
  EXPECT_NEAR(got[0].score[0], loglik(mutated) - loglik(contig), 1e-4);
}

namespace {

struct Png {
  int width = 0, height = 0;
  int64_t dark = 0;  // pixels clearly not white
};
Png read_png(const std::filesystem::path& path) {
  cairo_surface_t* s = cairo_image_surface_create_from_png(path.c_str());
  Png p;
  if (cairo_surface_status(s) == CAIRO_STATUS_SUCCESS) {
    p.width = cairo_image_surface_get_width(s);
    p.height = cairo_image_surface_get_height(s);
    const unsigned char* data = cairo_image_surface_get_data(s);
    const int stride = cairo_image_surface_get_stride(s);
    for (int y = 0; y < p.height; ++y)
      for (int x = 0; x < p.width; ++x) {
        const unsigned char* px = data + y * stride + x * 4;
        p.dark += px[0] + px[1] + px[2] < 3 * 200;
      }
  }
  cairo_surface_destroy(s);
  return p;
}

}  // namespace

TEST(Plot, FiguresAreValidFilesInEveryFormat) {
  TempDir dir;
  plot::Figure fig(1, 2, 400, 300);
  plot::LinePanel roc;
  roc.title = "roc";
  roc.diagonal = true;
  roc.series.push_back({"a", {{0, 0}, {0.2, 0.7}, {1, 1}}, plot::palette(0)});
  fig.draw(0, 0, roc);
  plot::HistogramPanel h;
  h.groups.push_back({"x", {1, 2, 2, 3, 3, 3}});
  fig.draw(0, 1, h);
  fig.save(dir / "f.png");
  fig.save(dir / "f.svg");
  fig.save(dir / "f.pdf");
  const Png png = read_png(dir / "f.png");
  EXPECT_EQ(png.width, 800);
  EXPECT_EQ(png.height, 300);
  EXPECT_GT(png.dark, 2000);  // axes, text, curves
  EXPECT_NE(read_all(dir / "f.svg").find("<svg"), std::string::npos);
  EXPECT_TRUE(read_all(dir / "f.pdf").starts_with("%PDF"));
  EXPECT_NE(fig.svg().find("<svg"), std::string::npos);
  EXPECT_THROW(fig.save(dir / "f.jpg"), Error);
  // An empty figure is (nearly) all white: the check above can fail.
  plot::Figure blank(1, 1, 400, 300);
  blank.save(dir / "blank.png");
  EXPECT_EQ(read_png(dir / "blank.png").dark, 0);
  EXPECT_FALSE(std::filesystem::exists(dir / "f.jpg"));
}

TEST(Plot, HeatmapColoursFollowTheValues) {
  TempDir dir;
  plot::HeatmapPanel p;
  p.reference = "ACGT";
  p.values = {{NAN, -1, -1, -1}, {1, NAN, 1, 1}, {0, 0, NAN, 0}, {-1, -1, -1, NAN}};
  plot::Figure fig(1, 1, 400, 260);
  fig.draw(0, 0, p);
  fig.save(dir / "h.png");
  cairo_surface_t* s = cairo_image_surface_create_from_png((dir / "h.png").c_str());
  ASSERT_EQ(cairo_surface_status(s), CAIRO_STATUS_SUCCESS);
  const unsigned char* data = cairo_image_surface_get_data(s);
  const int stride = cairo_image_surface_get_stride(s);
  // Column 1 (values +1) is red, column 0 (values -1) blue: sample the middle of row C (index 1).
  // Layout: heat area from x = 28 to 400 - 28 - 70 - 16 = 286 wide, rows from y = 30 over 260 - 90 px.
  const double cell_w = (400.0 - 28 - 70 - 16) / 4, cell_h = (260.0 - 30 - 60) / 4;
  const auto pixel = [&](int col, int row) {
    const unsigned char* px = data + int(30 + cell_h * (row + 0.5)) * stride + int(28 + cell_w * (col + 0.5)) * 4;
    return std::array<int, 3>{px[2], px[1], px[0]};  // ARGB32 little-endian: B G R A
  };
  const auto red = pixel(1, 0), blue = pixel(0, 1), white = pixel(2, 0);
  EXPECT_GT(red[0], red[2] + 50);
  EXPECT_GT(blue[2], blue[0] + 50);
  EXPECT_GT(white[0], 240);
  EXPECT_GT(white[2], 240);
  cairo_surface_destroy(s);
}
