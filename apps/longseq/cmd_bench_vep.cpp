// `longseq bench-vep`: does a model's variant score mean anything? SNVs are sampled in the
// protein-coding genes of a genome (a FASTA and its GFF3, e.g. prodigal's), labelled by their codon
// consequence under translation table 11, written as a labelled VCF, scored by every model given
// (and by order-k Markov chains fitted on a training FASTA, the baseline a model has to beat), and
// judged by how well each score separates stop-gained and missense SNVs from synonymous ones (AUROC
// with stratified bootstrap intervals). Everything is deterministic in --seed; every output file is
// written whole or not at all.
#include "apps/longseq/commands.h"
#include "apps/longseq/model_args.h"
#include "apps/longseq/options.h"
#include "core/error.h"
#include "core/families/family.h"
#include "core/fileio.h"
#include "core/plot.h"
#include "core/progress.h"
#include "core/stats.h"
#include "core/threads.h"
#include "genomics/coding_snvs.h"
#include "genomics/markov.h"
#include "genomics/variant_scorer.h"

#include <fmt/format.h>
#include <htslib/vcf.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>

namespace longseq::cli {

namespace {

namespace fs = std::filesystem;

struct BenchArgs {
  std::string reference, gff, out_dir, markov_train, strand = "both", plot_format = "png", device = "cpu";
  std::vector<std::string> models, methods;
  std::vector<int> markov_orders{3, 6, 9};
  int64_t window = 0, per_class = 1000;
  int bootstrap = 1000;
  uint64_t seed = 1;
};

// The comparisons reported: (case class, control class). A case is expected to be more damaging.
constexpr std::pair<Consequence, Consequence> kComparisons[] = {
    {Consequence::kStopGained, Consequence::kSynonymous},
    {Consequence::kMissense, Consequence::kSynonymous},
    {Consequence::kStartLost, Consequence::kSynonymous},
    {Consequence::kStopLost, Consequence::kSynonymous},
};
const char* short_name(Consequence c) {
  switch (c) {
    case Consequence::kStopGained: return "nonsense";
    case Consequence::kMissense: return "missense";
    case Consequence::kSynonymous: return "synonymous";
    case Consequence::kStartLost: return "start-lost";
    case Consequence::kStopLost: return "stop-lost";
    default: return consequence_name(c);
  }
}

// One thing that scores variants: a model folder or a Markov chain, with its own scorer.
struct Scorer {
  std::string label;
  std::string description;
  ModelDir dir;  // empty config for the chains
  std::unique_ptr<LanguageModel> model;
  // Behind pointers: the scorer keeps references to the model and the tokenizer while Scorers move.
  std::unique_ptr<DnaTokenizer> tokenizer;
  // --strand gene: one scorer per strand, each SNV scored on its gene's strand; else one scorer.
  std::optional<VariantScorer> scorer, reverse;
  const VariantScorer& for_strand(char strand) const { return strand == '-' && reverse ? *reverse : *scorer; }
};

// "NAME=DIR" or "DIR" (named after the folder, or its parent when the folder is .../model).
std::pair<std::string, std::string> model_label(const std::string& arg) {
  const size_t eq = arg.find('=');
  if (eq != std::string::npos && eq > 0) return {arg.substr(0, eq), arg.substr(eq + 1)};
  fs::path p = fs::path(arg).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  std::string name = p.filename().string();
  if (name == "model" && p.has_parent_path()) name = p.parent_path().filename().string();
  return {name, arg};
}

// The scorer options for `strand` (fwd, rev or both).
ScoreOptions score_options(const std::string& strand, int64_t window, std::vector<Method> methods) {
  ScoreOptions o;
  o.window = window;
  o.forward = strand != "rev";
  o.reverse = strand != "fwd";
  o.methods = std::move(methods);
  return o;
}

class BenchVep {
 public:
  explicit BenchVep(const BenchArgs& a) : a_(a), fasta_(FastaReader::open(a.reference)) {}

  void run() {
    fs::create_directories(a_.out_dir);
    sample();
    write_vcf();
    load_scorers();
    score();
    report();
  }

 private:
  void sample() {
    GffCdsStats st;
    genes_ = read_gff_cds(a_.gff, &st);
    LS_CHECK(!genes_.empty(), "{}: no complete CDS features ({} CDS lines, {} partial, {} off-frame, {} multi-line); give a GFF3 with "
             "gene calls of this genome, e.g. from 'prodigal -i GENOME.fa -f gff -o GENES.gff'",
             a_.gff, st.lines, st.partial, st.off_frame, st.joined);
    CodingSnvOptions o;
    o.per_class = a_.per_class;
    o.seed = a_.seed;
    sample_ = sample_coding_snvs(fasta_, genes_, o);
    // Only the classes compared are kept (the retained start and stop codons are neither cases nor controls).
    std::erase_if(sample_.snvs, [](const CodingSnv& s) {
      return s.change.consequence == Consequence::kStopRetained || s.change.consequence == Consequence::kStartRetained;
    });
    spdlog::info("bench-vep: {} genes from {} ({} CDS lines; left out: {} partial, {} off-frame, {} multi-line, {} failing the "
                 "genetic code); {} coding positions shared by two genes not sampled",
                 sample_.genes_used, a_.gff, st.lines, st.partial, st.off_frame, st.joined, sample_.genes_skipped.size(),
                 sample_.shared_positions);
    for (const auto& [id, why] : sample_.genes_skipped) spdlog::debug("gene {} left out: {}", id, why);
    std::string counts;
    for (int c = 0; c < int(Consequence::kCount); ++c)
      if (count_of(Consequence(c)) > 0) counts += fmt::format("{}{} {} of {}", counts.empty() ? "" : ", ", consequence_name(Consequence(c)), count_of(Consequence(c)),
                            sample_.candidates[size_t(c)]);
    spdlog::info("bench-vep: sampled {} SNVs (seed {}, at most {} per class): {}", sample_.snvs.size(), a_.seed, a_.per_class, counts);
  }

  int64_t count_of(Consequence c) const {
    return std::count_if(sample_.snvs.begin(), sample_.snvs.end(), [&](const CodingSnv& s) { return s.change.consequence == c; });
  }

  const std::string& contig(const CodingSnv& s) const { return contigs_[s.contig]; }

  void write_vcf() {
    contigs_ = fasta_.contigs();
    const fs::path path = fs::path(a_.out_dir) / "variants.vcf.gz";
    AtomicFile file(path), index(path.string() + ".tbi");
    const std::string tmp = file.temp_path().string();
    htsFile* out = hts_open(tmp.c_str(), "wz");
    LS_CHECK(out, "{}: cannot open for writing", path.string());
    bcf_hdr_t* h = bcf_hdr_init("w");
    const auto append = [&](const std::string& line) { LS_CHECK(bcf_hdr_append(h, line.c_str()) == 0, "VCF header line {}", line); };
    for (const std::string& c : contigs_) append(fmt::format("##contig=<ID={},length={}>", c, fasta_.length(c)));
    append("##INFO=<ID=CSQ,Number=1,Type=String,Description=\"Codon consequence under translation table 11 (Sequence Ontology term)\">");
    append("##INFO=<ID=GENE,Number=1,Type=String,Description=\"ID of the CDS in the GFF3\">");
    append("##INFO=<ID=STRAND,Number=1,Type=String,Description=\"Strand of the gene\">");
    append("##INFO=<ID=CODON,Number=1,Type=String,Description=\"Reference>alternative codon on the gene's strand\">");
    append("##INFO=<ID=AA,Number=1,Type=String,Description=\"Reference>alternative amino acid (* stop)\">");
    append("##INFO=<ID=CODON_NUMBER,Number=1,Type=Integer,Description=\"1-based codon number in the gene\">");
    append(fmt::format("##longseqBenchVep=<reference={},gff={},seed={},per_class={}>", a_.reference, a_.gff, a_.seed, a_.per_class));
    append("##longseqCommand=" + command_line());
    LS_CHECK(bcf_hdr_sync(h) == 0 && bcf_hdr_write(out, h) == 0, "{}: cannot write the VCF header", path.string());
    bcf1_t* rec = bcf_init();
    for (const CodingSnv& s : sample_.snvs) {
      bcf_clear(rec);
      rec->rid = bcf_hdr_name2id(h, contig(s).c_str());
      rec->pos = s.pos;
      const std::string alleles = fmt::format("{},{}", s.ref, s.alt);
      const Cds& g = genes_[s.gene];
      const std::string codon = s.change.ref_codon + ">" + s.change.alt_codon, aa = fmt::format("{}>{}", s.change.ref_aa, s.change.alt_aa);
      const int32_t number = int32_t(s.change.codon + 1);
      LS_CHECK(bcf_update_alleles_str(h, rec, alleles.c_str()) == 0 &&
                   bcf_update_info_string(h, rec, "CSQ", consequence_name(s.change.consequence)) == 0 &&
                   bcf_update_info_string(h, rec, "GENE", g.id.c_str()) == 0 &&
                   bcf_update_info_string(h, rec, "STRAND", g.strand == '+' ? "+" : "-") == 0 &&
                   bcf_update_info_string(h, rec, "CODON", codon.c_str()) == 0 &&
                   bcf_update_info_string(h, rec, "AA", aa.c_str()) == 0 && bcf_update_info_int32(h, rec, "CODON_NUMBER", &number, 1) == 0,
               "cannot build the VCF record at {}:{}", contig(s), s.pos + 1);
      LS_CHECK(bcf_write(out, h, rec) == 0, "{}: write failed (disk full?)", path.string());
    }
    bcf_destroy(rec);
    bcf_hdr_destroy(h);
    LS_CHECK(hts_close(out) == 0, "{}: could not finish writing (disk full?)", path.string());
    LS_CHECK(bcf_index_build3(tmp.c_str(), index.temp_path().c_str(), 0, 1) == 0, "{}: could not build the index", path.string());
    file.commit();
    index.commit();
    spdlog::info("bench-vep: labelled SNVs in {} (INFO/CSQ, GENE, CODON, AA)", path.string());
  }

  void load_scorers() {
    for (const std::string& arg : a_.models) {
      auto [label, path] = model_label(arg);
      Scorer s;
      s.label = label;
      s.dir = ModelDir::open(path);
      s.model = make_device_model(load_language_model(s.dir), a_.device);
      s.tokenizer = std::make_unique<DnaTokenizer>(DnaTokenizer::from_config(s.dir.config, s.model->vocab_size()));
      std::vector<Method> methods;
      for (const std::string& m : a_.methods.empty() ? std::vector<std::string>{s.model->causal() ? "dll" : "llr"} : a_.methods)
        methods.push_back(parse_method(m));
      const int64_t window = a_.window > 0 ? a_.window : default_variant_window(s.dir.config, *s.model);
      s.description = fmt::format("{} ({}, window {})", path, describe_model(*s.model), window);
      make_scorers(s, window, methods);
      scorers_.push_back(std::move(s));
    }
    if (!a_.markov_train.empty()) {
      const int64_t window = a_.window > 0 ? a_.window : 1024;
      for (int k : a_.markov_orders) {
        const auto t0 = std::chrono::steady_clock::now();
        Scorer s;
        auto chain = MarkovLm::fit(a_.markov_train, k);
        s.label = fmt::format("markov-{}", k);
        s.description = fmt::format("order-{} Markov chain fitted on {} ({} bases, both strands; {:.1f} s), window {}", k,
                                    a_.markov_train, chain->trained_bases(),
                                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), window);
        s.model = std::move(chain);
        s.tokenizer = std::make_unique<DnaTokenizer>(DnaTokenizer::standard());
        make_scorers(s, window, {Method::kDll});
        scorers_.push_back(std::move(s));
      }
    }
    LS_CHECK(!scorers_.empty(), "nothing to score with: give one or more -m MODEL and/or --markov-train FASTA");
    for (const Scorer& s : scorers_) spdlog::info("bench-vep: {}: {}", s.label, s.description);
  }

  void make_scorers(Scorer& s, int64_t window, const std::vector<Method>& methods) const {
    const bool by_gene = a_.strand == "gene";
    s.scorer.emplace(*s.model, *s.tokenizer, fasta_, score_options(by_gene ? "fwd" : a_.strand, window, methods));
    if (by_gene) s.reverse.emplace(*s.model, *s.tokenizer, fasta_, score_options("rev", window, methods));
  }

  void score() {
    for (Scorer& s : scorers_) {
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<VariantScorer::Prepared> prepared;
      prepared.reserve(sample_.snvs.size());
      for (const CodingSnv& v : sample_.snvs)
        prepared.push_back(s.for_strand(genes_[v.gene].strand).prepare({contig(v), v.pos, std::string(1, v.ref), {std::string(1, v.alt)}}));
      Progress progress("bench-vep " + s.label, int64_t(prepared.size()), "variants");
      for_blocks(int64_t(prepared.size()), 1, [&](int64_t i, int64_t, int) {
        s.for_strand(genes_[sample_.snvs[size_t(i)].gene].strand).run(prepared[size_t(i)]);
        progress.add(1);
      });
      progress.finish();
      std::vector<std::vector<double>> values(s.scorer->features().size(), std::vector<double>(prepared.size(), NAN));
      int64_t skipped = 0;
      for (size_t i = 0; i < prepared.size(); ++i) {
        const AlleleScore& a = prepared[i].scores[0];
        if (a.reason != SkipReason::kNone) {
          ++skipped;
          continue;
        }
        for (size_t f = 0; f < values.size(); ++f) values[f][i] = a.score[f];
      }
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      spdlog::info("bench-vep: {} scored {} SNVs in {:.1f} s ({:.1f} per second){}", s.label, prepared.size() - size_t(skipped), seconds,
                   double(prepared.size()) / std::max(seconds, 1e-9),
                   skipped ? fmt::format("; {} not scored (window past the contig or N)", skipped) : "");
      for (size_t f = 0; f < values.size(); ++f) columns_.push_back({s.label, s.scorer->features()[f], std::move(values[f])});
    }
  }

  struct Column {
    std::string label, feature;
    std::vector<double> values;  // per sampled SNV, NaN when not scored
  };
  struct Row {
    const Column* column;
    Consequence case_class, control_class;
    AurocInterval all, matched;  // over every pair; over pairs of the same substitution type
    std::vector<std::pair<double, double>> roc;
  };

  // The substitution on the gene's coding strand as a stratum (ref * 4 + alt, bases A C G T = 0..3),
  // so the matched AUROC compares, e.g., a C>T nonsense SNV only with C>T synonymous ones: a score
  // that only reflects which bases changed (base composition) is at 0.5 there.
  int substitution(const CodingSnv& s) const {
    const auto idx = [](char b) { return int(std::string_view("ACGT").find(b)); };
    const bool minus = genes_[s.gene].strand == '-';
    const auto coding = [&](char b) { return minus ? "TGCA"[idx(b)] : b; };
    return idx(coding(s.ref)) * 4 + idx(coding(s.alt));
  }

  // The damage scores (sign-adjusted) of one class's scored SNVs, and their substitution strata.
  std::pair<std::vector<double>, std::vector<int>> damage(const Column& c, Consequence cls) const {
    std::pair<std::vector<double>, std::vector<int>> out;
    for (size_t i = 0; i < sample_.snvs.size(); ++i)
      if (sample_.snvs[i].change.consequence == cls && std::isfinite(c.values[i])) {
        out.first.push_back(damage_sign(c.feature) * c.values[i]);
        out.second.push_back(substitution(sample_.snvs[i]));
      }
    return out;
  }

  void report() {
    write_scores();
    std::vector<Row> rows;
    for (const Column& c : columns_)
      for (const auto& [cases, controls] : kComparisons) {
        const auto [x, xs] = damage(c, cases);
        const auto [y, ys] = damage(c, controls);
        if (x.empty() || y.empty()) continue;
        rows.push_back({&c, cases, controls, auroc_bootstrap(x, y, a_.bootstrap, a_.seed),
                        stratified_auroc_bootstrap(x, xs, y, ys, a_.bootstrap, a_.seed), roc_curve(x, y)});
      }
    write_auroc(rows);
    plot_roc(rows);
    plot_histograms();
  }

  void write_scores() const {
    AtomicFile file(fs::path(a_.out_dir) / "scores.tsv");
    FILE* out = file.stream();
    fmt::print(out, "#CHROM\tPOS\tREF\tALT\tconsequence\tgene\tstrand\tcodon\taa");
    for (const Column& c : columns_) fmt::print(out, "\t{}:{}", c.label, c.feature);
    fmt::print(out, "\n");
    for (size_t i = 0; i < sample_.snvs.size(); ++i) {
      const CodingSnv& s = sample_.snvs[i];
      fmt::print(out, "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}>{}\t{}>{}", contig(s), s.pos + 1, s.ref, s.alt, consequence_name(s.change.consequence),
                 genes_[s.gene].id, genes_[s.gene].strand, s.change.ref_codon, s.change.alt_codon, s.change.ref_aa, s.change.alt_aa);
      for (const Column& c : columns_) fmt::print(out, "\t{}", std::isfinite(c.values[i]) ? fmt::format("{:.6g}", c.values[i]) : ".");
      fmt::print(out, "\n");
    }
    file.commit();
  }

  void write_auroc(const std::vector<Row>& rows) const {
    AtomicFile file(fs::path(a_.out_dir) / "auroc.tsv");
    FILE* out = file.stream();
    fmt::print(out, "scorer\tfeature\tcase\tcontrol\tpairs\tn_case\tn_control\tauroc\tci95_low\tci95_high\n");
    fmt::print("{:<20} {:<8} {:<24} {:>6} {:>6}  {:>22}  {:>22}\n", "scorer", "feature", "comparison", "cases", "ctrls",
               "AUROC all pairs [95%]", "same substitution [95%]");
    for (const Row& r : rows) {
      for (const auto& [pairs, res] : {std::pair{"all", &r.all}, std::pair{"same_substitution", &r.matched}})
        fmt::print(out, "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.4f}\t{:.4f}\t{:.4f}\n", r.column->label, r.column->feature,
                   consequence_name(r.case_class), consequence_name(r.control_class), pairs, res->cases, res->controls, res->auroc,
                   res->lo, res->hi);
      fmt::print("{:<20} {:<8} {:<24} {:>6} {:>6}  {:>6.3f} [{:.3f}, {:.3f}]  {:>6.3f} [{:.3f}, {:.3f}]\n", r.column->label,
                 r.column->feature, fmt::format("{} vs {}", short_name(r.case_class), short_name(r.control_class)), r.all.cases,
                 r.all.controls, r.all.auroc, r.all.lo, r.all.hi, r.matched.auroc, r.matched.lo, r.matched.hi);
    }
    file.commit();
  }

  std::string picture(const std::string& stem) const { return (fs::path(a_.out_dir) / (stem + "." + a_.plot_format)).string(); }

  // One panel per comparison with a curve per scorer and feature.
  void plot_roc(const std::vector<Row>& rows) const {
    std::vector<std::pair<Consequence, Consequence>> shown;
    for (const auto& cmp : kComparisons)
      if (std::any_of(rows.begin(), rows.end(), [&](const Row& r) { return r.case_class == cmp.first && r.control_class == cmp.second; }))
        shown.push_back(cmp);
    if (shown.empty()) return;
    const int cols = std::min<int>(2, int(shown.size())), grid_rows = (int(shown.size()) + cols - 1) / cols;
    plot::Figure fig(grid_rows, cols, 460, 440);
    for (size_t p = 0; p < shown.size(); ++p) {
      plot::LinePanel panel;
      panel.title = fmt::format("{} vs {} SNVs: AUROC (same substitution)", short_name(shown[p].first), short_name(shown[p].second));
      panel.x_label = fmt::format("false-positive rate ({})", short_name(shown[p].second));
      panel.y_label = fmt::format("true-positive rate ({})", short_name(shown[p].first));
      panel.diagonal = true;
      size_t color = 0;
      for (const Row& r : rows) {
        if (r.case_class != shown[p].first || r.control_class != shown[p].second) continue;
        const std::string feature = r.column->feature == "dll" || r.column->feature == "llr" ? "" : " " + r.column->feature;
        panel.series.push_back(
            {fmt::format("{}{}  {:.3f} ({:.3f})", r.column->label, feature, r.all.auroc, r.matched.auroc), r.roc, plot::palette(color++)});
      }
      fig.draw(int(p) / cols, int(p) % cols, panel);
    }
    fig.save(picture("roc"));
  }

  // One panel per scorer and feature: the raw score's distribution per class.
  void plot_histograms() const {
    if (columns_.empty()) return;
    const int cols = std::min<int>(2, int(columns_.size())), grid_rows = (int(columns_.size()) + cols - 1) / cols;
    plot::Figure fig(grid_rows, cols, 460, 320);
    for (size_t p = 0; p < columns_.size(); ++p) {
      plot::HistogramPanel panel;
      panel.title = columns_[p].label;
      panel.x_label = columns_[p].feature + (columns_[p].feature == "dll" ? " = log P(alt) - log P(ref)" : "");
      for (Consequence c : {Consequence::kSynonymous, Consequence::kMissense, Consequence::kStopGained}) {
        std::vector<double> v;
        for (size_t i = 0; i < sample_.snvs.size(); ++i)
          if (sample_.snvs[i].change.consequence == c && std::isfinite(columns_[p].values[i])) v.push_back(columns_[p].values[i]);
        if (!v.empty()) panel.groups.emplace_back(short_name(c), std::move(v));
      }
      fig.draw(int(p) / cols, int(p) % cols, panel);
    }
    fig.save(picture("hist"));
  }

  const BenchArgs& a_;
  FastaReader fasta_;
  std::vector<std::string> contigs_;
  std::vector<Cds> genes_;
  CodingSnvSample sample_;
  std::vector<Scorer> scorers_;
  std::vector<Column> columns_;
};

// Before any work: no output may be an input (a reference, GFF, training FASTA or model file).
void check_paths(const BenchArgs& a) {
  fs::create_directories(a.out_dir);  // the folder is created when missing (--out-dir)
  std::vector<fs::path> inputs = {a.gff};
  for (const auto& p : with_suffixes(a.reference, {".fai", ".gzi"})) inputs.push_back(p);
  if (!a.markov_train.empty())
    for (const auto& p : with_suffixes(a.markov_train, {".fai", ".gzi"})) inputs.push_back(p);
  for (const std::string& m : a.models)
    for (const auto& p : ModelDir::files(model_label(m).second)) inputs.push_back(p);
  for (const std::string& name : std::vector<std::string>{"variants.vcf.gz", "variants.vcf.gz.tbi", "scores.tsv", "auroc.tsv", "roc." + a.plot_format,
                                 "hist." + a.plot_format})
    check_output_file(fs::path(a.out_dir) / name, inputs);
}

}  // namespace

void add_bench_vep(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench-vep",
                                 "Variant-effect benchmark on a genome's protein-coding genes: sample SNVs, label them by codon consequence "
                                 "(translation table 11), score them with models and Markov baselines, report AUROC of nonsense and missense "
                                 "vs synonymous with bootstrap intervals, ROC curves and score histograms");
  cmd->footer(
      "Writes OUT/variants.vcf.gz(.tbi) (INFO/CSQ, GENE, STRAND, CODON, AA, CODON_NUMBER), OUT/scores.tsv (one column per scorer and "
      "feature, raw values), OUT/auroc.tsv, OUT/roc.png and OUT/hist.png. Two AUROCs per comparison: over all (case, control) "
      "pairs, and over pairs with the same substitution on the coding strand (e.g. C>T against C>T), which a score that only "
      "reflects base composition cannot pass. A score ranks a variant as damaging when it is lower (dll, "
      "llr, inner) or higher (l2, cosine). Genes: complete CDS lines of a GFF3 (prodigal -f gff), checked against the genome (start "
      "codon, final stop, no internal stop); positions in two genes are not sampled. Benchmark genomes must never have been trained on "
      "(docs/VARIANTS.md).");
  cmd->add_option("-r,--reference", a->reference, "Genome FASTA (plain or bgzipped) the genes were called on")->required();
  cmd->add_option("--gff", a->gff, "GFF3 of its protein-coding genes (CDS lines), e.g. 'prodigal -i GENOME -f gff -o GENES.gff'")->required();
  cmd->add_option("-o,--out-dir", a->out_dir, "Folder for the outputs (created when missing)")->required();
  cmd->add_option("-m,--model", a->models, "Model folder to score with, as DIR or NAME=DIR; repeat for several");
  cmd->add_option("--markov-train", a->markov_train, "FASTA to fit the order-k Markov baselines on (the models' training genomes)");
  cmd->add_option("--markov-order", a->markov_orders, "Orders of the Markov baselines")->delimiter(',')->check(CLI::Range(0, 12));
  cmd->add_option("--method", a->methods, "Scoring methods for every model (default: dll for causal models, llr for masked ones)")
      ->delimiter(',')
      ->check(CLI::IsMember({"dll", "llr", "embed-dist", "inner"}));
  cmd->add_option("--window", a->window, "Window in bases (default: each model's training length; the Markov chains' 1024)")
      ->transform(count_range(2, int64_t(1) << 30));
  cmd->add_option("--strand", a->strand,
                  "fwd, rev, both (mean of the two), or gene: each SNV on its gene's coding strand (the gene read 5'->3', as Evo scores "
                  "coding mutations)")
      ->check(CLI::IsMember({"fwd", "rev", "both", "gene"}));
  cmd->add_option("--per-class", a->per_class, "SNVs sampled per consequence class (at most)")->transform(count_range(1, int64_t(1) << 24));
  cmd->add_option("--seed", a->seed, "Seed of the sampling and the bootstrap");
  cmd->add_option("--bootstrap", a->bootstrap, "Bootstrap resamples for the 95% intervals")->check(CLI::Range(10, 1000000));
  cmd->add_option("--plot-format", a->plot_format, "png, svg or pdf")->check(CLI::IsMember({"png", "svg", "pdf"}));
  add_device_option(cmd, a->device);
  cmd->callback([a] {
    const auto t0 = std::chrono::steady_clock::now();
    check_paths(*a);
    BenchVep(*a).run();
    spdlog::info("bench-vep: done in {:.1f} s; results in {}", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                 a->out_dir);
  });
}

}  // namespace longseq::cli
