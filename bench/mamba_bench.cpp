// mamba-bench: whole-model Mamba-1 throughput and memory. Prefill tokens/s at given lengths (streamed
// in chunks, logits reduced on the fly as loglik does), decode tokens/s (chunk = 1), and the process
// peak RSS, which is the figure for the bounded-memory claim: run one length per process to compare.
#include "bench/model_bench.h"
#include "core/memory.h"
#include "core/families/family.h"
#include "core/models/layer_model.h"
#include "core/families/mamba_config.h"
#include "core/random.h"
#include "core/threads.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>

using namespace longseq;

int main(int argc, char** argv) {
  CLI::App app{"mamba-bench: Mamba-1 prefill/decode throughput and peak RSS"};
  int64_t d_model = 768, n_layer = 24, vocab = 16, chunk = 4096, decode = 0;
  std::vector<int64_t> lengths{2048};
  int threads = 0;
  app.add_option("--d-model", d_model);
  app.add_option("--n-layer", n_layer);
  app.add_option("--vocab", vocab, "Vocabulary (16: DNA-sized logits)");
  app.add_option("--length,-L", lengths, "Sequence lengths to prefill");
  app.add_option("--chunk", chunk);
  app.add_option("--decode", decode, "Also time this many single-token decode steps");
  app.add_option("--threads", threads);
  CLI11_PARSE(app, argc, argv);
  set_num_threads(threads);

  MambaConfig c;
  c.d_model = d_model;
  c.n_layer = n_layer;
  c.vocab_size = vocab;
  c.padded_vocab = round_up_multiple(vocab, 8);
  c.d_inner = 2 * d_model;
  c.dt_rank = (d_model + 15) / 16;
  const auto owned = new_model_from_json(mamba_config_json(c), 1);
  const auto* model = dynamic_cast<const LayerLanguageModel*>(owned.get());
  const size_t weights_rss = peak_rss_bytes();
  fmt::print("mamba d_model={} n_layer={} vocab={} threads={} chunk={}  (weights loaded: peak RSS {:.0f} MiB)\n", d_model,
             n_layer, vocab, num_threads(), chunk, double(weights_rss) / (1 << 20));
  std::vector<int64_t> alphabet;
  for (int64_t v = 0; v < vocab; ++v) alphabet.push_back(v);
  for (int64_t L : lengths) bench::time_prefill(*model, L, chunk, alphabet);
  if (decode > 0) bench::time_decode(*model, decode, alphabet);
  return 0;
}
