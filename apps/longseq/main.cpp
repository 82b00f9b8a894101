// The `longseq` command: global options, subcommand dispatch, and the one place where errors become
// a single stderr line and a non-zero exit.
#include "apps/longseq/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/temp_paths.h"
#include "core/ops/ops.h"
#include "core/threads.h"

#include <htslib/hts.h>

#include <cstdio>

namespace longseq::cli {
namespace {
std::string g_command_line;
std::string g_oom_hint = "use smaller inputs or sizes, or fewer --threads";
}
const std::string& command_line() { return g_command_line; }
void set_oom_hint(std::string hint) { g_oom_hint = std::move(hint); }
const std::string& oom_hint() { return g_oom_hint; }
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
  longseq::install_signal_cleanup();  // first: before any thread exists (see core/temp_paths.h)
  CLI::App app{"longseq: long-sequence models (state spaces, long convolutions) over million-length DNA and audio", "longseq"};
  app.set_version_flag("--version", std::string("longseq ") + LONGSEQ_VERSION);
  int threads = 0;
  std::string log_level = "info";
  bool quiet = false;
  app.add_option("--threads,-@", threads, fmt::format("Worker threads, 1 to {} (default 0: one per core)", longseq::kMaxThreads))
      ->check(CLI::Range(0, longseq::kMaxThreads));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_flag("--quiet,-q", quiet, "Only errors on stderr; no progress");
  std::string matmul = "fp32";
  app.add_option("--matmul", matmul,
                 "fp32 (default) or bf16: CPU matrix products of activations rounded to bf16, summed in fp32 (about 2x faster "
                 "prefill where the CPU has AVX512_BF16; approximate, like a bf16 GPU run)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  app.require_subcommand(1);
  // One line per mistake, ending with where to look (CLI11's default adds a second line).
  app.failure_message([](const CLI::App* top, const CLI::Error& e) {
    const auto used = top->get_subcommands();  // the subcommand given, if any
    if (!used.empty()) return fmt::format("longseq: error: {} (see `longseq {} --help`)\n", e.what(), used.front()->get_name());
    std::string names;  // no or an unknown subcommand: name them
    for (const CLI::App* sub : top->get_subcommands([](const CLI::App*) { return true; })) names += (names.empty() ? "" : ", ") + sub->get_name();
    return fmt::format("longseq: error: {}; subcommands: {} (see `longseq --help`)\n", e.what(), names);
  });
  app.fallthrough();

  longseq::cli::add_info(app);
  longseq::cli::add_forward(app);
  longseq::cli::add_loglik(app);
  longseq::cli::add_embed(app);
  longseq::cli::add_convert(app);
  longseq::cli::add_generate(app);
  longseq::cli::add_init(app);
  longseq::cli::add_score_variants(app);
  longseq::cli::add_bench_vep(app);
  longseq::cli::add_ism(app);
  longseq::cli::add_train(app);
  longseq::cli::add_classify(app);
  longseq::cli::add_classify_audio(app);
  longseq::cli::set_command_line(argc, argv);

  try {
    app.parse_complete_callback([&] {
      longseq::init_logging(quiet ? "error" : log_level);
      // htslib's own "[E::...]" lines would precede (and repeat) longseq's one-line error; they are
      // shown only when debugging.
      hts_set_log_level(log_level == "trace" ? HTS_LOG_DEBUG : log_level == "debug" ? HTS_LOG_WARNING : HTS_LOG_OFF);
      longseq::Progress::set_quiet(quiet);
      longseq::set_num_threads(threads);
      longseq::ops::set_matmul(matmul == "bf16" ? longseq::ops::Matmul::bf16 : longseq::ops::Matmul::fp32);
    });
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const longseq::Error& e) {
    std::fprintf(stderr, "longseq: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "longseq: error: out of memory (%s)\n", longseq::cli::oom_hint().c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "longseq: internal error: %s (please report it with the command line)\n", e.what());
    return 2;
  }
  return 0;
}
