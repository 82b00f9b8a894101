// caduceus-bench: a whole-window Caduceus forward (BiMamba in reverse-complement wrappers) at the
// released shape by default (d_model 256, 16 blocks, PS), random weights: seconds, tokens/s and the
// process peak RSS per length. Run one length per process to compare memory; bench/torch_caduceus.py
// is the PyTorch reference written like the official code, for the same shape side by side.
#include "core/families/family.h"
#include "core/memory.h"
#include "core/models/layer_model.h"
#include "core/random.h"
#include "core/threads.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>

using namespace longseq;

int main(int argc, char** argv) {
  CLI::App app{"caduceus-bench: Caduceus whole-window forward time and peak RSS"};
  int64_t d_model = 256, n_layer = 16, rcps = 1;
  std::vector<int64_t> lengths{16384};
  int threads = 0;
  app.add_option("--d-model", d_model);
  app.add_option("--n-layer", n_layer);
  app.add_option("--rcps", rcps, "1: Caduceus-PS, 0: Caduceus-PH");
  app.add_option("--length,-L", lengths, "Window lengths");
  app.add_option("--threads", threads);
  CLI11_PARSE(app, argc, argv);
  set_num_threads(threads);
  nlohmann::json map = nlohmann::json::object();
  for (int v = 0; v < 16; ++v) map[std::to_string(v)] = v == 7 ? 10 : v == 10 ? 7 : v == 8 ? 9 : v == 9 ? 8 : v;
  const nlohmann::json config = {{"model_type", "caduceus"}, {"d_model", d_model}, {"n_layer", n_layer}, {"vocab_size", 16},
                                 {"rcps", rcps == 1}, {"complement_map", map}, {"residual_in_fp32", false},
                                 {"ssm_cfg", {{"d_state", 16}, {"d_conv", 4}, {"expand", 2}}}};
  const auto model = new_model_from_json(config, 1);
  fmt::print("caduceus-{} d_model={} n_layer={} threads={}  (weights loaded: peak RSS {:.0f} MiB)\n", rcps ? "ps" : "ph", d_model, n_layer,
             num_threads(), double(peak_rss_bytes()) / (1 << 20));
  for (int64_t L : lengths) {
    Rng rng(7);
    std::vector<int64_t> ids(static_cast<size_t>(L));
    for (auto& i : ids) i = 7 + int64_t(rng.below(4));
    double checksum = 0;
    const auto t0 = std::chrono::steady_clock::now();
    model->stream_logits(Tensor::from_ids(ids), 4096, [&](int64_t, const Tensor& logits) { checksum += logits.item({logits.size(0) - 1, 0}); });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print("forward L={:<8} {:9.2f} s {:10.1f} tokens/s   peak RSS {:7.0f} MiB  (checksum {:.4f})\n", L, s, double(L) / s,
               double(peak_rss_bytes()) / (1 << 20), checksum);
  }
  return 0;
}
