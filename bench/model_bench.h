// Whole-model timing shared by the model benchmarks (mamba-bench, evo2-bench): a streamed prefill
// with the logits reduced on the fly (as loglik runs), and cached single-token decode steps.
#pragma once

#include "core/memory.h"
#include "core/models/layer_model.h"
#include "core/random.h"

#include <fmt/format.h>

#include <chrono>
#include <string>
#include <vector>

namespace longseq::bench {

// Prefills L tokens drawn from `alphabet` in chunks and prints seconds, tokens/s and peak RSS.
inline void time_prefill(const LayerLanguageModel& model, int64_t L, int64_t chunk, const std::vector<int64_t>& alphabet) {
  Rng rng(7);
  double checksum = 0;
  const auto t0 = std::chrono::steady_clock::now();
  model.stream_logits(
      L,
      [&](int64_t, Tensor& ids) {
        for (int64_t i = 0; i < ids.size(0); ++i) ids.data<int64_t>()[i] = alphabet[rng.below(alphabet.size())];
      },
      chunk, [&](int64_t, const Tensor& logits) { checksum += logits.item({logits.size(0) - 1, 0}); });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fmt::print("prefill L={:<8} {:9.2f} s {:10.1f} tokens/s   peak RSS {:7.0f} MiB  tracked peak {:7.1f} MiB  (checksum {:.4f})\n", L, s,
             double(L) / s, double(peak_rss_bytes()) / (1 << 20), double(memory_stats().peak) / (1 << 20), checksum);
}

// Runs `steps` single-token steps after a one-token warm-up; returns seconds per token.
inline double time_decode(const LayerLanguageModel& model, int64_t steps, const std::vector<int64_t>& alphabet) {
  LayerLanguageModel::Sequence seq = model.start();
  int64_t id = alphabet[0];
  std::vector<float> logits(static_cast<size_t>(model.vocab_size()));
  seq.run({&id, 1}, logits.data());
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) {
    id = alphabet[size_t(i) % alphabet.size()];
    seq.run({&id, 1}, logits.data());
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / double(steps);
  fmt::print("decode {} steps: {:.2f} tokens/s ({:.2f} ms/token)\n", steps, 1.0 / s, 1e3 * s);
  return s;
}

}  // namespace longseq::bench
