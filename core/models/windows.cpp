#include "core/models/windows.h"

#include "core/error.h"

namespace longseq {

std::vector<int64_t> window_starts(int64_t length, int64_t window, int64_t context) {
  LS_CHECK(window >= 1 && context >= 0 && context < window, "windows of {} tokens cannot overlap by {} (need 0 <= context < window)",
           window, context);
  std::vector<int64_t> starts = {0};
  while (starts.back() + window < length) starts.push_back(starts.back() + window - context);
  return starts;
}

namespace {
// Runs `run(s, n, done)` for each window [s, s + n) in order; `done` is the first row it hands out
// (the rows before it came from earlier windows).
template <class Run>
void over_windows(const LanguageModel& model, int64_t length, int64_t window, int64_t context, Run run) {
  LS_CHECK(model.max_length() == 0 || window <= model.max_length(), "{}: windows of {} tokens exceed the model's maximum {}", model.family(),
           window, model.max_length());
  int64_t done = 0;
  for (int64_t s : window_starts(length, window, context)) {
    const int64_t n = std::min(window, length - s);
    run(s, n, done);
    done = s + n;
  }
}
}  // namespace

void stream_logits_windowed(const LanguageModel& model, int64_t length, const IdSource& ids, int64_t window, int64_t context,
                            int64_t chunk, const LogitsSink& sink) {
  over_windows(model, length, window, context, [&](int64_t s, int64_t n, int64_t done) {
    model.stream_logits(
        n, [&](int64_t start, Tensor& part) { ids(s + start, part); }, chunk,
        [&](int64_t start, const Tensor& logits) {
          const int64_t first = std::max<int64_t>(0, done - (s + start)), rows = logits.size(0) - first;
          if (rows > 0) sink(s + start + first, logits.slice(0, first, rows));
        });
  });
}

void stream_hidden_windowed(const LanguageModel& model, int64_t length, const IdSource& ids, int64_t window, int64_t context,
                            int64_t chunk, std::span<const int64_t> blocks, const HiddenSink& sink) {
  over_windows(model, length, window, context, [&](int64_t s, int64_t n, int64_t done) {
    std::vector<Tensor> rows(blocks.size());
    model.stream_hidden(
        n, [&](int64_t start, Tensor& part) { ids(s + start, part); }, chunk, blocks,
        [&](int64_t start, std::span<const Tensor> states) {
          const int64_t first = std::max<int64_t>(0, done - (s + start)), count = states.empty() ? 0 : states[0].size(0) - first;
          if (count <= 0) return;
          for (size_t k = 0; k < states.size(); ++k) rows[k] = states[k].slice(0, first, count);
          sink(s + start + first, rows);
        });
  });
}

}  // namespace longseq
