// Each subcommand registers its options on the CLI11 app and sets the callback that runs it.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace longseq::cli {

void add_info(CLI::App& app);
void add_forward(CLI::App& app);
void add_loglik(CLI::App& app);
void add_embed(CLI::App& app);
void add_convert(CLI::App& app);
void add_generate(CLI::App& app);
void add_init(CLI::App& app);
void add_score_variants(CLI::App& app);
void add_bench_vep(CLI::App& app);
void add_ism(CLI::App& app);
void add_train(CLI::App& app);
void add_classify(CLI::App& app);
void add_classify_audio(CLI::App& app);

// The command line as typed (for provenance lines such as ##longseqCommand).
const std::string& command_line();
void set_command_line(int argc, char** argv);

// What the out-of-memory message suggests; each command names its own sizes ("a smaller --window").
void set_oom_hint(std::string hint);
const std::string& oom_hint();

}  // namespace longseq::cli
