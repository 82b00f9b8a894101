#include "genomics/markov.h"

#include "core/error.h"

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

}  // namespace longseq
