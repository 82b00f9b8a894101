#include "genomics/variant_scorer.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <cctype>

namespace longseq {

namespace {

std::string upper(std::string s) {
  for (char& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

bool is_acgt(char c) {
  switch (c) {
    case 'A': case 'C': case 'G': case 'T': case 'a': case 'c': case 'g': case 't': return true;
    default: return false;
  }
}

std::vector<int64_t> encode(const DnaTokenizer& tok, const std::string& seq) {
  std::vector<int64_t> ids(seq.size());
  tok.encode(seq, ids.data());
  return ids;
}

}  // namespace

const char* skip_reason_name(SkipReason r) {
  switch (r) {
    case SkipReason::kNone: return "scored";
    case SkipReason::kRefMismatch: return "ref_mismatch";
    case SkipReason::kMissingContig: return "missing_contig";
    case SkipReason::kUnsupportedAllele: return "unsupported_allele";
    case SkipReason::kTooManyN: return "too_many_n";
    case SkipReason::kAlleleTooLong: return "allele_too_long";
    case SkipReason::kOutOfRange: return "out_of_range";
    case SkipReason::kNonFinite: return "non_finite";
    case SkipReason::kCount: break;
  }
  return "?";
}

bool is_plain_allele(const std::string& allele) {
  if (allele.empty()) return false;
  return std::all_of(allele.begin(), allele.end(), [](char c) { return is_acgt(c) || c == 'N' || c == 'n'; });
}

std::string reverse_complement(const std::string& seq) {
  std::string out(seq.rbegin(), seq.rend());
  for (char& c : out) {
    switch (c) {
      case 'A': c = 'T'; break;
      case 'C': c = 'G'; break;
      case 'G': c = 'C'; break;
      case 'T': c = 'A'; break;
      case 'a': c = 't'; break;
      case 'c': c = 'g'; break;
      case 'g': c = 'c'; break;
      case 't': c = 'a'; break;
      default: break;  // N and IUPAC codes stay as they are (the tokenizer maps them to N)
    }
  }
  return out;
}

std::string map_contig_name(const FastaReader& fasta, const std::string& name) {
  if (fasta.has_contig(name)) return name;
  std::vector<std::string> candidates;
  const bool chr = name.rfind("chr", 0) == 0;
  const std::string bare = chr ? name.substr(3) : name;
  candidates.push_back(chr ? bare : "chr" + name);
  if (bare == "M" || bare == "MT") {
    for (const char* alias : {"MT", "chrM", "chrMT", "M"}) candidates.emplace_back(alias);
  }
  for (const auto& c : candidates)
    if (fasta.has_contig(c)) return c;
  return {};
}

VariantScorer::VariantScorer(const LanguageModel& model, const DnaTokenizer& tokenizer, const FastaReader& fasta,
                             ScoreOptions options)
    : model_(model), tok_(tokenizer), fasta_(fasta), opt_(options) {
  LS_CHECK(opt_.window >= 2, "the window must be at least 2 bases, got {}", opt_.window);
  LS_CHECK(model_.max_length() == 0 || opt_.window <= model_.max_length(),
           "--window {} is longer than the model accepts ({}); use --window {} or less", opt_.window, model_.max_length(),
           model_.max_length());
  LS_CHECK(opt_.forward || opt_.reverse, "score at least one strand");
}

StrandWindows VariantScorer::windows(const Site& site, const std::string& context, int64_t context_start, int64_t start,
                                     int64_t W, const std::vector<size_t>& alts, bool reverse) const {
  const int64_t pos = site.pos - context_start, ref_end = pos + int64_t(site.ref.size());
  const int64_t s = start - context_start, e = s + W;
  const auto sub = [&](int64_t a, int64_t b) { return context.substr(size_t(a), size_t(b - a)); };
  StrandWindows w;
  if (!reverse) {
    w.prefix = sub(s, pos);
    const int64_t room = W - (pos - s);
    w.suffixes.push_back(sub(pos, e));
    for (size_t a : alts) w.suffixes.push_back((upper(site.alts[a]) + context.substr(size_t(ref_end))).substr(0, size_t(room)));
  } else {
    w.prefix = reverse_complement(sub(ref_end, e));
    const int64_t room = W - (e - ref_end);
    w.suffixes.push_back(reverse_complement(sub(s, ref_end)));
    for (size_t a : alts) {
      const std::string left = context.substr(0, size_t(pos)) + upper(site.alts[a]);
      const size_t keep = std::min(left.size(), size_t(room));
      w.suffixes.push_back(reverse_complement(left.substr(left.size() - keep)));
    }
  }
  return w;
}

VariantScorer::Prepared VariantScorer::prepare(const Site& site) const {
  Prepared p;
  p.scores.resize(site.alts.size());
  const auto skip_all = [&](SkipReason r) {
    for (auto& a : p.scores) a.reason = r;
    return p;
  };
  if (!fasta_.has_contig(site.contig)) return skip_all(SkipReason::kMissingContig);
  if (!is_plain_allele(site.ref)) return skip_all(SkipReason::kUnsupportedAllele);
  const int64_t Lc = fasta_.length(site.contig), n_ref = int64_t(site.ref.size());
  if (site.pos < 0 || site.pos + n_ref > Lc) return skip_all(SkipReason::kOutOfRange);
  const int64_t W = std::min(opt_.window, Lc);
  if (n_ref > W) return skip_all(SkipReason::kAlleleTooLong);
  const int64_t cs = std::max<int64_t>(0, site.pos - opt_.window), ce = std::min(Lc, site.pos + n_ref + opt_.window);
  const std::string context = fasta_.fetch(site.contig, cs, ce);
  if (upper(context.substr(size_t(site.pos - cs), size_t(n_ref))) != upper(site.ref)) return skip_all(SkipReason::kRefMismatch);
  const int64_t start = std::clamp(site.pos - (W - n_ref) / 2, int64_t(0), Lc - W);
  const int64_t n_count = std::count_if(context.begin() + (start - cs), context.begin() + (start - cs + W),
                                        [](char c) { return !is_acgt(c); });
  if (double(n_count) > opt_.max_n_fraction * double(W)) return skip_all(SkipReason::kTooManyN);

  // Which ALTs fit: each needs room after the shared prefix on every strand scored.
  const int64_t room_fwd = W - (site.pos - start), room_rev = W - (start + W - site.pos - n_ref);
  for (size_t a = 0; a < site.alts.size(); ++a) {
    const int64_t n_alt = int64_t(site.alts[a].size());
    if (!is_plain_allele(site.alts[a]))
      p.scores[a].reason = SkipReason::kUnsupportedAllele;
    else if ((opt_.forward && n_alt > room_fwd) || (opt_.reverse && n_alt > room_rev))
      p.scores[a].reason = SkipReason::kAlleleTooLong;
    else
      p.alts.push_back(a);
  }
  if (p.alts.empty()) return p;
  for (bool reverse : {false, true})
    if (reverse ? opt_.reverse : opt_.forward) p.strands.emplace_back(reverse, windows(site, context, cs, start, W, p.alts, reverse));
  return p;
}

void VariantScorer::run(Prepared& p) const {
  for (const auto& [reverse, w] : p.strands) {
    const std::vector<int64_t> prefix = encode(tok_, w.prefix);
    std::vector<std::vector<int64_t>> suffixes;
    for (const auto& s : w.suffixes) suffixes.push_back(encode(tok_, s));
    const ContinuationScores c = model_.score_continuations(prefix, suffixes);
    const double P = double(prefix.size());
    const auto mean_ll = [&](size_t k) {  // mean log-probability over the window's scored positions
      return (c.prefix + c.suffix[k]) / std::max(P + double(suffixes[k].size()) - 1, 1.0);
    };
    for (size_t k = 0; k < p.alts.size(); ++k) {
      // Sum: the shared prefix cancels exactly, so it is never added in.
      const double d = opt_.reduce == Reduce::kSum ? c.suffix[k + 1] - c.suffix[0] : mean_ll(k + 1) - mean_ll(0);
      AlleleScore& r = p.scores[p.alts[k]];
      (reverse ? r.rev : r.fwd) = d;
      r.score += d / double(p.strands.size());
    }
  }
  // An overflow inside the model (weights are checked at load, activations are not) must never be
  // written as a score: the allele is reported as skipped instead.
  for (size_t i : p.alts) {
    AlleleScore& r = p.scores[i];
    if (!std::isfinite(r.score) || !std::isfinite(r.fwd) || !std::isfinite(r.rev)) r = {.reason = SkipReason::kNonFinite};
  }
}

std::vector<AlleleScore> VariantScorer::score(const Site& site) const {
  Prepared p = prepare(site);
  run(p);
  return p.scores;
}

}  // namespace longseq
