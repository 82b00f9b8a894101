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

Method parse_method(const std::string& name) {
  for (Method m : {Method::kDll, Method::kLlr, Method::kEmbedDist, Method::kInner})
    if (name == method_name(m)) return m;
  fail("unknown scoring method '{}' (use dll, llr, embed-dist or inner)", name);
}

const char* method_name(Method m) {
  switch (m) {
    case Method::kDll: return "dll";
    case Method::kLlr: return "llr";
    case Method::kEmbedDist: return "embed-dist";
    case Method::kInner: return "inner";
  }
  return "?";
}

std::vector<std::string> method_features(Method m) {
  if (m == Method::kEmbedDist) return {"l2", "cosine"};
  return {m == Method::kInner ? "inner" : method_name(m)};
}

int64_t default_variant_window(const Config& config, const LanguageModel& model) {
  const int64_t trained = config.get_int("longseq_train_length", 0);
  const int64_t natural = trained > 0 ? trained : model.max_length();
  return natural > 0 ? std::min(natural, kDefaultVariantWindowCap) : kDefaultVariantWindowCap;
}

double damage_sign(const std::string& feature) { return feature == "l2" || feature == "cosine" ? 1.0 : -1.0; }

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
  LS_CHECK(!opt_.methods.empty(), "give at least one scoring method");
  const char* can = model_.causal() ? "dll, embed-dist or inner" : "llr, embed-dist or inner";
  for (Method m : opt_.methods) {
    LS_CHECK(m != Method::kDll || model_.causal(),
             "--method dll: the {} model is bidirectional (a masked language model), so next-token likelihoods do not apply; use {}",
             model_.family(), can);
    LS_CHECK(m != Method::kLlr || !model_.causal(),
             "--method llr: the {} model is causal (it predicts the next token, not a masked one); use {}", model_.family(), can);
    for (const std::string& f : method_features(m)) {
      LS_CHECK(std::find(features_.begin(), features_.end(), f) == features_.end(), "--method {} is given twice", method_name(m));
      features_.push_back(f);
    }
  }
  LS_CHECK(opt_.layer >= -1 && opt_.layer < model_.n_layer(), "--layer {}: the model has blocks 0..{} (-1: the final normalised states)",
           opt_.layer, model_.n_layer() - 1);
}

bool VariantScorer::uses(Method m) const { return std::find(opt_.methods.begin(), opt_.methods.end(), m) != opt_.methods.end(); }

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
    if (!is_plain_allele(site.alts[a]) || (uses(Method::kLlr) && n_alt != n_ref))  // llr: SNVs and MNPs
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

VariantScorer::Values VariantScorer::dll_values(const std::vector<int64_t>& prefix, const std::vector<std::vector<int64_t>>& suffixes) const {
  // Without sharing, every window runs whole (the base class's definition): the naive baseline the
  // ISM throughput is measured against. Both give the same sums up to float rounding.
  const ContinuationScores c =
      opt_.share_prefix ? model_.score_continuations(prefix, suffixes) : model_.LanguageModel::score_continuations(prefix, suffixes);
  const double P = double(prefix.size());
  const auto mean_ll = [&](size_t k) {  // mean log-probability over the window's scored positions
    return (c.prefix + c.suffix[k]) / std::max(P + double(suffixes[k].size()) - 1, 1.0);
  };
  Values out;
  for (size_t k = 1; k < suffixes.size(); ++k)  // the shared prefix cancels exactly in a sum, so it is never added in
    out.push_back({opt_.reduce == Reduce::kSum ? c.suffix[k] - c.suffix[0] : mean_ll(k) - mean_ll(0)});
  return out;
}

VariantScorer::Values VariantScorer::llr_values(const std::vector<int64_t>& ref, const std::vector<std::vector<int64_t>>& alts) const {
  // Same-length alleles (prepare() skips the rest): the windows differ only where an ALT changes a
  // base. Those positions, for every ALT of the site, are masked in one reference window.
  std::vector<int64_t> masked = ref;
  for (const auto& alt : alts)
    for (size_t i = 0; i < ref.size(); ++i)
      if (alt[i] != ref[i]) masked[i] = opt_.mask_id;
  const Tensor logits = model_.forward(Tensor::from_ids(masked), {}).logits;
  const int64_t V = logits.size(1);
  const auto log_prob = [&](size_t i, int64_t id) {
    const float* row = logits.data<float>() + int64_t(i) * V;
    const float mx = *std::max_element(row, row + V);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(double(row[v] - mx));
    return double(row[id] - mx) - std::log(sum);
  };
  Values out;
  for (const auto& alt : alts) {
    double llr = 0;
    for (size_t i = 0; i < ref.size(); ++i)
      if (alt[i] != ref[i]) llr += log_prob(i, alt[i]) - log_prob(i, ref[i]);
    out.push_back({llr});
  }
  return out;
}

std::vector<double> VariantScorer::mean_embedding(const std::vector<int64_t>& ids) const {
  const ForwardOutputs f =
      model_.forward(Tensor::from_ids(ids), {.hidden = true, .hidden_blocks = {opt_.layer < 0 ? model_.n_layer() : opt_.layer}});
  const Tensor& h = opt_.layer < 0 ? f.final_hidden : f.hidden.at(size_t(opt_.layer));
  const int64_t L = h.size(0), d = h.size(1);
  std::vector<double> mean(static_cast<size_t>(d), 0.0);
  for (int64_t t = 0; t < L; ++t)
    for (int64_t j = 0; j < d; ++j) mean[size_t(j)] += double(h.data<float>()[t * d + j]);
  for (double& m : mean) m /= double(L);
  return mean;
}

VariantScorer::Values VariantScorer::embedding_values(Method m, const std::vector<double>& ref,
                                                      const std::vector<std::vector<double>>& alts) const {
  const auto dot = [](const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0;
    for (size_t j = 0; j < a.size(); ++j) s += a[j] * b[j];
    return s;
  };
  Values out;
  for (const auto& alt : alts) {
    const double inner = dot(ref, alt), rr = dot(ref, ref), aa = dot(alt, alt);
    if (m == Method::kInner) {
      out.push_back({inner});
      continue;
    }
    const double l2 = std::sqrt(std::max(0.0, rr + aa - 2 * inner)), norms = std::sqrt(rr * aa);
    out.push_back({l2, norms > 0 ? 1.0 - inner / norms : 0.0});
  }
  return out;
}

VariantScorer::Values VariantScorer::strand_values(const StrandWindows& w) const {
  const std::vector<int64_t> prefix = encode(tok_, w.prefix);
  std::vector<std::vector<int64_t>> suffixes, windows;  // [0] = ref
  for (const auto& s : w.suffixes) {
    suffixes.push_back(encode(tok_, s));
    windows.push_back(prefix);
    windows.back().insert(windows.back().end(), suffixes.back().begin(), suffixes.back().end());
  }
  const std::vector<std::vector<int64_t>> alt_windows(windows.begin() + 1, windows.end());
  std::vector<double> ref_embedding;  // one forward of the reference window, shared by its ALTs and methods
  std::vector<std::vector<double>> alt_embeddings;
  if (uses(Method::kEmbedDist) || uses(Method::kInner)) {
    ref_embedding = mean_embedding(windows[0]);
    for (const auto& a : alt_windows) alt_embeddings.push_back(mean_embedding(a));
  }
  Values out(alt_windows.size());
  for (Method m : opt_.methods) {
    const Values v = m == Method::kDll   ? dll_values(prefix, suffixes)
                     : m == Method::kLlr ? llr_values(windows[0], alt_windows)
                                         : embedding_values(m, ref_embedding, alt_embeddings);
    for (size_t k = 0; k < out.size(); ++k) out[k].insert(out[k].end(), v[k].begin(), v[k].end());
  }
  return out;
}

void VariantScorer::run(Prepared& p) const {
  const size_t F = features_.size();
  for (size_t i : p.alts) {
    AlleleScore& r = p.scores[i];
    r.score.assign(F, 0.0), r.fwd.assign(F, 0.0), r.rev.assign(F, 0.0);
  }
  for (const auto& [reverse, w] : p.strands) {
    const Values v = strand_values(w);
    for (size_t k = 0; k < p.alts.size(); ++k) {
      AlleleScore& r = p.scores[p.alts[k]];
      for (size_t f = 0; f < F; ++f) {
        (reverse ? r.rev : r.fwd)[f] = v[k][f];
        r.score[f] += v[k][f] / double(p.strands.size());
      }
    }
  }
  // An overflow inside the model (weights are checked at load, activations are not) must never be
  // written as a score: the allele is reported as skipped instead.
  const auto finite = [](const std::vector<double>& v) { return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); }); };
  for (size_t i : p.alts) {
    AlleleScore& r = p.scores[i];
    if (!finite(r.score) || !finite(r.fwd) || !finite(r.rev)) r = {.reason = SkipReason::kNonFinite};
  }
}

std::vector<AlleleScore> VariantScorer::score(const Site& site) const {
  Prepared p = prepare(site);
  run(p);
  return p.scores;
}

}  // namespace longseq
