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

void stream_logits_windowed(const LanguageModel& model, int64_t length, const IdSource& ids, int64_t window, int64_t context,
                            int64_t chunk, const LogitsSink& sink) {
  LS_CHECK(model.max_length() == 0 || window <= model.max_length(), "{}: windows of {} tokens exceed the model's maximum {}", model.family(),
           window, model.max_length());
  const auto starts = window_starts(length, window, context);
  int64_t done = 0;  // rows handed out so far
  for (int64_t s : starts) {
    const int64_t n = std::min(window, length - s);
    // Rows [s, done) were handed out by the previous window; this one gives [done, s + n).
    model.stream_logits(
        n, [&](int64_t start, Tensor& part) { ids(s + start, part); }, chunk,
        [&](int64_t start, const Tensor& logits) {
          const int64_t first = std::max<int64_t>(0, done - (s + start)), rows = logits.size(0) - first;
          if (rows > 0) sink(s + start + first, logits.slice(0, first, rows));
        });
    done = s + n;
  }
}

}  // namespace longseq
