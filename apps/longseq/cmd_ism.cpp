// `longseq ism`: in-silico saturation mutagenesis of a region: every position changed to each of the
// three other bases and scored by the variant scorer (the same windows and methods as
// score-variants, so a position's value here equals that SNV's score there). Each position is one
// multi-allelic site: a causal model runs the window's prefix once and continues the reference and
// the three alternatives from its state (prefix sharing; --no-prefix-sharing runs the four windows
// whole, the naive cost), a masked model masks the position once for all three. Positions run in
// parallel in batches; the output is written in order, whole or not at all.
#include "apps/longseq/commands.h"
#include "apps/longseq/model_args.h"
#include "apps/longseq/options.h"
#include "core/error.h"
#include "core/families/family.h"
#include "core/fileio.h"
#include "core/plot.h"
#include "core/progress.h"
#include "core/threads.h"
#include "genomics/coding.h"
#include "genomics/variant_scorer.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <chrono>
#include <cmath>
#include <limits>

namespace longseq::cli {

namespace {

struct IsmArgs {
  std::string model, reference, region, output, plot, gff, method, strand = "both", track = "mean", device = "cpu";
  int64_t window = 0, batch = 256;
  bool no_sharing = false;
};

constexpr char kBases[] = {'A', 'C', 'G', 'T'};
int base_index(char c) {
  switch (c) {
    case 'A': return 0;
    case 'C': return 1;
    case 'G': return 2;
    case 'T': return 3;
    default: return -1;
  }
}

bool is_bedgraph(const std::string& path) { return path.ends_with(".bedgraph") || path.ends_with(".bedGraph") || path.ends_with(".bg"); }

// One position's scores: [A, C, G, T], NaN for the reference base and anything not scored.
using Effects = std::array<double, 4>;

double summary(const Effects& e, const std::string& track) {
  double sum = 0, lo = std::numeric_limits<double>::infinity();
  int n = 0;
  for (double v : e)
    if (std::isfinite(v)) {
      sum += v;
      lo = std::min(lo, v);
      ++n;
    }
  if (n == 0) return NAN;
  return track == "min" ? lo : sum / n;
}

class Ism {
 public:
  explicit Ism(const IsmArgs& a)
      : a_(a),
        dir_(ModelDir::open(a.model)),
        model_(make_device_model(load_language_model(dir_), a.device)),
        tok_(DnaTokenizer::from_config(dir_.config, model_->vocab_size())),
        fasta_(FastaReader::open(a.reference)),
        region_(fasta_.resolve(parse_region(a.region))) {
    LS_CHECK(region_.end > region_.start, "--region {} is empty; give chr:start-end with end >= start (1-based, inclusive)", a.region);
    ScoreOptions o;
    o.window = a.window > 0 ? a.window : default_variant_window(dir_.config, *model_);
    o.forward = a.strand != "rev";
    o.reverse = a.strand != "fwd";
    o.methods = {parse_method(a.method.empty() ? (model_->causal() ? "dll" : "llr") : a.method)};
    LS_CHECK(o.methods[0] == Method::kDll || o.methods[0] == Method::kLlr,
             "--method {}: ism writes one value per base change; use dll (causal models) or llr (masked models)", a.method);
    o.share_prefix = !a.no_sharing;
    scorer_.emplace(*model_, tok_, fasta_, o);
    spdlog::info("ism: {} ({}), {}:{}-{} ({} positions x 3 changes), method {}, window {}, strand {}{}", a.model, describe_model(*model_),
                 region_.contig, region_.start + 1, region_.end, region_.end - region_.start, method_name(o.methods[0]), o.window,
                 a.strand, o.methods[0] == Method::kDll ? (a.no_sharing ? ", every window run whole" : ", prefix shared") : "");
  }

  void run() {
    const int64_t n = region_.end - region_.start;
    reference_ = fasta_.fetch(region_.contig, region_.start, region_.end);
    for (char& c : reference_) c = char(std::toupper(static_cast<unsigned char>(c)));
    effects_.assign(size_t(n), {NAN, NAN, NAN, NAN});
    const auto t0 = std::chrono::steady_clock::now();
    Progress progress("ism", n, "positions");
    std::vector<VariantScorer::Prepared> batch;
    for (int64_t first = 0; first < n; first += a_.batch) {
      const int64_t count = std::min(a_.batch, n - first);
      batch.clear();
      for (int64_t i = first; i < first + count; ++i) batch.push_back(scorer_->prepare(site(i)));
      for_blocks(count, 1, [&](int64_t k, int64_t, int) { scorer_->run(batch[size_t(k)]); });
      for (int64_t k = 0; k < count; ++k) collect(first + k, batch[size_t(k)]);
      progress.add(count);
    }
    progress.finish();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int64_t scored = 0;
    for (const Effects& e : effects_) scored += std::isfinite(summary(e, "mean"));
    spdlog::info("ism: {} positions ({} with scores) in {:.1f} s: {:.1f} positions/s, {:.1f} changes/s", n, scored, seconds,
                 double(n) / std::max(seconds, 1e-9), 3.0 * double(n) / std::max(seconds, 1e-9));
    write_output();
    if (!a_.plot.empty()) draw();
  }

 private:
  // Position i of the region as a site with the three other bases as ALTs (none at an N).
  Site site(int64_t i) const {
    const char ref = reference_[size_t(i)];
    Site s{region_.contig, region_.start + i, std::string(1, ref), {}};
    if (base_index(ref) >= 0)
      for (char b : kBases)
        if (b != ref) s.alts.emplace_back(1, b);
    return s;
  }

  void collect(int64_t i, const VariantScorer::Prepared& p) {
    const char ref = reference_[size_t(i)];
    size_t k = 0;
    for (char b : kBases) {
      if (b == ref || base_index(ref) < 0) continue;
      const AlleleScore& s = p.scores[k++];
      if (s.reason == SkipReason::kNone) effects_[size_t(i)][size_t(base_index(b))] = s.score[0];
    }
  }

  void write_output() const {
    AtomicFile file(a_.output);
    FILE* out = file.stream();
    const std::string feature = method_name(scorer_->options().methods[0]);
    if (is_bedgraph(a_.output)) {
      fmt::print(out, "track type=bedGraph name=\"longseq ism {}\" description=\"{} of the 3 base changes' {} ({})\"\n", a_.track,
                 a_.track, feature, a_.model);
      for (size_t i = 0; i < effects_.size(); ++i) {
        const double v = summary(effects_[i], a_.track);
        if (std::isfinite(v)) fmt::print(out, "{}\t{}\t{}\t{:.6g}\n", region_.contig, region_.start + int64_t(i), region_.start + int64_t(i) + 1, v);
      }
    } else {
      fmt::print(out, "#CHROM\tPOS\tREF\tA\tC\tG\tT\tmean\tmin\n");
      const auto num = [](double v) { return std::isfinite(v) ? fmt::format("{:.6g}", v) : std::string("."); };
      for (size_t i = 0; i < effects_.size(); ++i) {
        const Effects& e = effects_[i];
        fmt::print(out, "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n", region_.contig, region_.start + int64_t(i) + 1, reference_[i], num(e[0]),
                   num(e[1]), num(e[2]), num(e[3]), num(summary(e, "mean")), num(summary(e, "min")));
      }
    }
    file.commit();
  }

  void draw() const {
    plot::HeatmapPanel p;
    p.title = fmt::format("in-silico mutagenesis, {}:{}-{} ({})", region_.contig, region_.start + 1, region_.end,
                          std::filesystem::path(a_.model).lexically_normal().filename().string());
    p.value_label = std::string(method_name(scorer_->options().methods[0])) + " (alt - ref)";
    p.first_position = region_.start + 1;
    p.reference = reference_;
    p.values = effects_;
    if (!a_.gff.empty())
      for (const Cds& g : read_gff_cds(a_.gff))
        if (g.contig == region_.contig && g.end > region_.start && g.start < region_.end)
          p.genes.push_back({g.start - region_.start, g.end - region_.start, g.strand, g.id});
    const double width = std::clamp(double(effects_.size()) * 8.0 + 150, 700.0, 2400.0);
    plot::Figure fig(1, 1, width, p.genes.empty() ? 260 : 290);
    fig.draw(0, 0, p);
    fig.save(a_.plot);
  }

  const IsmArgs& a_;
  ModelDir dir_;
  std::unique_ptr<LanguageModel> model_;
  DnaTokenizer tok_;
  FastaReader fasta_;
  Region region_;
  std::optional<VariantScorer> scorer_;
  std::string reference_;
  std::vector<Effects> effects_;
};

void check_paths(const IsmArgs& a) {
  std::vector<std::filesystem::path> inputs = ModelDir::files(a.model);
  for (const auto& p : with_suffixes(a.reference, {".fai", ".gzi"})) inputs.push_back(p);
  if (!a.gff.empty()) inputs.push_back(a.gff);
  check_output_file(a.output, inputs);
  if (!a.plot.empty()) {
    plot::format_of(a.plot);
    check_output_file(a.plot, inputs, "--plot");
  }
}

}  // namespace

void add_ism(CLI::App& app) {
  auto a = std::make_shared<IsmArgs>();
  auto* cmd = app.add_subcommand("ism",
                                 "In-silico saturation mutagenesis: every position of a region changed to each other base and scored "
                                 "(a 4 x positions table, a per-position bedGraph track, a heatmap)");
  cmd->footer(
      "Each change is scored exactly as score-variants scores that SNV (same window convention, methods and strands). Output by "
      "name: .bedgraph/.bg writes the per-position --track (mean or min over the 3 changes) for genome browsers; anything else a TSV "
      "with columns A C G T (the reference base '.'), mean and min. Cost per position with dll and a window of W: the shared prefix "
      "(about W/2 tokens) once plus the reference and 3 alternative continuations (about W/2 each), per strand: about 2.5 W tokens "
      "instead of 4 W (--no-prefix-sharing).");
  cmd->add_option("-m,--model", a->model, "Model directory")->required();
  cmd->add_option("-r,--reference", a->reference, "Reference FASTA (plain or bgzipped)")->required();
  cmd->add_option("--region", a->region, "chr:start-end (1-based, inclusive)")->required();
  cmd->add_option("-o,--output", a->output, "Output .tsv or .bedgraph")->required();
  cmd->add_option("--plot", a->plot, "Also draw the heatmap to this .png, .svg or .pdf");
  cmd->add_option("--gff", a->gff, "Genes (GFF3 CDS lines) drawn as arrows under the heatmap");
  cmd->add_option("--window", a->window, "Window length W in bases (default: the model's training length, else its maximum, capped at 32768)")
      ->transform(count_range(2, int64_t(1) << 30));
  cmd->add_option("--method", a->method, "dll (causal models, default) or llr (masked models, default)")->check(CLI::IsMember({"dll", "llr"}));
  cmd->add_option("--strand", a->strand, "fwd, rev, or both (mean of the two)")->check(CLI::IsMember({"fwd", "rev", "both"}));
  cmd->add_option("--track", a->track, "bedGraph value per position: mean or min of the 3 changes")->check(CLI::IsMember({"mean", "min"}));
  cmd->add_option("--batch", a->batch, "Positions prepared and scored together (parallel)")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cmd->add_flag("--no-prefix-sharing", a->no_sharing, "dll: run every window whole (the naive cost, for comparison)");
  add_device_option(cmd, a->device);
  cmd->callback([a] {
    check_paths(*a);
    Ism(*a).run();
  });
}

}  // namespace longseq::cli
