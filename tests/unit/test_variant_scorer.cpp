// The variant scorer against a naive computation written independently here: build both full windows
// from the documented convention, run each through the model's whole-sequence forward, and subtract
// their log-likelihoods. The scorer's fast path (shared prefix, Mamba state carried, ref shared by
// the ALTs) must agree, for SNVs, insertions, deletions, multi-allelic sites and windows shifted at
// contig ends, on both strands and both reductions. Plus: strand symmetry on a reverse-complemented
// contig, and every skip reason.
#include "core/families/family.h"
#include "core/families/hyena_config.h"
#include "core/families/mamba_config.h"
#include "core/random.h"
#include "genomics/variant_scorer.h"
#include "tests/testing.h"

#include <fstream>

using namespace longseq;
using namespace longseq::testing;

namespace {

std::unique_ptr<LanguageModel> tiny_model(const std::string& family) {
  if (family == "mamba") {
    MambaConfig c;
    c.d_model = 16;
    c.n_layer = 2;
    c.vocab_size = 12;
    c.padded_vocab = 16;
    c.d_state = 8;
    c.d_inner = 32;
    c.dt_rank = 1;
    return random_mamba(c, 11);
  }
  HyenaConfig c;
  c.d_model = 16;
  c.n_layer = 2;
  c.d_inner = 64;
  c.vocab_size = 12;
  c.padded_vocab = 16;
  c.max_seq_len = 130;
  c.filter_order = 16;
  c.activation_freq = 10;
  return random_hyena(c, 12);
}

// log P(seq) = sum_{t >= 1} log p(x_t | x_<t), by one whole forward.
double loglik(const LanguageModel& m, const DnaTokenizer& tok, const std::string& seq) {
  std::vector<int64_t> ids(seq.size());
  tok.encode(seq, ids.data());
  const Tensor logits = m.forward(Tensor::from_ids(ids), {}).logits;
  return sum_next_logprobs(logits, ids.data() + 1, int64_t(ids.size()) - 1);
}

// The documented windows, built from scratch.
struct Naive {
  std::string ref_fwd, alt_fwd, ref_rev, alt_rev;
};
Naive naive_windows(const std::string& contig, int64_t pos, const std::string& ref, const std::string& alt, int64_t window) {
  const int64_t Lc = int64_t(contig.size()), W = std::min(window, Lc), nr = int64_t(ref.size());
  const int64_t start = std::clamp(pos - (W - nr) / 2, int64_t(0), Lc - W), end = start + W;
  Naive n;
  n.ref_fwd = contig.substr(size_t(start), size_t(W));
  n.alt_fwd = (contig.substr(size_t(start), size_t(pos - start)) + alt + contig.substr(size_t(pos + nr))).substr(0, size_t(W));
  n.ref_rev = reverse_complement(n.ref_fwd);
  const std::string left = contig.substr(0, size_t(pos)) + alt, right = contig.substr(size_t(pos + nr), size_t(end - pos - nr));
  const size_t keep = std::min(left.size(), size_t(W) - right.size());
  n.alt_rev = reverse_complement(left.substr(left.size() - keep) + right);
  return n;
}

double naive_delta(const LanguageModel& m, const DnaTokenizer& tok, const std::string& ref_w, const std::string& alt_w, Reduce r) {
  const double a = loglik(m, tok, alt_w), b = loglik(m, tok, ref_w);
  if (r == Reduce::kSum) return a - b;
  return a / double(alt_w.size() - 1) - b / double(ref_w.size() - 1);
}

struct Case {
  int64_t pos;
  std::string ref;
  std::vector<std::string> alts;
};

}  // namespace

TEST(VariantScorer, FastPathEqualsTwoFullWindows) {
  TempDir dir;
  const std::string contig = random_dna(500, 1);
  write_fasta(dir / "ref.fa", {{"c1", contig}});
  const FastaReader fasta = FastaReader::open(dir / "ref.fa");
  const DnaTokenizer tok = DnaTokenizer::standard();
  const int64_t W = 101;
  const auto sub = [&](int64_t p, int64_t n) { return contig.substr(size_t(p), size_t(n)); };
  const std::vector<Case> cases = {
      {250, sub(250, 1), {"A", "C", "G", "T"}},             // multi-allelic SNV (one ALT equals REF)
      {120, sub(120, 1), {sub(120, 1) + "GATTACA"}},        // insertion
      {300, sub(300, 6), {sub(300, 1)}},                    // deletion
      {310, sub(310, 3), {"T", sub(310, 1) + "CC", "GGG"}},  // mixed multi-allelic
      {0, sub(0, 1), {"N"}},                                // first base: window shifted, empty forward prefix
      {3, sub(3, 2), {"A"}},                                // near the start
      {497, sub(497, 3), {"TT"}},                           // at the end: empty reverse prefix
      {460, sub(460, 1), {sub(460, 1) + "ACGTACGTAC"}},      // near the end
  };
  for (const std::string family : {"mamba", "hyenadna"}) {
    const auto model = tiny_model(family);
    for (Reduce reduce : {Reduce::kSum, Reduce::kMean}) {
      const VariantScorer scorer(*model, tok, fasta, {.window = W, .reduce = reduce});
      for (const Case& c : cases) {
        const auto got = scorer.score({"c1", c.pos, c.ref, c.alts});
        ASSERT_EQ(got.size(), c.alts.size());
        for (size_t a = 0; a < c.alts.size(); ++a) {
          SCOPED_TRACE(fmt::format("{} {} pos {} {}>{}", family, reduce == Reduce::kSum ? "sum" : "mean", c.pos, c.ref, c.alts[a]));
          ASSERT_EQ(got[a].reason, SkipReason::kNone);
          const Naive n = naive_windows(contig, c.pos, c.ref, c.alts[a], W);
          ASSERT_EQ(n.ref_fwd.size(), size_t(W));
          const double fwd = naive_delta(*model, tok, n.ref_fwd, n.alt_fwd, reduce);
          const double rev = naive_delta(*model, tok, n.ref_rev, n.alt_rev, reduce);
          // float32 logits, double sums over <= 100 positions of |log p| ~ 2.8
          const double tol = reduce == Reduce::kSum ? 2e-4 : 4e-6;
          EXPECT_NEAR(got[a].fwd[0], fwd, tol);
          EXPECT_NEAR(got[a].rev[0], rev, tol);
          EXPECT_NEAR(got[a].score[0], 0.5 * (fwd + rev), tol);
          if (c.alts[a] == c.ref) {
            EXPECT_EQ(got[a].score[0], 0.0);
          }
        }
      }
    }
  }
}

TEST(VariantScorer, ReverseStrandEqualsForwardOnTheReverseComplement) {
  TempDir dir;
  const std::string contig = random_dna(400, 2), rc = reverse_complement(contig);
  write_fasta(dir / "ref.fa", {{"plus", contig}, {"minus", rc}});
  const FastaReader fasta = FastaReader::open(dir / "ref.fa");
  const DnaTokenizer tok = DnaTokenizer::standard();
  const int64_t W = 81, Lc = 400;  // odd W: SNV windows mirror exactly
  for (const std::string family : {"mamba", "hyenadna"}) {
    const auto model = tiny_model(family);
    const VariantScorer fwd_only(*model, tok, fasta, {.window = W, .forward = true, .reverse = false});
    const VariantScorer rev_only(*model, tok, fasta, {.window = W, .forward = false, .reverse = true});
    for (int64_t pos : {5, 40, 200, 399}) {
      const std::string ref(1, contig[size_t(pos)]);
      const std::string alt = ref == "A" ? "G" : "A";
      const auto on_plus = rev_only.score({"plus", pos, ref, {alt}});
      const auto on_minus = fwd_only.score({"minus", Lc - 1 - pos, reverse_complement(ref), {reverse_complement(alt)}});
      ASSERT_EQ(on_plus[0].reason, SkipReason::kNone);
      EXPECT_NEAR(on_plus[0].score[0], on_minus[0].score[0], 1e-4) << family << " pos " << pos;
      EXPECT_NE(on_plus[0].score[0], 0.0);
    }
  }
}

TEST(VariantScorer, SkipReasons) {
  TempDir dir;
  std::string contig = random_dna(300, 3);
  for (int64_t i = 150; i < 200; ++i) contig[size_t(i)] = 'N';  // an N run
  write_fasta(dir / "ref.fa", {{"chr7", contig}, {"MT", random_dna(100, 4)}});
  const FastaReader fasta = FastaReader::open(dir / "ref.fa");
  const DnaTokenizer tok = DnaTokenizer::standard();
  const auto model = tiny_model("mamba");
  const VariantScorer scorer(*model, tok, fasta, {.window = 61});
  const std::string r50(1, contig[50]);
  const std::string wrong = r50 == "A" ? "C" : "A";
  const auto reason = [&](const Site& s, size_t a = 0) { return scorer.score(s).at(a).reason; };
  EXPECT_EQ(reason({"chr7", 50, wrong, {"G"}}), SkipReason::kRefMismatch);
  EXPECT_EQ(reason({"chr9", 50, r50, {"G"}}), SkipReason::kMissingContig);
  EXPECT_EQ(reason({"chr7", 299, contig.substr(299) + "A", {"A"}}), SkipReason::kOutOfRange);
  EXPECT_EQ(reason({"chr7", 170, "N", {"A"}}), SkipReason::kTooManyN);
  EXPECT_EQ(reason({"chr7", 50, r50, {std::string(40, 'A')}}), SkipReason::kAlleleTooLong);
  EXPECT_EQ(reason({"chr7", 50, contig.substr(50, 62), {r50}}), SkipReason::kAlleleTooLong);
  const auto mixed = scorer.score({"chr7", 50, r50, {"<DEL>", "*", "G]chr7:100]", ".", "R", "g", "TTG"}});
  for (size_t a = 0; a < 5; ++a) EXPECT_EQ(mixed[a].reason, SkipReason::kUnsupportedAllele) << a;
  EXPECT_EQ(mixed[5].reason, SkipReason::kNone);  // lowercase ALT is fine
  EXPECT_EQ(mixed[6].reason, SkipReason::kNone);
  // Windows shorter than the contig-limited window: a 100-base contig with W = 61 still scores.
  EXPECT_EQ(reason({"MT", 99, std::string(1, fasta.fetch("MT", 99, 100)[0]), {"A"}}), SkipReason::kNone);
}

TEST(VariantScorer, ContigNamesAndReverseComplement) {
  TempDir dir;
  write_fasta(dir / "ref.fa", {{"20", "ACGT"}, {"chrM", "ACGT"}, {"chrX", "ACGT"}});
  const FastaReader fasta = FastaReader::open(dir / "ref.fa");
  EXPECT_EQ(map_contig_name(fasta, "20"), "20");
  EXPECT_EQ(map_contig_name(fasta, "chr20"), "20");
  EXPECT_EQ(map_contig_name(fasta, "MT"), "chrM");
  EXPECT_EQ(map_contig_name(fasta, "X"), "chrX");
  EXPECT_EQ(map_contig_name(fasta, "21"), "");
  EXPECT_EQ(reverse_complement("ACGTNacgtR"), "Racgt" "NACGT");
  EXPECT_TRUE(is_plain_allele("ACGTNacgtn"));
  EXPECT_FALSE(is_plain_allele(""));
  EXPECT_FALSE(is_plain_allele("<INS>"));
}

TEST(VariantScorer, WindowLongerThanTheModelIsAnError) {
  TempDir dir;
  write_fasta(dir / "ref.fa", {{"c", random_dna(200, 5)}});
  const FastaReader fasta = FastaReader::open(dir / "ref.fa");
  const auto model = tiny_model("hyenadna");  // max_seq_len 130
  EXPECT_THROW(VariantScorer(*model, DnaTokenizer::standard(), fasta, {.window = 131}), Error);
  EXPECT_THROW(VariantScorer(*model, DnaTokenizer::standard(), fasta, {.window = 1}), Error);
}

// The masked-LM and embedding methods against a direct computation from `forward` written here: the
// documented windows (naive_windows), the changed positions masked in the reference window and the
// log-softmax read off the logits; the mean of the final hidden states of the two windows and their
// distances. SNVs, a multi-allelic SNV, an MNP and an indel (skipped for llr), both strands.
TEST(VariantScorer, MaskedAndEmbeddingMethodsEqualADirectComputation) {
  TempDir dir;
  const std::string contig = random_dna(400, 3);
  write_fasta(dir / "ref.fa", {{"c1", contig}});
  const FastaReader fasta = FastaReader::open(dir / "ref.fa");
  const DnaTokenizer tok = DnaTokenizer::standard();
  nlohmann::json config = {{"model_type", "caduceus"}, {"d_model", 8}, {"n_layer", 2}, {"vocab_size", 12}, {"rcps", true},
                           {"complement_map", {{"7", 10}, {"8", 9}, {"9", 8}, {"10", 7}}},
                           {"ssm_cfg", {{"d_state", 4}, {"d_conv", 4}, {"expand", 2}}}};
  const auto model = new_model_from_json(config, 71);
  const int64_t W = 64;
  const auto ids_of = [&](const std::string& s) {
    std::vector<int64_t> ids(s.size());
    tok.encode(s, ids.data());
    return ids;
  };
  const auto llr = [&](const std::string& ref_w, const std::vector<std::string>& alt_ws, size_t which) {
    std::vector<int64_t> ref = ids_of(ref_w), masked = ref;
    for (const auto& a : alt_ws)
      for (size_t i = 0; i < a.size(); ++i)
        if (a[i] != ref_w[i]) masked[i] = 3;
    const Tensor logits = model->forward(Tensor::from_ids(masked), {}).logits;
    const int64_t V = logits.size(1);
    double s = 0;
    for (size_t i = 0; i < ref_w.size(); ++i) {
      if (alt_ws[which][i] == ref_w[i]) continue;
      const float* row = logits.data<float>() + int64_t(i) * V;  // the softmax normaliser cancels within a row
      s += double(row[ids_of(alt_ws[which]).at(i)]) - double(row[ref[i]]);
    }
    return s;
  };
  const auto mean_embedding = [&](const std::string& w) {
    const Tensor h = model->forward(Tensor::from_ids(ids_of(w)), {.hidden = true}).final_hidden;
    std::vector<double> m(size_t(h.size(1)), 0.0);
    for (int64_t t = 0; t < h.size(0); ++t)
      for (int64_t j = 0; j < h.size(1); ++j) m[size_t(j)] += double(h.data<float>()[t * h.size(1) + j]) / double(h.size(0));
    return m;
  };
  ScoreOptions o;
  o.window = W;
  o.methods = {Method::kLlr, Method::kEmbedDist, Method::kInner};
  const VariantScorer scorer(*model, tok, fasta, o);
  EXPECT_EQ(scorer.features(), (std::vector<std::string>{"llr", "l2", "cosine", "inner"}));
  const auto sub = [&](int64_t p, int64_t n) { return contig.substr(size_t(p), size_t(n)); };
  const std::vector<Case> cases = {{200, sub(200, 1), {"A", "C", "G"}}, {100, sub(100, 3), {"TTT"}}, {5, sub(5, 1), {"G"}}};
  for (const Case& c : cases) {
    const auto got = scorer.score({"c1", c.pos, c.ref, c.alts});
    std::vector<Naive> n;
    for (const auto& a : c.alts) n.push_back(naive_windows(contig, c.pos, c.ref, a, W));
    for (size_t a = 0; a < c.alts.size(); ++a) {
      ASSERT_EQ(got[a].reason, SkipReason::kNone);
      double want_llr = 0, want_l2 = 0, want_cos = 0, want_inner = 0;
      for (const bool rev : {false, true}) {
        std::vector<std::string> alt_ws;
        for (const Naive& x : n) alt_ws.push_back(rev ? x.alt_rev : x.alt_fwd);
        const std::string ref_w = rev ? n[a].ref_rev : n[a].ref_fwd;
        want_llr += 0.5 * llr(ref_w, alt_ws, a);
        const auto er = mean_embedding(ref_w), ea = mean_embedding(alt_ws[a]);
        double rr = 0, aa = 0, ra = 0, dd = 0;
        for (size_t j = 0; j < er.size(); ++j) rr += er[j] * er[j], aa += ea[j] * ea[j], ra += er[j] * ea[j], dd += (er[j] - ea[j]) * (er[j] - ea[j]);
        want_l2 += 0.5 * std::sqrt(dd), want_cos += 0.5 * (1 - ra / std::sqrt(rr * aa)), want_inner += 0.5 * ra;
      }
      EXPECT_NEAR(got[a].score[0], want_llr, 1e-5) << c.pos << " " << c.alts[a];
      EXPECT_NEAR(got[a].score[1], want_l2, 1e-5);
      EXPECT_NEAR(got[a].score[2], want_cos, 1e-6);
      EXPECT_NEAR(got[a].score[3], want_inner, 1e-4 * std::max(1.0, std::abs(want_inner)));
      if (c.alts[a] != c.ref) {
        EXPECT_NE(got[a].score[0], 0.0);
      }
    }
  }
  // llr reads same-length alleles only; dll does not apply to a masked model, llr not to a causal one.
  EXPECT_EQ(scorer.score({"c1", 50, sub(50, 2), {sub(50, 1)}})[0].reason, SkipReason::kUnsupportedAllele);
  o.methods = {Method::kDll};
  EXPECT_THROW(VariantScorer(*model, tok, fasta, o), Error);
  o.methods = {Method::kLlr};
  EXPECT_THROW(VariantScorer(*tiny_model("mamba"), tok, fasta, o), Error);
}

TEST(VariantScorer, WithoutPrefixSharingGivesTheSameScores) {
  TempDir dir;
  const std::string contig = random_dna(400, 41);
  write_fasta(dir / "ref.fa", {{"c", contig}});
  const FastaReader fasta = FastaReader::open(dir / "ref.fa");
  const DnaTokenizer tok = DnaTokenizer::standard();
  const auto model = tiny_model("mamba");
  const VariantScorer shared(*model, tok, fasta, {.window = 99});
  const VariantScorer whole(*model, tok, fasta, {.window = 99, .share_prefix = false});
  for (int64_t pos : {0, 1, 150, 397, 399}) {
    const Site s{"c", pos, std::string(1, contig[size_t(pos)]), {"A", "C", "G", "T"}};
    const auto a = shared.score(s), b = whole.score(s);
    for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(a[i].score[0], b[i].score[0], 2e-4) << pos << " " << i;
  }
}
