// `longseq loglik`: per-position log-probabilities of a DNA sequence under a language model, streamed
// to TSV chunk by chunk (bounded memory for recurrent models), with the sum and mean at the end.
#include "apps/longseq/commands.h"
#include "apps/longseq/model_args.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/models/lm.h"
#include "core/models/windows.h"
#include "core/families/family.h"
#include "core/ops/softmax.h"
#include "core/progress.h"
#include "genomics/fasta.h"
#include "genomics/tokenizer.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <cstdio>
#include <optional>

namespace longseq::cli {

namespace {

struct LoglikArgs {
  std::string model, fasta, region, text, output = "-", device = "cpu";
  int64_t chunk = 4096, window = 0, context = -1;  // context -1: not given
  bool keep_case = false;
};

// Where the bases come from: a FASTA region (read chunk by chunk) or a literal string.
class BaseSource {
 public:
  explicit BaseSource(const LoglikArgs& a) {
    if (!a.text.empty()) {
      text_ = a.text;
      region_ = {"text", 0, int64_t(a.text.size())};
      return;
    }
    fasta_.emplace(FastaReader::open(a.fasta));
    if (a.region.empty()) {
      const auto names = fasta_->contigs();
      LS_CHECK(names.size() == 1, "{}: has {} contigs; pick one with --region chr[:start-end]", a.fasta, names.size());
      region_ = fasta_->resolve({names[0], 0, -1});
    } else {
      region_ = fasta_->resolve(parse_region(a.region));
    }
  }
  const Region& region() const { return region_; }
  int64_t length() const { return region_.end - region_.start; }
  // Bases [start, end) relative to the region start.
  std::string bases(int64_t start, int64_t end) const {
    if (fasta_) return fasta_->fetch(region_.contig, region_.start + start, region_.start + end);
    return text_.substr(size_t(start), size_t(end - start));
  }

 private:
  std::optional<FastaReader> fasta_;
  std::string text_;
  Region region_;
};

void run(const LoglikArgs& a) {
  LS_CHECK(a.text.empty() != a.fasta.empty(), "give exactly one of --fasta FILE or --text STRING");
  LS_CHECK(a.text.empty() || a.region.empty(), "--region applies to --fasta only");
  if (a.output != "-") {
    auto inputs = ModelDir::files(a.model);
    if (!a.fasta.empty())
      for (const auto& p : with_suffixes(a.fasta, {".fai", ".gzi"})) inputs.push_back(p);
    check_output_file(a.output, inputs);
  }
  const ModelDir dir = ModelDir::open(a.model);
  const auto model = make_device_model(load_language_model(dir), a.device);
  LS_CHECK(model->causal(), "{}: the {} model is bidirectional (a masked language model), so next-base log-probabilities do not "
           "apply; score variants with 'score-variants --method llr' or read its states with 'longseq embed'", a.model, model->family());
  DnaTokenizer tok = DnaTokenizer::from_config(dir.config, model->vocab_size());
  tok.set_keep_case(a.keep_case);
  const BaseSource src(a);
  const int64_t L = src.length();
  LS_CHECK(L >= 2, "the sequence has {} bases; need at least 2 to score next-base predictions", L);
  LS_CHECK(model->max_length() == 0 || a.window <= model->max_length(), "--window {} exceeds the model's maximum length {}", a.window,
           model->max_length());
  const int64_t window = a.window > 0 ? a.window : model->max_length();  // 0: the model has no maximum
  const bool windowed = window > 0 && L > window;
  LS_CHECK(!windowed || a.context >= 0,
           "the sequence has {} bases but the model's window is {}: add --context C (0 <= C < {}) to score it in windows overlapping by "
           "C bases (each base then predicted once, from at least C bases of left context)", L, window, window);
  LS_CHECK(a.context < 0 || window == 0 || a.context < window, "--context {} must be smaller than the window {}", a.context, window);

  std::optional<AtomicFile> file;
  FILE* out = stdout;
  if (a.output != "-") {
    file.emplace(a.output);
    out = file->stream();
  }
  fmt::print(out, "#chrom\tpos\tbase\tlogprob\n");

  // The sink fetches the bases its rows predict itself: families differ in how they interleave
  // pulling ids and emitting logits (a global convolution pulls the whole window first).
  TokenizeStats stats;
  double sum = 0;
  int64_t scored = 0;
  Progress progress("loglik", L, "bases");
  int64_t counted = 0;  // bases [0, counted) are in `stats` (overlapping windows read some twice)
  const IdSource ids = [&](int64_t start, Tensor& part) {
    const int64_t end = start + part.size(0);
    const std::string b = src.bases(start, end);
    tok.encode(b, part.data<int64_t>(), start >= counted ? &stats : nullptr);
    if (start < counted && end > counted) {
      std::vector<int64_t> tail(size_t(end - counted));
      tok.encode(std::string_view(b).substr(size_t(counted - start)), tail.data(), &stats);
    }
    counted = std::max(counted, end);
  };
  const LogitsSink sink = [&](int64_t start, const Tensor& logits) {
    const int64_t V = logits.size(1), rows = std::min(logits.size(0), L - 1 - start);  // row t predicts t + 1
    if (rows <= 0) return progress.add(logits.size(0));
    const std::string next = src.bases(start + 1, start + 1 + rows);
    std::vector<int64_t> next_ids(next.size());
    tok.encode(next, next_ids.data());
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = logits.data<float>() + r * logits.stride(0);
      const double lp = double(row[next_ids[size_t(r)]]) - log_sum_exp(row, V);
      LS_CHECK(std::isfinite(lp),
               "{}:{}: the model gave a non-finite log-probability (an overflow in its activations); no output was written. "
               "Check the model with `longseq info`, or retrain it",
               src.region().contig, src.region().start + start + r + 2);
      sum += lp;
      ++scored;
      fmt::print(out, "{}\t{}\t{}\t{:.6f}\n", src.region().contig, src.region().start + start + r + 2, next[size_t(r)], lp);
    }
    progress.add(logits.size(0));
  };
  if (windowed)
    stream_logits_windowed(*model, L, ids, window, a.context, a.chunk, sink);
  else
    model->stream_logits(L, ids, a.chunk, sink);
  progress.finish();
  const double mean = sum / double(scored);
  fmt::print(out, "#sum\t{:.6f}\n#mean\t{:.6f}\n#bits_per_base\t{:.6f}\n#scored\t{}\n", sum, mean, -mean / std::log(2.0), scored);
  if (file) file->commit();
  spdlog::info("{}:{}-{}: {} positions scored, sum {:.4f}, mean {:.6f} ({:.4f} bits/base)", src.region().contig,
               src.region().start + 1, src.region().end, scored, sum, mean, -mean / std::log(2.0));
  if (stats.soft_masked || stats.ambiguous || stats.unknown)
    spdlog::info("tokenizer: {} soft-masked bases upper-cased, {} IUPAC codes mapped to N, {} unknown characters",
                 stats.soft_masked, stats.ambiguous, stats.unknown);
}

}  // namespace

void add_loglik(CLI::App& app) {
  auto a = std::make_shared<LoglikArgs>();
  auto* cmd = app.add_subcommand("loglik", "Per-position log-probabilities of a DNA sequence (TSV), with sum and mean");
  cmd->add_option("-m,--model", a->model, "Model directory")->required();
  auto* fasta = cmd->add_option("--fasta", a->fasta, "FASTA file (plain or bgzipped)");
  cmd->add_option("--region", a->region, "chr[:start-end], 1-based inclusive (default: the only contig)")->needs(fasta);
  auto* text = cmd->add_option("--text", a->text, "A DNA string instead of a FASTA file");
  fasta->excludes(text);
  cmd->add_option("-o,--output", a->output, "Output TSV ('-' = stdout)");
  cmd->add_option("--chunk", a->chunk, "Tokens per streamed chunk")->check(CLI::Range(int64_t(1), int64_t(1) << 24));
  add_window_options(cmd, a->window, a->context, "predicted");
  cli::add_device_option(cmd, a->device);
  cmd->add_flag("--keep-case", a->keep_case, "Do not upper-case soft-masked (lowercase) bases; they become unknown tokens");
  cmd->callback([a] { run(*a); });
}

}  // namespace longseq::cli
