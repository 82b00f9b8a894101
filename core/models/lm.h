// The interface every language model implements, so `forward`, `loglik` and the variant scorer work
// the same on every family (loading and creating them: core/families/family.h). Letters: L length,
// d d_model, V padded vocabulary.
#pragma once

#include "core/model_dir.h"
#include "core/tensor.h"

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace longseq {

struct ForwardOutputs {
  Tensor logits;                // (L, V)
  std::vector<Tensor> hidden;   // per layer (L, d): residual stream after each block (when asked)
  Tensor final_hidden;          // (L, d): final norm output (when asked)
  std::vector<std::pair<std::string, Tensor>> extra;  // family-specific states, fixture naming
};

struct ForwardOptions {
  bool hidden = false;    // fill hidden and final_hidden
  // With hidden: the blocks whose hidden state is kept (empty: every block); the others' entries in
  // ForwardOutputs::hidden stay empty tensors, so a long window holds only what is asked for.
  std::vector<int64_t> hidden_blocks;
  int64_t chunk = 4096;   // tokens per streamed chunk (families that stream)
};

// Receives the logits of tokens [start, start + rows) as a (rows, V) tensor valid during the call.
using LogitsSink = std::function<void(int64_t start, const Tensor& logits)>;
// Writes the token ids [start, start + ids.size(0)) into `ids` (I64), in order of increasing start.
using IdSource = std::function<void(int64_t start, Tensor& ids)>;
// Receives the hidden states of tokens [start, start + rows): one (rows, d) tensor per block asked
// of LanguageModel::stream_hidden, in the order asked, valid during the call.
using HiddenSink = std::function<void(int64_t start, std::span<const Tensor> states)>;

// Next-token log-probability sums for sequences that share a prefix (the variant scorer's ref and
// alt windows): for x = prefix + suffixes[s], `prefix` sums log p(x_t | x_<t) over the prefix tokens
// t = 1..P-1 (the same for every suffix, computed once) and suffix[s] over the suffix's own tokens
// (its first predicted from the whole prefix; with an empty prefix that token has no context and is
// not scored).
struct ContinuationScores {
  double prefix = 0;
  std::vector<double> suffix;
};

// A causal sequence growing token by token (`longseq generate`): feed tokens, read the logits that
// predict the next one.
class Decoder {
 public:
  virtual ~Decoder() = default;
  // Appends `ids` (non-empty) and returns the logits row (vocab_size() floats) after the last one.
  virtual std::vector<float> feed(std::span<const int64_t> ids) = 0;
};

class LanguageModel {
 public:
  virtual ~LanguageModel() = default;
  virtual std::string family() const = 0;
  virtual int64_t vocab_size() const = 0;  // padded: the width of the logits
  virtual int64_t n_layer() const = 0;
  virtual int64_t d_model() const = 0;
  // Longest input the model accepts; 0 when unlimited (recurrent models).
  virtual int64_t max_length() const = 0;
  // True for a causal language model (the logits at t predict token t + 1 from tokens <= t: next-token
  // log-likelihoods apply); false for a bidirectional, masked-language model (Caduceus: the logits at
  // t predict token t from both sides, so it is scored by masking).
  virtual bool causal() const { return true; }
  // Whole-sequence forward of one sequence of token ids (L), I64 or I32.
  virtual ForwardOutputs forward(const Tensor& ids, const ForwardOptions& options) const = 0;
  // Logits in order, chunk by chunk, in memory bounded by the chunk (recurrent families) or by the
  // sequence (global-convolution families).
  // `length` tokens are pulled from `ids` chunk by chunk, so neither the input nor the output of a
  // recurrent model is ever held whole.
  virtual void stream_logits(int64_t length, const IdSource& ids, int64_t chunk, const LogitsSink& sink) const = 0;
  void stream_logits(const Tensor& ids, int64_t chunk, const LogitsSink& sink) const;
  // The hidden states of `blocks` (b < n_layer(): the residual stream after block b, as
  // ForwardOutputs::hidden; b == n_layer(): the final normalised state) for `length` tokens pulled
  // from `ids`, handed to `sink` chunk by chunk in order. Memory is bounded by the chunk for families
  // that stream (nothing of the sequence is held whole) and by the sequence otherwise. The default
  // runs forward() once and hands out its rows.
  virtual void stream_hidden(int64_t length, const IdSource& ids, int64_t chunk, std::span<const int64_t> blocks,
                             const HiddenSink& sink) const;
  // See ContinuationScores. The default runs one whole sequence per suffix; recurrent families
  // override it to run the prefix once and continue every suffix from a copy of its state. Const and
  // safe to call from several threads at once.
  // A decoder for generation. The default runs the whole window again for each new token (the last
  // max_length() tokens when the model has a maximum); families that stream carry their state, one
  // token's work per token. Throws for a bidirectional model.
  virtual std::unique_ptr<Decoder> decoder() const;
  virtual ContinuationScores score_continuations(std::span<const int64_t> prefix,
                                                 std::span<const std::vector<int64_t>> suffixes) const;

 protected:
  // Throws naming the block when one of stream_hidden's `blocks` is out of range.
  void check_hidden_blocks(std::span<const int64_t> blocks) const;
};

// Sum over rows r < n of logits[r, next[r]] - logsumexp(logits[r, :]).
double sum_next_logprobs(const Tensor& logits, const int64_t* next, int64_t n);

}  // namespace longseq
