#include "core/models/sampling.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace longseq {

int64_t sample_token(std::span<const float> logits, std::span<const int64_t> allowed, const SamplingOptions& options, Rng& rng) {
  LS_CHECK(!allowed.empty(), "sampling from no allowed tokens");
  struct Candidate {
    int64_t id;
    double logit;
  };
  std::vector<Candidate> c;
  for (int64_t id : allowed) {
    LS_CHECK(id >= 0 && id < int64_t(logits.size()), "token id {} outside a row of {} logits", id, logits.size());
    const double v = logits[size_t(id)];
    LS_CHECK(std::isfinite(v), "the model gave a non-finite logit for token {} (an overflow): nothing to sample from", id);
    c.push_back({id, v});
  }
  // Most likely first, ties by the lower id: the order (and so the draw) is fully determined.
  std::sort(c.begin(), c.end(), [](const Candidate& a, const Candidate& b) { return a.logit != b.logit ? a.logit > b.logit : a.id < b.id; });
  if (options.temperature == 0) return c.front().id;
  if (options.top_k > 0 && size_t(options.top_k) < c.size()) c.resize(size_t(options.top_k));
  std::vector<double> p(c.size());
  double sum = 0;
  for (size_t i = 0; i < c.size(); ++i) sum += p[i] = std::exp((c[i].logit - c.front().logit) / options.temperature);
  double u = rng.uniform() * sum;
  for (size_t i = 0; i < c.size(); ++i) {
    if (u < p[i]) return c[i].id;
    u -= p[i];
  }
  return c.back().id;  // u landed on the rounding slack at the end
}

}  // namespace longseq
