// `longseq init`: a new model folder with the family's reference initialisation, for training from
// scratch, tests and benchmarks (no pretrained weights can be downloaded on these machines).
#include "apps/longseq/commands.h"
#include "apps/longseq/model_args.h"
#include "core/error.h"
#include "core/fileio.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace longseq::cli {

void add_model_options(CLI::App* cmd, ModelArgs& a) {
  cmd->add_option("--family", a.family, "Model family of a new model")->check(CLI::IsMember(creatable_family_names()));
  for (const ArchOption& o : all_arch_options()) {
    std::string flag = "--" + o.key;
    std::replace(flag.begin(), flag.end(), '_', '-');
    // A value set before (a command's own default) is kept; map nodes do not move, so CLI11 may keep
    // the reference.
    int64_t& value = a.values.try_emplace(o.key, o.fallback).first->second;
    cmd->add_option(flag, value, o.help)->check(CLI::Range(o.lo, o.hi))->capture_default_str();
  }
}

std::unique_ptr<LanguageModel> new_model(const ModelArgs& a, int64_t train_length, uint64_t seed) {
  return longseq::new_model(a.family, a.values, train_length, seed);
}

void add_device_option(CLI::App* cmd, std::string& device) {
  cmd->add_option("--device", device, "Where the model runs: cpu, or cuda (an NVIDIA GPU: " + device_support_summary() + ")")
      ->check(CLI::IsMember({"cpu", "cuda"}));
}

void add_window_options(CLI::App* cmd, int64_t& window, int64_t& context, const std::string& what) {
  cmd->add_option("--window", window, "Tokens per window (default: the model's maximum length; needs --context past it)")
      ->check(CLI::Range(int64_t(2), int64_t(1) << 30));
  cmd->add_option("--context", context,
                  "Run a sequence longer than the window in windows overlapping by C tokens: each position " + what +
                      " once, from the first window that gives it C tokens of left context (0 <= C < window)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 30));
}

std::string describe_model(const LanguageModel& m) {
  // d_model() is the hidden state's width (Caduceus-PS: both strands' halves, 2 x the config's d_model).
  std::string s = fmt::format("{}, hidden width {}, {} layers, vocab {}", m.family(), m.d_model(), m.n_layer(), m.vocab_size());
  if (!m.causal()) s += ", bidirectional";
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
  const auto model = a.config.empty() ? new_model(a.model, 0, a.seed) : new_model_from_config(a.config, a.seed);
  save_model(*model, a.output);
  spdlog::info("wrote {} ({}, seed {})", a.output, describe_model(*model), a.seed);
}
}  // namespace

void add_init(CLI::App& app) {
  auto a = std::make_shared<InitArgs>();
  auto* cmd = app.add_subcommand("init", "Create a model folder with freshly initialised weights");
  cmd->add_option("-o,--output", a->output, "Model directory to create")->required();
  add_model_options(cmd, a->model);
  cmd->add_option("--config", a->config, "Architecture from this config.json (any family longseq can create) instead of the flags");
  cmd->add_option("--seed", a->seed, "Random seed");
  cmd->add_flag("--force", a->force, "Write into a folder that is not empty (replaces its config.json and model.safetensors)");
  cmd->callback([a] { run(*a); });
}

}  // namespace longseq::cli
