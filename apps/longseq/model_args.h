// Architecture options shared by `longseq init` and `longseq train` (a new model from flags), so
// both build models the same way.
#pragma once

#include "core/models/lm.h"

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

namespace longseq::cli {

struct ModelArgs {
  std::string family = "mamba";
  int64_t d_model = 64, n_layer = 2, vocab = 12, d_state = 16, d_conv = 4, expand = 2;
  int64_t d_inner = 0, max_seq_len = 1026, filter_order = 64, emb_dim = 5, short_filter = 3;
};

// Registers --family, --d-model, --n-layer, ... on `cmd`.
void add_model_options(CLI::App* cmd, ModelArgs& a);
// A freshly initialised model (the family's reference initialisation), deterministic in `seed`.
std::unique_ptr<LanguageModel> new_model(const ModelArgs& a, uint64_t seed);
// The same from a config.json of either family (Mamba-1 state-spaces/HF, HyenaDNA HF). Throws naming
// the file and key for invalid configs.
std::unique_ptr<LanguageModel> new_model_from_config(const std::string& config_json, uint64_t seed);
// Registers --device (cpu or cuda) on `cmd`; the value goes to `device`.
void add_device_option(CLI::App* cmd, std::string& device);

// A one-line description ("mamba, d_model 64, 2 layers, ...").
std::string describe_model(const LanguageModel& model);

}  // namespace longseq::cli
