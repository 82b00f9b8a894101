// Each subcommand registers its options on the CLI11 app and sets the callback that runs it.
#pragma once

#include <CLI/CLI.hpp>

namespace longseq::cli {

void add_info(CLI::App& app);
void add_forward(CLI::App& app);
void add_loglik(CLI::App& app);
void add_init(CLI::App& app);

}  // namespace longseq::cli
