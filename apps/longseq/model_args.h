// Architecture options shared by `longseq init` and `longseq train` (a new model from flags), so
// both build models the same way. The flags come from the family registry
// (core/families/family.h: all_arch_options), so a new family's options appear without edits here.
#pragma once

#include "core/families/family.h"

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

namespace longseq::cli {

struct ModelArgs {
  std::string family = default_family().name();
  ArchValues values;  // every architecture option, filled with its default by add_model_options
};

// Registers --family and every family's architecture flags (--d-model, --n-layer, ...) on `cmd`.
void add_model_options(CLI::App* cmd, ModelArgs& a);
// A freshly initialised model (the family's reference initialisation), deterministic in `seed`;
// train_length > 0 is the window it will be trained on.
std::unique_ptr<LanguageModel> new_model(const ModelArgs& a, int64_t train_length, uint64_t seed);
// Registers --device (cpu or cuda) on `cmd`; the value goes to `device`.
void add_device_option(CLI::App* cmd, std::string& device);
// Registers --window W and --context C: a sequence longer than the model's window (or W) runs in
// windows overlapping by C tokens (core/models/windows.h). `what` says what each position gets
// ("predicted", "its state").
void add_window_options(CLI::App* cmd, int64_t& window, int64_t& context, const std::string& what);

// A one-line description (family, d_model, layers, vocabulary, longest input).
std::string describe_model(const LanguageModel& model);

}  // namespace longseq::cli
