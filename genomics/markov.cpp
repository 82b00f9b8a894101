#include "genomics/markov.h"

#include "core/error.h"
#include "genomics/fasta.h"
#include "genomics/variant_scorer.h"  // reverse_complement

#include <algorithm>
#include <cmath>

namespace longseq {

std::vector<MarkovScore> markov_baselines(const DnaCorpus& corpus, int max_order,
                                          const std::vector<std::vector<int64_t>>& windows) {
  LS_CHECK(max_order >= 0 && max_order <= 12, "Markov order must be in 0..12, got {}", max_order);
  // counts[k][ctx * 4 + base], ctx = the last k bases in base 4 (most recent lowest).
  std::vector<std::vector<uint32_t>> counts(size_t(max_order + 1));
  for (int k = 0; k <= max_order; ++k) counts[size_t(k)].assign(size_t(4) << (2 * k), 0);
  for (const auto& run : corpus.train_runs()) {
    const auto& tok = corpus.tokens(run.contig);
    uint64_t ctx = 0;
    for (int64_t i = run.start; i < run.end; ++i) {
      const int b = corpus.base_index(tok[size_t(i)]);
      const int64_t have = std::min<int64_t>(i - run.start, max_order);
      for (int k = 0; k <= have; ++k) ++counts[size_t(k)][((ctx & ((uint64_t(1) << (2 * k)) - 1)) << 2) | uint64_t(b)];
      ctx = (ctx << 2) | uint64_t(b);
    }
  }
  std::vector<MarkovScore> out;
  for (int k = 0; k <= max_order; ++k) {
    double bits = 0;
    int64_t n = 0;
    for (const auto& w : windows) {
      uint64_t ctx = 0;
      for (size_t t = 0; t < w.size(); ++t) {
        const int b = corpus.base_index(w[t]);
        LS_CHECK(b >= 0, "validation window with a non-ACGT token");
        if (t > 0) {
          const int order = int(std::min<size_t>(t, size_t(k)));
          const uint64_t c = (ctx & ((uint64_t(1) << (2 * order)) - 1)) << 2;
          const auto& cnt = counts[size_t(order)];
          const double tot = double(cnt[c] + cnt[c + 1] + cnt[c + 2] + cnt[c + 3]);
          bits -= std::log2((double(cnt[c + uint64_t(b)]) + 0.5) / (tot + 2.0));
          ++n;
        }
        ctx = (ctx << 2) | uint64_t(b);
      }
    }
    out.push_back({k, n ? bits / double(n) : 0.0, n});
  }
  return out;
}

namespace {

// Context index of the k bases left and right of position i of `bases` (base indices 0..3), left
// nearest-first then right nearest-first, 2 bits each.
uint64_t symmetric_context(const std::vector<int>& bases, size_t i, int k) {
  uint64_t ctx = 0;
  for (int j = 1; j <= k; ++j) ctx = (ctx << 4) | (uint64_t(bases[i - size_t(j)]) << 2) | uint64_t(bases[i + size_t(j)]);
  return ctx;
}

}  // namespace

std::vector<MarkovScore> symmetric_markov_baselines(const DnaCorpus& corpus, int max_order, const std::vector<Example>& examples) {
  LS_CHECK(max_order >= 0 && max_order <= 5, "symmetric Markov order must be in 0..5, got {}", max_order);
  std::vector<std::vector<uint32_t>> counts(size_t(max_order + 1));
  for (int k = 0; k <= max_order; ++k) counts[size_t(k)].assign(size_t(4) << (4 * k), 0);
  std::vector<int> bases;
  for (const auto& run : corpus.train_runs()) {
    const auto& tok = corpus.tokens(run.contig);
    bases.clear();
    for (int64_t i = run.start; i < run.end; ++i) bases.push_back(corpus.base_index(tok[size_t(i)]));
    for (size_t i = 0; i < bases.size(); ++i) {
      const int fits = int(std::min({i, bases.size() - 1 - i, size_t(max_order)}));
      for (int k = 0; k <= fits; ++k) ++counts[size_t(k)][(symmetric_context(bases, i, k) << 2) | uint64_t(bases[i])];
    }
  }
  std::vector<MarkovScore> out;
  for (int k = 0; k <= max_order; ++k) {
    double bits = 0;
    int64_t n = 0;
    for (const Example& e : examples) {
      bases.assign(e.ids.size(), 0);
      for (size_t i = 0; i < e.ids.size(); ++i) {
        bases[i] = corpus.base_index(e.targets[i] >= 0 ? e.targets[i] : e.ids[i]);
        LS_CHECK(bases[i] >= 0, "validation window with a non-ACGT token");
      }
      for (size_t i = 0; i < bases.size(); ++i) {
        if (e.targets[i] < 0) continue;
        const int order = int(std::min({i, bases.size() - 1 - i, size_t(k)}));
        const uint64_t c = symmetric_context(bases, i, order) << 2;
        const auto& cnt = counts[size_t(order)];
        const double tot = double(cnt[c] + cnt[c + 1] + cnt[c + 2] + cnt[c + 3]);
        bits -= std::log2((double(cnt[c + uint64_t(bases[i])]) + 0.5) / (tot + 2.0));
        ++n;
      }
    }
    out.push_back({k, n ? bits / double(n) : 0.0, n});
  }
  return out;
}

std::unique_ptr<MarkovLm> MarkovLm::fit(const std::filesystem::path& fasta, int order) {
  LS_CHECK(order >= 0 && order <= 12, "Markov order must be in 0..12, got {}", order);
  auto m = std::unique_ptr<MarkovLm>(new MarkovLm());
  m->order_ = order;
  m->counts_.resize(size_t(order + 1));
  for (int k = 0; k <= order; ++k) m->counts_[size_t(k)].assign(size_t(4) << (2 * k), 0);
  const DnaTokenizer tok = DnaTokenizer::standard();
  m->base_of_id_.fill(-1);
  for (int b = 0; b < 4; ++b) m->base_of_id_[size_t(tok.id("ACGT"[b]))] = b;
  const FastaReader reader = FastaReader::open(fasta);
  for (const std::string& contig : reader.contigs()) {
    std::string seq = reader.fetch(contig, 0, reader.length(contig));
    for (char& c : seq) c = char(std::toupper(static_cast<unsigned char>(c)));
    m->count(seq);
    m->count(reverse_complement(seq));
  }
  return m;
}

void MarkovLm::count(const std::string& seq) {
  uint64_t ctx = 0;
  int have = 0;
  for (char c : seq) {
    const int b = c == 'A' ? 0 : c == 'C' ? 1 : c == 'G' ? 2 : c == 'T' ? 3 : -1;
    if (b < 0) {
      have = 0;
      ctx = 0;
      continue;
    }
    for (int k = 0; k <= have; ++k) ++counts_[size_t(k)][((ctx & ((uint64_t(1) << (2 * k)) - 1)) << 2) | uint64_t(b)];
    ctx = (ctx << 2) | uint64_t(b);
    have = std::min(have + 1, order_);
    ++trained_;
  }
}

void MarkovLm::logits_rows(const int64_t* ids, int64_t n, Context& ctx, float* out) const {
  const DnaTokenizer tok = DnaTokenizer::standard();
  const float other = std::log(1e-9f);
  for (int64_t t = 0; t < n; ++t) {
    const int b = ids[t] >= 0 && ids[t] < 256 ? base_of_id_[size_t(ids[t])] : -1;
    if (b < 0) {
      ctx = {};
    } else {
      ctx.bases = (ctx.bases << 2) | uint64_t(b);
      ctx.have = std::min(ctx.have + 1, order_);
    }
    float* row = out + t * vocab_size();
    std::fill(row, row + vocab_size(), other);
    const uint64_t c = (ctx.bases & ((uint64_t(1) << (2 * ctx.have)) - 1)) << 2;
    const auto& cnt = counts_[size_t(ctx.have)];
    const double tot = double(cnt[c] + cnt[c + 1] + cnt[c + 2] + cnt[c + 3]);
    for (int nb = 0; nb < 4; ++nb) row[tok.id("ACGT"[nb])] = float(std::log((double(cnt[c + uint64_t(nb)]) + 0.5) / (tot + 2.0)));
  }
}

ForwardOutputs MarkovLm::forward(const Tensor& ids, const ForwardOptions& options) const {
  LS_CHECK(!options.hidden, "a Markov chain has no hidden states (use --method dll)");
  LS_CHECK(ids.dim() == 1, "forward takes one sequence of token ids");
  const Tensor ids64 = ids.to(DType::I64);
  ForwardOutputs out;
  out.logits = Tensor::empty({ids.size(0), vocab_size()});
  Context ctx;
  logits_rows(ids64.data<int64_t>(), ids.size(0), ctx, out.logits.data<float>());
  return out;
}

void MarkovLm::stream_logits(int64_t length, const IdSource& ids, int64_t chunk, const LogitsSink& sink) const {
  LS_CHECK(chunk >= 1, "chunk must be >= 1");
  Context ctx;
  for (int64_t start = 0; start < length; start += chunk) {
    const int64_t n = std::min(chunk, length - start);
    Tensor part = Tensor::empty({n}, DType::I64);
    ids(start, part);
    Tensor logits = Tensor::empty({n, vocab_size()});
    logits_rows(part.data<int64_t>(), n, ctx, logits.data<float>());
    sink(start, logits);
  }
}

}  // namespace longseq
