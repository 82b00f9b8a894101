// hyena-bench: whole-model HyenaDNA time per token and process peak RSS at one or more window
// lengths (run one length per process to compare peak RSS across lengths).
#include "core/memory.h"
#include "core/families/family.h"
#include "core/families/hyena_config.h"
#include "core/families/mamba_config.h"
#include "core/random.h"
#include "core/threads.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>

using namespace longseq;

int main(int argc, char** argv) {
  CLI::App app{"hyena-bench: HyenaDNA forward time per token and peak RSS"};
  HyenaConfig c;  // hyenadna-large-1m shape by default
  c.d_model = 256;
  c.n_layer = 8;
  c.d_inner = 1024;
  c.vocab_size = 12;
  c.max_seq_len = 1000002;
  std::vector<int64_t> lengths{1024};
  int threads = 0;
  int64_t chunk = 4096;
  app.add_option("--d-model", c.d_model);
  app.add_option("--n-layer", c.n_layer);
  app.add_option("--d-inner", c.d_inner);
  app.add_option("--max-seq-len", c.max_seq_len);
  app.add_option("--length,-L", lengths);
  app.add_option("--threads", threads);
  CLI11_PARSE(app, argc, argv);
  set_num_threads(threads);
  c.padded_vocab = round_up_multiple(c.vocab_size, 8);
  const auto model = new_model_from_json(hyena_config_json(c), 1);
  fmt::print("hyenadna d_model={} n_layer={} d_inner={} max_seq_len={} threads={} (weights: peak RSS {:.0f} MiB)\n", c.d_model,
             c.n_layer, c.d_inner, c.max_seq_len, num_threads(), double(peak_rss_bytes()) / (1 << 20));
  for (int64_t L : lengths) {
    Rng rng(3);
    double checksum = 0;
    const auto t0 = std::chrono::steady_clock::now();
    model->stream_logits(
        L,
        [&](int64_t, Tensor& ids) {
          for (int64_t i = 0; i < ids.size(0); ++i) ids.data<int64_t>()[i] = 7 + int64_t(rng.below(4));
        },
        chunk, [&](int64_t, const Tensor& logits) { checksum += logits.item({0, 7}); });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print("forward L={:<8} {:9.2f} s {:9.2f} us/token {:10.1f} tokens/s  peak RSS {:7.0f} MiB  tracked peak {:7.1f} MiB (checksum {:.3f})\n",
               L, s, 1e6 * s / double(L), double(L) / s, double(peak_rss_bytes()) / (1 << 20),
               double(memory_stats().peak) / (1 << 20), checksum);
  }
  return 0;
}
