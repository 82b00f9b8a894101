// Choosing the next token from a row of logits, for `longseq generate`: greedy, temperature and
// top-k sampling over the tokens allowed (the bases: a DNA model's special tokens cannot be written
// as sequence). Computed in double with a fully specified generator (core/random.h) and ties broken
// by the lower id, so a seed gives the same sequence on every machine and thread count.
#pragma once

#include "core/random.h"

#include <cstdint>
#include <span>

namespace longseq {

struct SamplingOptions {
  double temperature = 1.0;  // 0: greedy (the most likely allowed token)
  int64_t top_k = 0;         // > 0: sample among the k most likely allowed tokens only
};

// The next token: one of `allowed` (ids into `logits`, non-empty), drawn from softmax(logits / T)
// restricted to `allowed` (and to its top_k most likely). Throws when an allowed id is outside the
// row or a logit is not finite.
int64_t sample_token(std::span<const float> logits, std::span<const int64_t> allowed, const SamplingOptions& options, Rng& rng);

}  // namespace longseq
