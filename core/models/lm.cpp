#include "core/models/lm.h"

#include "core/error.h"
#include "core/ops/softmax.h"

namespace longseq {

void LanguageModel::stream_logits(const Tensor& ids, int64_t chunk, const LogitsSink& sink) const {
  LS_CHECK(ids.dim() == 1, "expected 1-D token ids, got {}", ids.describe());
  stream_logits(ids.size(0), [&](int64_t start, Tensor& out) { out.copy_from(ids.slice(0, start, out.size(0))); }, chunk, sink);
}

void LanguageModel::check_hidden_blocks(std::span<const int64_t> blocks) const {
  for (int64_t b : blocks)
    LS_CHECK(b >= 0 && b <= n_layer(), "{}: block {} asked of blocks 0..{} (and {}: the final state)", family(), b, n_layer() - 1, n_layer());
}

void LanguageModel::stream_hidden(int64_t length, const IdSource& source, int64_t chunk, std::span<const int64_t> blocks,
                                  const HiddenSink& sink) const {
  LS_CHECK(chunk >= 1, "chunk must be >= 1, got {}", chunk);
  check_hidden_blocks(blocks);
  Tensor ids = Tensor::empty({length}, DType::I64);
  for (int64_t t0 = 0; t0 < length; t0 += chunk) {
    Tensor part = ids.slice(0, t0, std::min(chunk, length - t0));
    source(t0, part);
  }
  if (length == 0) return;
  const ForwardOutputs f = forward(ids, {.hidden = true, .hidden_blocks = {blocks.begin(), blocks.end()}});
  std::vector<Tensor> rows(blocks.size());
  for (int64_t t0 = 0; t0 < length; t0 += chunk) {
    const int64_t n = std::min(chunk, length - t0);
    for (size_t k = 0; k < blocks.size(); ++k)
      rows[k] = (blocks[k] == n_layer() ? f.final_hidden : f.hidden[size_t(blocks[k])]).slice(0, t0, n);
    sink(t0, rows);
  }
}

namespace {
// Every token re-runs the window: for families whose layers see the whole window at once.
class WindowDecoder final : public Decoder {
 public:
  explicit WindowDecoder(const LanguageModel& model) : model_(model) {}
  std::vector<float> feed(std::span<const int64_t> ids) override {
    LS_CHECK(!ids.empty(), "{}: decoding needs at least one token", model_.family());
    history_.insert(history_.end(), ids.begin(), ids.end());
    const size_t max = model_.max_length() > 0 ? size_t(model_.max_length()) : history_.size();
    const size_t from = history_.size() > max ? history_.size() - max : 0;
    const Tensor logits = model_.forward(Tensor::from_ids(std::span(history_).subspan(from)), {}).logits;
    return logits.select(0, logits.size(0) - 1).to_vector();
  }

 private:
  const LanguageModel& model_;
  std::vector<int64_t> history_;
};
}  // namespace

std::unique_ptr<Decoder> LanguageModel::decoder() const {
  LS_CHECK(causal(), "{}: a bidirectional (masked-language) model predicts no next token and cannot generate; use a causal model",
           family());
  return std::make_unique<WindowDecoder>(*this);
}

double sum_next_logprobs(const Tensor& logits, const int64_t* next, int64_t n) {
  LS_CHECK(logits.dim() == 2 && logits.size(0) >= n, "sum_next_logprobs: {} rows asked of {}", n, logits.describe());
  const int64_t V = logits.size(1);
  double sum = 0;
  for (int64_t r = 0; r < n; ++r) {
    LS_CHECK(next[r] >= 0 && next[r] < V, "token id {} outside the vocabulary of {}", next[r], V);
    const float* row = logits.data<float>() + r * logits.stride(0);
    sum += double(row[next[r]]) - log_sum_exp(row, V);
  }
  return sum;
}

ContinuationScores LanguageModel::score_continuations(std::span<const int64_t> prefix,
                                                      std::span<const std::vector<int64_t>> suffixes) const {
  const int64_t P = int64_t(prefix.size());
  ContinuationScores out;
  out.suffix.resize(suffixes.size());
  const auto score_prefix = [&](const Tensor& logits, const int64_t* ids) {
    out.prefix = P >= 2 ? sum_next_logprobs(logits, ids + 1, P - 1) : 0.0;
  };
  if (suffixes.empty()) {
    if (P >= 2) score_prefix(forward(Tensor::from_ids(prefix), {}).logits, prefix.data());
    return out;
  }
  for (size_t s = 0; s < suffixes.size(); ++s) {
    std::vector<int64_t> ids(prefix.begin(), prefix.end());
    ids.insert(ids.end(), suffixes[s].begin(), suffixes[s].end());
    const Tensor logits = forward(Tensor::from_ids(ids), {}).logits;
    if (s == 0) score_prefix(logits, ids.data());
    const int64_t first = std::max<int64_t>(P, 1), n = int64_t(ids.size()) - first;  // tokens scored
    out.suffix[s] = n > 0 ? sum_next_logprobs(logits.slice(0, first - 1, n), ids.data() + first, n) : 0.0;
  }
  return out;
}

}  // namespace longseq
