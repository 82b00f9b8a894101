// Variant-effect scores from a DNA language model, by one or more methods (docs/VARIANTS.md has the
// exact definitions). dll, for causal models: dLL = log P(alt window) - log P(ref window).
// Both windows of a strand start at the same genomic position on the strand's reading direction, so
// every position before the variant cancels exactly; only the allele and what follows it is run per
// allele (LanguageModel::score_continuations: a recurrent model runs the shared prefix once and
// carries its state). Multi-allelic sites share the ref side. The reverse strand reads the reverse complement,
// anchored at the window's other end. Windows near a contig end are shifted inside it, never padded.
//
// llr, for masked (bidirectional) models: the positions where an ALT changes the reference window
// are masked in it, one forward pass, and the sum over them of log p(alt base) - log p(ref base)
// (GPN's score; SNVs and same-length MNPs). embed-dist and inner, for every model: the mean over the
// window of a layer's hidden states for the ref and the alt window; their Euclidean and cosine
// distances, and their inner product (TraitGym's zero-shot features). Every method averages the
// strands scored.
//
// Window convention (documented in `longseq score-variants --help` and docs/VARIANTS.md):
//   W bases of the reference placed around REF: start = pos - floor((W - |REF|) / 2), clamped to
//   [0, contig_length - W]. Forward: ref window = ref[start, start + W); alt window = ref[start, pos) +
//   ALT + the reference after REF, cut to W bases (or to the contig end). Reverse: the reverse
//   complement of the same construction mirrored: both windows end at start + W, the alt window is
//   ref[..., pos) + ALT + ref[pos + |REF|, start + W) cut to W bases from the right.
#pragma once

#include "core/models/lm.h"
#include "genomics/fasta.h"
#include "genomics/tokenizer.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace longseq {

// Why an allele was not scored. Names are what the summary and TSV print.
enum class SkipReason {
  kNone,
  kRefMismatch,        // REF differs from the reference at POS
  kMissingContig,      // contig absent from the reference (after chr/MT name mapping)
  kUnsupportedAllele,  // symbolic <...>, '*', breakend, missing '.', or non-ACGTN letters
  kTooManyN,           // the reference window has more than the allowed fraction of N
  kAlleleTooLong,      // REF or ALT does not fit in the window next to the shared prefix
  kOutOfRange,         // POS + |REF| beyond the contig end
  kNonFinite,          // the model gave a NaN or infinite log-likelihood (an overflow); never written as a score
  kCount,
};
const char* skip_reason_name(SkipReason r);

enum class Reduce { kSum, kMean };

enum class Method { kDll, kLlr, kEmbedDist, kInner };
// "dll", "llr", "embed-dist", "inner"; throws naming the choices.
Method parse_method(const std::string& name);
const char* method_name(Method m);
// The values a method writes per allele, by name: dll -> {"dll"}, embed-dist -> {"l2", "cosine"}.
std::vector<std::string> method_features(Method m);
// Which way a feature points: +1 when a larger value means a more damaging variant (the distances l2
// and cosine), -1 when a smaller one does (dll, llr, inner).
double damage_sign(const std::string& feature);

struct ScoreOptions {
  int64_t window = 0;              // W, bases (>= 2)
  Reduce reduce = Reduce::kSum;    // dll: kMean compares mean log-probabilities per scored position
  bool forward = true, reverse = true;  // strands scored; the score is their mean
  double max_n_fraction = 0.1;     // windows with a larger fraction of N are skipped
  std::vector<Method> methods = {Method::kDll};
  int64_t layer = -1;              // embedding methods: the residual stream after block `layer`; -1: the final normed states
  int64_t mask_id = DnaTokenizer::kMaskId;  // llr: the mask token
  // dll: run the shared prefix once and continue each allele from its state (families that carry
  // state); false runs every window whole, the naive cost (for measuring what sharing saves).
  bool share_prefix = true;
};

// One VCF record as the scorer sees it: reference contig name (already mapped), 0-based position.
struct Site {
  std::string contig;
  int64_t pos = 0;
  std::string ref;
  std::vector<std::string> alts;
};

// One value per feature of the scorer's methods (VariantScorer::features), in order.
struct AlleleScore {
  SkipReason reason = SkipReason::kNone;
  std::vector<double> score, fwd, rev;  // fwd/rev only for the strands scored
};

// The sequences one strand of a site runs: the shared prefix, then the ref suffix and one suffix per
// scorable ALT, all read in the strand's direction (reverse complemented for the reverse strand).
struct StrandWindows {
  std::string prefix;
  std::vector<std::string> suffixes;  // [0] = ref
};

// The window a model scores variants on unless told otherwise: the length it was trained on
// (config.json's longseq_train_length, written by `longseq train`), else its maximum input, capped
// at kDefaultVariantWindowCap bases (recurrent models have no maximum).
constexpr int64_t kDefaultVariantWindowCap = 32768;
int64_t default_variant_window(const Config& config, const LanguageModel& model);

// Upper-cases and checks an allele: true when made only of A, C, G, T, N.
bool is_plain_allele(const std::string& allele);
std::string reverse_complement(const std::string& seq);
// The reference's name for a VCF contig: itself, or the chr-prefixed / unprefixed form, with
// chrM <-> MT; empty when none is present.
std::string map_contig_name(const FastaReader& fasta, const std::string& vcf_contig);

class VariantScorer {
 public:
  // model, tokenizer and fasta must outlive the scorer. Throws when the window is invalid for the
  // model (shorter than 2, longer than its max length), or a method does not apply to it (dll on a
  // bidirectional model, llr on a causal one; the message names the methods that do).
  VariantScorer(const LanguageModel& model, const DnaTokenizer& tokenizer, const FastaReader& fasta, ScoreOptions options);
  const ScoreOptions& options() const { return opt_; }
  // The names of the values each allele gets, method by method.
  const std::vector<std::string>& features() const { return features_; }
  // A site ready to run: skip reasons decided, windows built from the reference.
  struct Prepared {
    std::vector<AlleleScore> scores;             // one per ALT
    std::vector<size_t> alts;                    // ALTs to score
    std::vector<std::pair<bool, StrandWindows>> strands;  // (reverse, windows)
  };
  // Checks the site and reads its windows from the reference. Not thread-safe (one faidx handle):
  // the caller prepares sites in order and runs them in parallel.
  Prepared prepare(const Site& site) const;
  // Runs the model on a prepared site and fills its scores. Thread-safe.
  void run(Prepared& p) const;
  // prepare + run: one score per ALT of `site` (contig as named in the reference).
  std::vector<AlleleScore> score(const Site& site) const;
  // The windows of one strand for the ALTs flagged scorable (exposed for tests).
  StrandWindows windows(const Site& site, const std::string& context, int64_t context_start, int64_t window_start,
                        int64_t window_len, const std::vector<size_t>& alts, bool reverse) const;

 private:
  // Per scorable ALT, one strand's values of every feature (in features() order).
  using Values = std::vector<std::vector<double>>;
  bool uses(Method m) const;
  Values strand_values(const StrandWindows& w) const;
  // Per ALT, each method's features from the token ids of the strand's windows.
  Values dll_values(const std::vector<int64_t>& prefix, const std::vector<std::vector<int64_t>>& suffixes) const;
  Values llr_values(const std::vector<int64_t>& ref, const std::vector<std::vector<int64_t>>& alts) const;
  Values embedding_values(Method m, const std::vector<double>& ref, const std::vector<std::vector<double>>& alts) const;
  // The mean over the window's rows of the chosen layer's hidden states.
  std::vector<double> mean_embedding(const std::vector<int64_t>& ids) const;

  const LanguageModel& model_;
  const DnaTokenizer& tok_;
  const FastaReader& fasta_;
  ScoreOptions opt_;
  std::vector<std::string> features_;
};

}  // namespace longseq
