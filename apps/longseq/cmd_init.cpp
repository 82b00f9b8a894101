// `longseq init`: a new model folder with the family's reference initialisation, for training from
// scratch, tests and benchmarks (no pretrained weights can be downloaded on these machines).
#include "apps/longseq/commands.h"
#include "apps/longseq/model_args.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/models/hyena.h"
#include "core/models/mamba.h"
#include "core/config.h"

#include <spdlog/spdlog.h>

namespace longseq::cli {

void add_model_options(CLI::App* cmd, ModelArgs& a) {
  cmd->add_option("--family", a.family, "Model family")->check(CLI::IsMember({"mamba", "hyenadna"}));
  cmd->add_option("--d-model", a.d_model, "Model width")->check(CLI::Range(int64_t(1), int64_t(1) << 16));
  cmd->add_option("--n-layer", a.n_layer, "Number of blocks")->check(CLI::Range(1, 1024));
  cmd->add_option("--vocab", a.vocab, "Vocabulary size (padded to a multiple of 8); 12 fits the DNA ids")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 24));
  cmd->add_option("--d-state", a.d_state, "SSM state size N")->check(CLI::Range(1, 256));
  cmd->add_option("--d-conv", a.d_conv, "Causal conv width")->check(CLI::Range(1, 16));
  cmd->add_option("--expand", a.expand, "Inner expansion (D = expand * d_model)")->check(CLI::Range(1, 16));
  cmd->add_option("--d-inner", a.d_inner, "HyenaDNA MLP width (default 0: 4 * d_model)")->check(CLI::Range(int64_t(0), int64_t(1) << 18));
  cmd->add_option("--max-seq-len", a.max_seq_len, "HyenaDNA longest input (positional grid size)")
      ->check(CLI::Range(int64_t(2), int64_t(1) << 31));
  cmd->add_option("--filter-order", a.filter_order, "HyenaDNA implicit filter width")->check(CLI::Range(1, 4096));
  cmd->add_option("--emb-dim", a.emb_dim, "HyenaDNA positional features (odd)")->check(CLI::Range(3, 257));
  cmd->add_option("--short-filter", a.short_filter, "HyenaDNA short conv width")->check(CLI::Range(1, 16));
}

std::unique_ptr<LanguageModel> new_model(const ModelArgs& a, uint64_t seed) {
  if (a.family == "hyenadna") {
    HyenaConfig c;
    c.d_model = a.d_model;
    c.n_layer = a.n_layer;
    c.d_inner = a.d_inner > 0 ? a.d_inner : 4 * a.d_model;
    c.vocab_size = a.vocab;
    c.padded_vocab = round_up_multiple(a.vocab, 8);
    c.max_seq_len = a.max_seq_len;
    c.filter_order = a.filter_order;
    c.emb_dim = a.emb_dim;
    c.short_filter_order = a.short_filter;
    LS_CHECK(c.emb_dim >= 3 && c.emb_dim % 2 == 1, "--emb-dim must be odd and >= 3, got {}", c.emb_dim);
    return HyenaModel::random(c, seed);
  }
  MambaConfig c;
  c.d_model = a.d_model;
  c.n_layer = a.n_layer;
  c.vocab_size = a.vocab;
  c.pad_vocab_multiple = 8;
  c.padded_vocab = round_up_multiple(a.vocab, 8);
  c.d_state = a.d_state;
  c.d_conv = a.d_conv;
  c.expand = a.expand;
  c.d_inner = a.expand * a.d_model;
  c.dt_rank = (a.d_model + 15) / 16;
  return MambaModel::random(c, seed);
}

std::unique_ptr<LanguageModel> new_model_from_config(const std::string& path, uint64_t seed) {
  const Config c = Config::load(path);
  if (looks_like_hyena(c)) return HyenaModel::random(parse_hyena_config(c), seed);
  if (looks_like_mamba(c)) return MambaModel::random(parse_mamba_config(c), seed);
  fail("{}: not a Mamba-1 or HyenaDNA config (model_type '{}'); see `longseq init --help` for the flags instead", path,
       c.get_string("model_type", ""));
}

void add_device_option(CLI::App* cmd, std::string& device) {
  cmd->add_option("--device", device,
                   "Where the model runs: cpu, or cuda (an NVIDIA GPU: inference for Mamba and HyenaDNA, training for Mamba models)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
}

std::string describe_model(const LanguageModel& m) {
  std::string s = fmt::format("{}, d_model {}, {} layers, vocab {}", m.family(), m.d_model(), m.n_layer(), m.vocab_size());
  if (m.max_length() > 0) s += fmt::format(", max_seq_len {}", m.max_length());
  return s;
}

namespace {
struct InitArgs {
  std::string output, config;
  ModelArgs model;
  uint64_t seed = 0;
  bool force = false;
};

void save(const LanguageModel& m, const std::string& dir) {
  if (const auto* h = dynamic_cast<const HyenaModel*>(&m)) return h->save(dir);
  if (const auto* mm = dynamic_cast<const MambaModel*>(&m)) return mm->save(dir);
  fail("cannot save a {} model", m.family());
}

// A folder that already holds files is refused: init would replace a trained model by random weights.
void check_output(const InitArgs& a) {
  namespace fs = std::filesystem;
  check_output_folder(a.output, {a.config});
  std::error_code ec;
  const bool empty = !fs::exists(a.output, ec) || fs::is_empty(a.output, ec);
  LS_CHECK(empty || a.force, "-o {}: the folder is not empty{}; choose a new folder, or add --force to replace its model", a.output,
           fs::exists(fs::path(a.output) / "model.safetensors", ec) ? " (it holds a model)" : "");
  LS_CHECK(a.config.empty() || !same_file(fs::path(a.output) / "config.json", a.config),
           "--config {} is the config.json that -o {} would replace; copy it elsewhere first", a.config, a.output);
}

void run(const InitArgs& a) {
  check_output(a);
  set_oom_hint("the weights do not fit in memory: use a smaller --d-model, --n-layer, --vocab or --max-seq-len");
  const auto model = a.config.empty() ? new_model(a.model, a.seed) : new_model_from_config(a.config, a.seed);
  save(*model, a.output);
  spdlog::info("wrote {} ({}, seed {})", a.output, describe_model(*model), a.seed);
}
}  // namespace

void add_init(CLI::App& app) {
  auto a = std::make_shared<InitArgs>();
  auto* cmd = app.add_subcommand("init", "Create a model folder with freshly initialised weights");
  cmd->add_option("-o,--output", a->output, "Model directory to create")->required();
  add_model_options(cmd, a->model);
  cmd->add_option("--config", a->config, "Architecture from this config.json (either family) instead of the flags");
  cmd->add_option("--seed", a->seed, "Random seed");
  cmd->add_flag("--force", a->force, "Write into a folder that is not empty (replaces its config.json and model.safetensors)");
  cmd->callback([a] { run(*a); });
}

}  // namespace longseq::cli
