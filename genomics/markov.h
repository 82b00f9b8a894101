// Order-k Markov chain baselines for DNA language models: counts of every (k-base context, next base)
// over the training runs, Krichevsky-Trofimov smoothed (+1/2), scored on exactly the targets a model
// is validated on (tokens 1.. of each validation window, with at most k previous bases of the same
// window as context, so a chain sees no more context than the model).
#pragma once

#include "core/data/task.h"
#include "genomics/dna_dataset.h"

#include <vector>

namespace longseq {

struct MarkovScore {
  int order = 0;
  double bits_per_base = 0;
  int64_t predicted = 0;
};

// One entry per order 0..max_order (max_order <= 12).
std::vector<MarkovScore> markov_baselines(const DnaCorpus& corpus, int max_order,
                                          const std::vector<std::vector<int64_t>>& windows);

// The masked-LM counterpart: a base predicted from the k bases on each side (counts of every
// (left k, right k, centre) over the training runs, Krichevsky-Trofimov smoothed). Scored on the
// masked positions of `examples` (targets >= 0), with the original window (targets put back) as
// context, cut to the order that fits on both sides inside the window. One entry per order
// 0..max_order (max_order <= 5); `order` is k, the context on each side.
std::vector<MarkovScore> symmetric_markov_baselines(const DnaCorpus& corpus, int max_order, const std::vector<Example>& examples);

}  // namespace longseq
