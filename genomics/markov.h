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

#include "core/models/lm.h"

#include <filesystem>

namespace longseq {

// An order-k Markov chain as a causal language model, so every scorer that takes a model (the
// variant scorer's dll, `bench-vep`'s baseline) runs it unchanged. Fitted on both strands of every
// contig of a FASTA (counts of every (k-base context, next base); an N, or any non-ACGT letter,
// breaks the context), Krichevsky-Trofimov smoothed. Ids are DnaTokenizer::standard()'s; a position
// with fewer than k bases of context since the sequence start or the last non-ACGT base uses the
// chain of that shorter order. The logits are log-probabilities: A/C/G/T get the chain's, every other
// id log(1e-9), so a non-ACGT next token costs the same in every window.
class MarkovLm final : public LanguageModel {
 public:
  // Throws naming the file when it cannot be read; order in 0..12.
  static std::unique_ptr<MarkovLm> fit(const std::filesystem::path& fasta, int order);
  int order() const { return order_; }
  // Bases counted (both strands).
  int64_t trained_bases() const { return trained_; }

  std::string family() const override { return "markov"; }
  int64_t vocab_size() const override { return 16; }
  int64_t n_layer() const override { return 0; }
  int64_t d_model() const override { return 0; }
  int64_t max_length() const override { return 0; }
  // Logits only: asking for hidden states throws (a chain has none).
  ForwardOutputs forward(const Tensor& ids, const ForwardOptions& options) const override;
  void stream_logits(int64_t length, const IdSource& ids, int64_t chunk, const LogitsSink& sink) const override;

 private:
  struct Context {  // the last `have` (<= order) bases, most recent lowest
    uint64_t bases = 0;
    int have = 0;
  };
  void count(const std::string& seq);
  void logits_rows(const int64_t* ids, int64_t n, Context& ctx, float* out) const;
  int order_ = 0;
  int64_t trained_ = 0;
  std::vector<std::vector<uint32_t>> counts_;  // [k][ctx * 4 + base]
  std::array<int, 256> base_of_id_{};
};

}  // namespace longseq
