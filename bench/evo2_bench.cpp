// evo2-bench: whole-model StripedHyena 2 (Evo 2) throughput and memory at a released shape (a
// released config, e.g. ../shared/fixtures/evo2_released_configs/evo2-1b-8k.yml, with random weights):
// prefill seconds at given lengths (streamed in chunks, logits reduced on the fly as loglik does),
// cached decode tokens/s, and the process peak RSS. Run one length per process to compare RSS.
// Weights as released (bf16 linear weights, kept so in memory): --bf16 rounds the random model's;
// or write it once with --save-bf16 DIR and time it in another process with --model DIR (loaded as
// users load it).
#include "bench/model_bench.h"
#include "core/families/family.h"
#include "core/memory.h"
#include "core/models/layer_model.h"
#include "core/random.h"
#include "core/safetensors.h"
#include "core/ops/ops.h"
#include "core/threads.h"
#include "core/train/grad_model.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>

using namespace longseq;

int main(int argc, char** argv) {
  CLI::App app{"evo2-bench: StripedHyena 2 prefill/decode throughput and peak RSS at a released shape"};
  std::string config = LONGSEQ_SOURCE_DIR "/../shared/fixtures/evo2_released_configs/evo2-1b-8k.yml", model_dir, save_bf16;
  int64_t chunk = 4096, decode = 0, variant_window = 0;
  std::vector<int64_t> lengths{2048};
  int threads = 0;
  app.add_option("--config", config, "A StripedHyena 2 config (yml or json)");
  bool bf16 = false;
  app.add_option("--model", model_dir, "Time this model folder instead of a random model of --config");
  app.add_flag("--bf16", bf16, "Keep the random model's linear weights in bf16, as a released checkpoint loads");
  app.add_option("--save-bf16", save_bf16,
                 "Write the random model of --config to this folder with its tensors in bf16 as released (the modal "
                 "poles and residues and rotary inv_freq in fp32), then exit");
  app.add_option("--length,-L", lengths, "Sequence lengths to prefill");
  app.add_option("--chunk", chunk);
  std::string matmul = "fp32";
  app.add_option("--matmul", matmul, "fp32, or bf16 products summed in fp32 (as `longseq --matmul bf16`)")->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_option("--decode", decode, "Also time this many single-token decode steps (after a 1-token prefix)");
  app.add_option("--variant-window", variant_window,
                 "Also time scoring one SNV at the centre of a window of this many tokens: the prefix shared "
                 "(KV caches and filter states copied at the variant) vs the ref and alt windows run whole");
  app.add_option("--threads", threads);
  CLI11_PARSE(app, argc, argv);
  set_num_threads(threads);
  ops::set_matmul(matmul == "bf16" ? ops::Matmul::bf16 : ops::Matmul::fp32);

  const auto t_init = std::chrono::steady_clock::now();
  const auto owned = model_dir.empty() ? new_model_from_config(config, 1, bf16) : load_language_model(ModelDir::open(model_dir));
  const auto* model = dynamic_cast<const LayerLanguageModel*>(owned.get());
  if (!save_bf16.empty()) {
    save_model(*model, save_bf16);
    const auto f32 = SafetensorsFile::open(std::filesystem::path(save_bf16) / "model.safetensors");
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const auto& t : f32.tensors()) {
      const bool fp32 = t.name.ends_with("log_poles") || t.name.ends_with("residues") || t.name.ends_with("inv_freq");
      tensors.emplace_back(t.name, fp32 ? f32.view(t.name) : f32.view(t.name).to(DType::BF16));
    }
    write_safetensors(std::filesystem::path(save_bf16) / "model.safetensors", tensors, {{"format", "pt"}});
    fmt::print("wrote {}\n", save_bf16);
    return 0;
  }
  const double init_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_init).count();
  const auto& layers = model->layers();
  const int64_t kept = layers.parameter_count() - int64_t(layers.weights().size());  // the padding is < 0.01%
  const double weight_bytes = 4.0 * double(layers.weights().size()) + 2.0 * double(std::max<int64_t>(kept, 0));
  fmt::print("{}: {} blocks, d_model {}, {:.3f} B parameters ({:.2f} GB in memory{}), threads {}, chunk {}; {} {:.1f} s, peak RSS {:.0f} MiB\n",
             model_dir.empty() ? config : model_dir, model->n_layer(), model->d_model(), double(layers.parameter_count()) / 1e9,
             weight_bytes / 1e9, layers.holds_bf16() ? fmt::format(": {} linear weights bf16", layers.bf16_weights().size()) : ", fp32",
             num_threads(), chunk, model_dir.empty() ? "init" : "load", init_s, double(peak_rss_bytes()) / (1 << 20));
  const std::vector<int64_t> alphabet = {'A', 'C', 'G', 'T'};
  for (int64_t L : lengths) bench::time_prefill(*model, L, chunk, alphabet);
  if (variant_window > 1) {
    Rng rng(11);
    std::vector<int64_t> ref(static_cast<size_t>(variant_window));
    for (auto& id : ref) id = alphabet[rng.below(4)];
    const size_t mid = size_t(variant_window / 2);
    std::vector<int64_t> alt = ref;
    alt[mid] = alt[mid] == 'A' ? 'G' : 'A';
    const auto timed = [&](std::span<const int64_t> prefix, const std::vector<std::vector<int64_t>>& suffixes) {
      const auto t0 = std::chrono::steady_clock::now();
      const ContinuationScores s = model->score_continuations(prefix, suffixes);
      return std::pair{std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), s};
    };
    const std::vector<int64_t> prefix(ref.begin(), ref.begin() + std::ptrdiff_t(mid));
    const auto [shared_s, shared] = timed(prefix, {std::vector<int64_t>(ref.begin() + std::ptrdiff_t(mid), ref.end()),
                                                   std::vector<int64_t>(alt.begin() + std::ptrdiff_t(mid), alt.end())});
    const auto [whole_s, whole] = timed({}, {ref, alt});
    fmt::print("variant window {}: prefix shared {:.2f} s, two whole windows {:.2f} s ({:.2f}x); dll {:.5f} vs {:.5f}\n", variant_window,
               shared_s, whole_s, whole_s / shared_s, shared.suffix[1] - shared.suffix[0], whole.suffix[1] - whole.suffix[0]);
  }
  if (decode > 0) {
    const double s = bench::time_decode(*model, decode, alphabet);
    fmt::print("  {:.1f} GB/s of weights read per token\n", weight_bytes / s / 1e9);
  }
  return 0;
}
