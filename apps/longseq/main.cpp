// The `longseq` command: global options, subcommand dispatch, and the one place where errors become
// a single stderr line and a non-zero exit.
#include "apps/longseq/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/threads.h"

#include <cstdio>

namespace longseq::cli {
namespace {
std::string g_command_line;
}
const std::string& command_line() { return g_command_line; }
void set_command_line(int argc, char** argv) {
  g_command_line.clear();
  for (int i = 0; i < argc; ++i) {
    if (i) g_command_line += ' ';
    const std::string arg = i == 0 ? "longseq" : argv[i];
    const bool plain = !arg.empty() && arg.find_first_of(" \t\"'$") == std::string::npos;
    g_command_line += plain ? arg : "'" + arg + "'";
  }
}
}  // namespace longseq::cli

int main(int argc, char** argv) {
  CLI::App app{"longseq: long-sequence models (Mamba, Hyena) over million-length DNA and audio", "longseq"};
  app.set_version_flag("--version", std::string("longseq ") + LONGSEQ_VERSION);
  int threads = 0;
  std::string log_level = "info";
  bool quiet = false;
  app.add_option("--threads,-@", threads, "Worker threads (default: one per core)")->check(CLI::NonNegativeNumber);
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_flag("--quiet,-q", quiet, "Only errors on stderr; no progress");
  app.require_subcommand(1);
  app.fallthrough();

  longseq::cli::add_info(app);
  longseq::cli::add_forward(app);
  longseq::cli::add_loglik(app);
  longseq::cli::add_init(app);
  longseq::cli::add_score_variants(app);
  longseq::cli::add_train(app);
  longseq::cli::add_classify(app);
  longseq::cli::add_classify_audio(app);
  longseq::cli::set_command_line(argc, argv);

  try {
    app.parse_complete_callback([&] {
      longseq::init_logging(quiet ? "error" : log_level);
      longseq::Progress::set_quiet(quiet);
      longseq::set_num_threads(threads);
    });
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const longseq::Error& e) {
    std::fprintf(stderr, "longseq: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "longseq: error: out of memory (use a smaller --chunk/--batch or fewer threads)\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "longseq: internal error: %s (please report it with the command line)\n", e.what());
    return 2;
  }
  return 0;
}
