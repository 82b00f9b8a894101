// `longseq score-variants`: annotate every record of a VCF/BCF with the model's scores per ALT, one
// INFO tag (Number=A) per feature of the chosen methods, bcftools-style I/O through htslib. Records are read in batches in order;
// the reference is read (and every skip reason decided) on the main thread, the batch's sites are
// scored in parallel, and records are written back in input order, so the output does not depend on
// --threads or --batch. Output goes to a temp file renamed on success.
#include "apps/longseq/commands.h"
#include "apps/longseq/options.h"
#include "apps/longseq/model_args.h"
#include "apps/longseq/variant_report.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/memory.h"
#include "core/models/lm.h"
#include "core/families/family.h"
#include "core/progress.h"
#include "core/threads.h"
#include "genomics/fasta.h"
#include "genomics/tokenizer.h"
#include "genomics/variant_scorer.h"

#include <fmt/format.h>
#include <htslib/bgzf.h>
#include <htslib/hts.h>
#include <htslib/tbx.h>  // hts_get_bgzfp
#include <htslib/vcf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

namespace longseq::cli {

namespace {

struct ScoreArgs {
  std::string reference, model, input = "-", output = "-", out_type, reduce = "sum", strand = "both";
  std::string regions, regions_file, tag, device = "cpu", report;
  std::vector<std::string> methods;
  int64_t window = 0, batch = 64, layer = -1;
  double max_n = 0.1;
  bool write_index = false, strict = false, per_strand = false, keep_case = false, allow_large = false;
};

// VCF 4.3 INFO keys: [A-Za-z_][0-9A-Za-z_.]*
bool valid_info_key(const std::string& k) {
  if (k.empty() || !(std::isalpha(static_cast<unsigned char>(k[0])) || k[0] == '_')) return false;
  return std::all_of(k.begin(), k.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'; });
}

// -O from the flag, else from the output name (bcftools' convention), else VCF.
char output_type(const ScoreArgs& a) {
  if (!a.out_type.empty()) return a.out_type[0];
  const auto ends = [&](const char* s) { return a.output.size() >= std::strlen(s) && a.output.ends_with(s); };
  if (ends(".vcf.gz") || ends(".vcf.bgz")) return 'z';
  if (ends(".bcf")) return 'b';
  if (ends(".tsv") || ends(".txt")) return 't';
  return 'v';
}

// Regions to keep, contigs named as in the reference when it has them (chr20 and 20 both work);
// empty = everything.
class RegionFilter {
 public:
  RegionFilter(const std::string& list, const std::string& bed, const FastaReader& fasta) : fasta_(fasta) {
    std::stringstream ss(list);
    for (std::string item; std::getline(ss, item, ',');)
      if (!item.empty()) add(parse_region(item));
    if (!bed.empty()) read_bed(bed);
  }
  bool empty() const { return regions_.empty(); }
  bool keep(const std::string& vcf_contig, const std::string& ref_contig, int64_t pos, int64_t end) const {
    for (const auto& name : {vcf_contig, ref_contig}) {
      const auto it = regions_.find(name);
      if (it == regions_.end()) continue;
      for (const auto& [s, e] : it->second)
        if (pos < (e < 0 ? INT64_MAX : e) && end > s) return true;
    }
    return false;
  }

 private:
  void add(const Region& r) {
    const std::string mapped = map_contig_name(fasta_, r.contig);
    regions_[mapped.empty() ? r.contig : mapped].emplace_back(r.start, r.end);
  }
  void read_bed(const std::string& path) {
    for (const BedRegion& r : longseq::read_bed(path)) add(r.region);
  }
  const FastaReader& fasta_;
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> regions_;
};

struct HtsFileCloser {
  void operator()(htsFile* f) const { hts_close(f); }
};
struct HdrDeleter {
  void operator()(bcf_hdr_t* h) const { bcf_hdr_destroy(h); }
};
struct RecDeleter {
  void operator()(bcf1_t* r) const { bcf_destroy(r); }
};
using HtsPtr = std::unique_ptr<htsFile, HtsFileCloser>;
using RecPtr = std::unique_ptr<bcf1_t, RecDeleter>;

// Reference contig names as the VCF spells them, judged from one record ("chr20" vs "20").
std::string vcf_style(const std::string& ref_name, const std::string& vcf_example, const std::string& ref_example) {
  if (vcf_example == ref_example || vcf_example.empty() || ref_example.empty()) return ref_name;
  const bool vcf_chr = vcf_example.starts_with("chr"), ref_chr = ref_example.starts_with("chr");
  if (vcf_chr && !ref_chr) return ref_name == "MT" ? "chrM" : "chr" + ref_name;
  if (!vcf_chr && ref_chr) return ref_name == "chrM" ? "MT" : ref_name.substr(3);
  return ref_name;
}

class Summary {
 public:
  void count(SkipReason r) { ++by_reason_[size_t(r)]; }
  int64_t records = 0, kept = 0, alleles = 0;
  std::set<std::pair<std::string, std::string>> renamed;  // (vcf, reference) contig names mapped
  void print(double seconds) const {
    const int64_t scored = by_reason_[size_t(SkipReason::kNone)];
    spdlog::info("score-variants: {} records{}, {} ALT alleles: {} scored, {} skipped; {:.1f} s, {:.2f} variants/s, peak RSS {:.0f} MiB",
                 records, kept < records ? fmt::format(" ({} outside the regions, not written)", records - kept) : "", alleles,
                 scored, alleles - scored, seconds, double(kept) / std::max(seconds, 1e-9), double(peak_rss_bytes()) / (1 << 20));
    for (size_t r = 1; r < size_t(SkipReason::kCount); ++r)
      if (by_reason_[r]) spdlog::info("  skipped {:>8} {}", by_reason_[r], skip_reason_name(SkipReason(r)));
  }

 private:
  std::array<int64_t, size_t(SkipReason::kCount)> by_reason_{};
};

class ScoreVariants {
 public:
  explicit ScoreVariants(const ScoreArgs& a)
      : a_(a),
        dir_(ModelDir::open(a.model)),
        model_(make_device_model(load_language_model(dir_), a.device)),
        tok_(DnaTokenizer::from_config(dir_.config, model_->vocab_size())),
        fasta_(FastaReader::open(a.reference)),
        filter_(a.regions, a.regions_file, fasta_) {
    tok_.set_keep_case(a.keep_case);
    validate_args();
    ScoreOptions o;
    o.window = a.window > 0 ? a.window : default_window();
    o.reduce = a.reduce == "mean" ? Reduce::kMean : Reduce::kSum;
    o.forward = a.strand != "rev";
    o.reverse = a.strand != "fwd";
    o.max_n_fraction = a.max_n;
    o.layer = a.layer;
    o.methods.clear();
    for (const std::string& m : a.methods.empty() ? default_methods() : a.methods) o.methods.push_back(parse_method(m));
    check_window(o.window);
    scorer_.emplace(*model_, tok_, fasta_, o);
    for (const std::string& f : scorer_->features()) tags_.push_back(tag_of(f));
    if (!a.report.empty()) report_.emplace(scorer_->features());
    type_ = output_type(a);
    std::string methods;
    for (Method m : o.methods) methods += std::string(methods.empty() ? "" : ", ") + method_name(m);
    spdlog::info("score-variants: model {} ({}), method {}, window {} bases{}, reduce {}, strand {}", a.model, model_->family(), methods,
                 o.window, a.window > 0 ? "" : " (default: the model's training or maximum length, capped at 32768; set --window)",
                 a.reduce, a.strand);
  }

  void run() {
    open_input();
    RecPtr first(bcf_init());
    const bool has_first = read_record(first.get());
    add_header_lines(has_first ? first.get() : nullptr);
    if (type_ == 't') {
      run_tsv(has_first ? std::move(first) : nullptr);
    } else {
      run_vcf(has_first ? std::move(first) : nullptr);
    }
    if (report_) write_report();
  }

 private:
  // A causal model's default is dll, a masked one's llr.
  std::vector<std::string> default_methods() const { return {model_->causal() ? "dll" : "llr"}; }

  // --tag names the one feature, or prefixes several (<tag>_L2); the default is LONGSEQ_<FEATURE>.
  std::string tag_of(const std::string& feature) const {
    std::string upper = feature;
    for (char& c : upper) c = c == '-' ? '_' : char(std::toupper(static_cast<unsigned char>(c)));
    if (a_.tag.empty()) return "LONGSEQ_" + upper;
    return scorer_->features().size() == 1 ? a_.tag : a_.tag + "_" + upper;
  }

  void validate_args() {
    LS_CHECK(a_.tag.empty() || valid_info_key(a_.tag),
             "--tag '{}' is not a valid VCF INFO key (letters, digits, '_' and '.', not starting with a digit)", a_.tag);
    LS_CHECK(a_.batch >= 1, "--batch must be >= 1");
    LS_CHECK(a_.max_n >= 0 && a_.max_n <= 1, "--max-n-fraction must be in [0, 1]");
    const char t = output_type(a_);
    LS_CHECK(!a_.write_index || ((t == 'z' || t == 'b') && a_.output != "-"),
             "--write-index needs a bgzipped VCF or BCF output file (-O z or -O b with -o FILE)");
  }

  int64_t trained_length() const { return dir_.config.get_int("longseq_train_length", 0); }
  int64_t default_window() const { return default_variant_window(dir_.config, *model_); }

  // A window past what the model was trained on is allowed (recurrent models run any length) but
  // said once; one whose working memory cannot fit on this machine is refused before any work.
  void check_window(int64_t window) const {
    const int64_t trained = trained_length();
    if (trained > 0 && window > trained)
      spdlog::warn("--window {} is longer than the {}-base windows the model was trained on; scores of such windows may mean less",
                   window, trained);
    const ModelSummary m = summarize_model(dir_);
    int64_t longest = 0;  // windows never run past a contig
    for (const auto& c : fasta_.contigs()) longest = std::max(longest, fasta_.length(c));
    const double w = double(std::min(window, std::max<int64_t>(longest, 2)));
    const double concurrent = double(std::min<int64_t>(num_threads(), a_.batch));
    // A batch of sites holds its windows' bases and token ids (both strands: a prefix and one suffix
    // per allele, ~64 bytes per window base); the sites running at once add the activations of a
    // whole window (global-convolution families) or of one streamed chunk (recurrent families).
    const double need = m.weight_bytes + double(a_.batch) * 64 * w +
                        concurrent * m.activation_bytes_per_token * (model_->max_length() > 0 || !model_->causal() ? w : 4096.0);
    const double have = double(usable_memory_bytes());
    LS_CHECK(a_.allow_large || need <= 0.9 * have,
             "--window {}: about {:.1f} GiB of working memory ({} records per batch, {:.0f} at once) but this machine has {:.1f} GiB; "
             "use a smaller --window or --batch, fewer --threads (or --allow-large to try anyway)",
             window, need / double(1 << 30), a_.batch, concurrent, have / double(1 << 30));
  }

  // Windows are never padded: on a contig shorter than the window every site's window is the whole
  // contig, which is slow and rarely what was meant. Said once per contig.
  void warn_if_window_covers_contig(const std::string& contig) {
    if (!fasta_.has_contig(contig) || !warned_contigs_.insert(contig).second) return;
    const int64_t len = fasta_.length(contig);
    if (scorer_->options().window > len)
      spdlog::warn("--window {} is longer than contig {} ({} bases): its sites are scored on windows of the whole contig",
                   scorer_->options().window, contig, len);
  }

  void open_input() {
    in_.reset(hts_open(a_.input.c_str(), "r"));
    LS_CHECK(in_, "{}: cannot open the input VCF/BCF (check the path; '-' reads stdin)", a_.input);
    const htsFormat* f = hts_get_format(in_.get());
    if (f->category != variant_data) {
      const std::unique_ptr<char, decltype(&std::free)> what(hts_format_description(f), &std::free);  // malloc'd by htslib
      fail("{}: is not a VCF or BCF file (detected {}); give a .vcf, .vcf.gz or .bcf", a_.input, what ? what.get() : "unknown");
    }
    hdr_.reset(bcf_hdr_read(in_.get()));
    LS_CHECK(hdr_, "{}: cannot read the VCF header (truncated file, or a #CHROM line with spaces instead of tabs? check with 'bcftools view -h')", a_.input);
    for (const std::string& tag : tags_)
      LS_CHECK(bcf_hdr_id2int(hdr_.get(), BCF_DT_ID, tag.c_str()) < 0 ||
                   !bcf_hdr_idinfo_exists(hdr_.get(), BCF_HL_INFO, bcf_hdr_id2int(hdr_.get(), BCF_DT_ID, tag.c_str())),
               "{}: already has INFO/{}; pick another --tag or remove it with 'bcftools annotate -x INFO/{}'", a_.input, tag, tag);
    header_contigs_ = hdr_->n[BCF_DT_CTG];
  }

  // False at the end of the input; throws on a malformed record.
  bool read_record(bcf1_t* rec) {
    const int ret = bcf_read(in_.get(), hdr_.get(), rec);
    if (ret == -1) {
      check_complete();
      return false;
    }
    LS_CHECK(ret >= -1, "{}: read error after record {}: the file is truncated or corrupt (check it with 'bgzip -t' or 'bcftools view')",
             a_.input, summary_.records);
    // Undeclared contigs and tags are declared on the fly (htslib warns), as bcftools accepts them.
    LS_CHECK(ret == 0 && !(rec->errcode & ~(BCF_ERR_CTG_UNDEF | BCF_ERR_TAG_UNDEF)),
             "{}: malformed record after record {} (htslib error {}); check it with 'bcftools view', fix or drop it", a_.input,
             summary_.records, rec->errcode ? rec->errcode : ret);
    ++summary_.records;
    bcf_unpack(rec, BCF_UN_STR);
    LS_CHECK(rec->pos >= 0 && rec->n_allele >= 1 && rec->d.allele[0][0] != '.',
             "{}: record {} has no valid POS or REF; fix or drop it (check with 'bcftools view')", a_.input, summary_.records);
    return true;
  }

  // A bgzipped file that ends without BGZF's EOF block was cut short at a block boundary: its last
  // records are missing, which would otherwise pass as a complete run.
  void check_complete() {
    if (hts_get_format(in_.get())->compression != bgzf) return;
    LS_CHECK(bgzf_check_EOF(hts_get_bgzfp(in_.get())) != 0,
             "{}: ends without the BGZF end-of-file block, so it is probably truncated; check it with 'bgzip -t' (if it is "
             "complete, recompress it with bgzip)",
             a_.input);
  }

  std::string info_description(const std::string& feature) const {
    const auto& o = scorer_->options();
    const std::string layer = o.layer < 0 ? "the final normalised hidden states" : fmt::format("the residual stream after block {}", o.layer);
    std::string what;
    if (feature == "dll")
      what = fmt::format("delta log-likelihood, log P(alt window) - log P(ref window) ({})",
                         o.reduce == Reduce::kSum ? "sum over positions" : "mean per position");
    else if (feature == "llr")
      what = "masked-LM log-likelihood ratio, sum over the changed positions (masked) of log p(alt) - log p(ref)";
    else if (feature == "l2")
      what = "Euclidean distance between the mean embeddings (" + layer + ") of the ref and alt windows";
    else if (feature == "cosine")
      what = "cosine distance (1 - cos) between the mean embeddings (" + layer + ") of the ref and alt windows";
    else
      what = "inner product of the mean embeddings (" + layer + ") of the ref and alt windows";
    return fmt::format("longseq {} per ALT, model {} ({}), window {} bp, strand {}; '.' = not scored (docs/VARIANTS.md)", what,
                       dir_.dir.filename().string(), model_->family(), o.window,
                       a_.strand == "both" ? "mean of forward and reverse complement" : a_.strand);
  }

  void add_header_lines(bcf1_t* first) {
    bcf_hdr_t* h = hdr_.get();
    const auto append = [&](const std::string& line) {
      LS_CHECK(bcf_hdr_append(h, line.c_str()) == 0, "cannot add header line '{}'", line);
    };
    const auto& features = scorer_->features();
    for (size_t f = 0; f < features.size(); ++f) {
      append(fmt::format("##INFO=<ID={},Number=A,Type=Float,Description=\"{}\">", tags_[f], info_description(features[f])));
      if (a_.per_strand && a_.strand == "both")
        for (const char* s : {"FWD", "REV"})
          append(fmt::format("##INFO=<ID={}_{},Number=A,Type=Float,Description=\"longseq {}, {} strand only\">", tags_[f], s, features[f],
                             s[0] == 'F' ? "forward" : "reverse-complement"));
    }
    append("##longseqVersion=" LONGSEQ_VERSION);
    append("##longseqCommand=" + command_line());
    if (header_contigs_ == 0) add_reference_contigs(first);
    LS_CHECK(bcf_hdr_sync(h) == 0, "cannot update the VCF header");
  }

  // The input declares no contigs: declare the reference's, named as the VCF names them.
  void add_reference_contigs(bcf1_t* first) {
    std::string vcf_example, ref_example;
    if (first) {
      vcf_example = bcf_seqname_safe(hdr_.get(), first);
      ref_example = map_contig_name(fasta_, vcf_example);
    }
    for (const auto& ref_name : fasta_.contigs()) {
      const std::string name = vcf_style(ref_name, vcf_example, ref_example);
      const std::string len = std::to_string(fasta_.length(ref_name));
      if (bcf_hrec_t* hrec = bcf_hdr_get_hrec(hdr_.get(), BCF_HL_CTG, "ID", name.c_str(), nullptr)) {
        if (bcf_hrec_find_key(hrec, "length") < 0) {  // declared on the fly by htslib while reading the first record
          LS_CHECK(bcf_hrec_add_key(hrec, "length", 6) == 0 &&
                       bcf_hrec_set_val(hrec, hrec->nkeys - 1, len.c_str(), len.size(), 0) == 0,
                   "cannot set the length of contig {} in the header", name);
        }
        continue;
      }
      LS_CHECK(bcf_hdr_append(hdr_.get(), fmt::format("##contig=<ID={},length={}>", name, len).c_str()) == 0,
               "cannot add contig {} to the header", name);
    }
  }

  // A batch of records: prepared on this thread (reference reads), scored in parallel.
  struct Item {
    RecPtr rec;
    int64_t number = 0;  // 1-based record number in the input
    bool kept = false;
    VariantScorer::Prepared prepared;
  };

  void prepare(Item& item) {
    bcf1_t* rec = item.rec.get();
    const std::string vcf_contig = bcf_seqname_safe(hdr_.get(), rec);
    const std::string ref_contig = map_contig_name(fasta_, vcf_contig);
    const int64_t pos = rec->pos, end = rec->pos + std::max<int64_t>(rec->rlen, 1);
    item.kept = filter_.empty() || filter_.keep(vcf_contig, ref_contig, pos, end);
    if (!item.kept) return;
    ++summary_.kept;
    Site site{ref_contig.empty() ? vcf_contig : ref_contig, pos, rec->n_allele > 0 ? rec->d.allele[0] : "", {}};
    for (int i = 1; i < rec->n_allele; ++i) site.alts.emplace_back(rec->d.allele[i]);
    if (!ref_contig.empty() && ref_contig != vcf_contig && summary_.renamed.insert({vcf_contig, ref_contig}).second)
      spdlog::info("contig '{}' of the VCF is '{}' in the reference", vcf_contig, ref_contig);
    item.prepared = scorer_->prepare(site);
    warn_if_window_covers_contig(site.contig);
    for (size_t i = 0; i < site.alts.size(); ++i) {
      const SkipReason r = item.prepared.scores[i].reason;
      LS_CHECK(!a_.strict || r != SkipReason::kRefMismatch,
               "{}: record {} ({}:{} {}>{}): REF does not match the reference {} (--strict); check that the VCF was called on "
               "this reference, or drop --strict to skip such records",
               a_.input, item.number, vcf_contig, pos + 1, site.ref, site.alts[i], a_.reference);
    }
  }

  // Reads up to --batch records, prepares them, scores them in parallel. False when the input is done.
  bool next_batch(std::vector<Item>& batch, RecPtr& pending) {
    batch.clear();
    while (int64_t(batch.size()) < a_.batch) {
      Item item;
      if (pending) {
        item.rec = std::move(pending);
      } else {
        item.rec.reset(bcf_init());
        if (!read_record(item.rec.get())) break;
      }
      item.number = summary_.records;
      prepare(item);
      batch.push_back(std::move(item));
    }
    for_blocks(int64_t(batch.size()), 1, [&](int64_t i, int64_t, int) { scorer_->run(batch[size_t(i)].prepared); });
    for (const Item& item : batch)  // counted after the run: a non-finite result is a skip reason too
      for (size_t i = 0; i < item.prepared.scores.size(); ++i) {
        const AlleleScore& s = item.prepared.scores[i];
        ++summary_.alleles;
        summary_.count(s.reason);
        if (report_) {
          const bcf1_t* rec = item.rec.get();
          report_->add(bcf_seqname_safe(hdr_.get(), rec), rec->pos + 1, rec->d.allele[0], rec->d.allele[i + 1], s);
        }
      }
    progress_->add(int64_t(batch.size()));
    return !batch.empty();
  }

  void run_vcf(RecPtr pending) {
    const char* modes[] = {"w", "wz", "wb", "wbu"};
    const char* mode = type_ == 'z' ? modes[1] : type_ == 'b' ? modes[2] : type_ == 'u' ? modes[3] : modes[0];
    std::optional<AtomicFile> file, index;
    std::string path = "-";
    if (a_.output != "-") {
      file.emplace(a_.output);
      path = file->temp_path().string();
    }
    HtsPtr out(hts_open(path.c_str(), mode));
    LS_CHECK(out, "{}: cannot open the output for writing (check the folder exists and is writable)", a_.output);
    LS_CHECK(bcf_hdr_write(out.get(), hdr_.get()) == 0, "{}: cannot write the VCF header", a_.output);
    const std::array<int, 2> declared{hdr_->n[BCF_DT_ID], hdr_->n[BCF_DT_CTG]};
    const bool binary = type_ == 'b' || type_ == 'u';
    std::vector<Item> batch;
    progress_.emplace("score-variants", 0, "variants");
    while (next_batch(batch, pending)) {
      for (Item& item : batch) {
        if (!item.kept) continue;
        bcf1_t* rec = item.rec.get();
        LS_CHECK(!binary || (rec->errcode == 0 && hdr_->n[BCF_DT_ID] == declared[0] && hdr_->n[BCF_DT_CTG] == declared[1]),
                 "{}: record {} ({}:{}) uses a contig or tag its header does not declare; BCF output needs every one declared: "
                 "write VCF (-O v or z) or complete the header first (bcftools reheader / bcftools annotate -h)",
                 a_.input, item.number, bcf_seqname_safe(hdr_.get(), rec), rec->pos + 1);
        annotate(rec, item.prepared);
        LS_CHECK(bcf_write(out.get(), hdr_.get(), rec) == 0, "{}: write failed (disk full?)", a_.output);
      }
    }
    progress_->finish();
    LS_CHECK(hts_close(out.release()) == 0, "{}: could not finish writing (disk full?)", a_.output);
    if (file) {
      if (a_.write_index) {
        index.emplace(a_.output + (type_ == 'z' ? ".tbi" : ".csi"));
        const int ret = bcf_index_build3(path.c_str(), index->temp_path().c_str(), type_ == 'z' ? 0 : 14, num_threads());
        LS_CHECK(ret == 0, "{}: could not build the index (htslib error {})", a_.output, ret);
      }
      file->commit();
      if (index) index->commit();
    }
  }

  void annotate(bcf1_t* rec, const VariantScorer::Prepared& p) {
    const size_t n = p.scores.size();
    if (n == 0) return;
    // One Number=A float per ALT of feature f from `pick` (score, fwd or rev); '.' for a skipped ALT.
    const auto put = [&](const std::string& tag, size_t f, std::vector<double> AlleleScore::* pick) {
      std::vector<float> v(n);
      for (size_t i = 0; i < n; ++i) {
        if (p.scores[i].reason == SkipReason::kNone)
          v[i] = float((p.scores[i].*pick)[f]);
        else
          bcf_float_set_missing(v[i]);
      }
      LS_CHECK(bcf_update_info_float(hdr_.get(), rec, tag.c_str(), v.data(), int(n)) == 0, "cannot set INFO/{}", tag);
    };
    for (size_t f = 0; f < tags_.size(); ++f) {
      put(tags_[f], f, &AlleleScore::score);
      if (a_.per_strand && a_.strand == "both") {
        put(tags_[f] + "_FWD", f, &AlleleScore::fwd);
        put(tags_[f] + "_REV", f, &AlleleScore::rev);
      }
    }
  }

  void run_tsv(RecPtr pending) {
    std::optional<AtomicFile> file;
    FILE* out = stdout;
    if (a_.output != "-") {
      file.emplace(a_.output);
      out = file->stream();
    }
    const bool both = a_.strand == "both";
    std::string columns;  // the TraitGym feature-table layout: one column per feature (and strand)
    for (const std::string& f : scorer_->features()) columns += "\t" + f + (both ? "\t" + f + "_fwd\t" + f + "_rev" : "");
    fmt::print(out, "#CHROM\tPOS\tREF\tALT{}\tstatus\n", columns);
    std::vector<Item> batch;
    progress_.emplace("score-variants", 0, "variants");
    const auto num = [](bool ok, double v) { return ok ? fmt::format("{:.6g}", v) : std::string("."); };
    while (next_batch(batch, pending)) {
      for (Item& item : batch) {
        if (!item.kept) continue;
        bcf1_t* rec = item.rec.get();
        for (size_t i = 0; i < item.prepared.scores.size(); ++i) {
          const AlleleScore& s = item.prepared.scores[i];
          const bool ok = s.reason == SkipReason::kNone;
          fmt::print(out, "{}\t{}\t{}\t{}", bcf_seqname_safe(hdr_.get(), rec), rec->pos + 1, rec->d.allele[0], rec->d.allele[i + 1]);
          for (size_t f = 0; f < scorer_->features().size(); ++f) {
            fmt::print(out, "\t{}", num(ok, ok ? s.score[f] : 0.0));
            if (both) fmt::print(out, "\t{}\t{}", num(ok, ok ? s.fwd[f] : 0.0), num(ok, ok ? s.rev[f] : 0.0));
          }
          fmt::print(out, "\t{}\n", skip_reason_name(s.reason));
        }
      }
    }
    progress_->finish();
    if (file) file->commit();
  }

 public:
  const Summary& summary() const { return summary_; }

 private:
  void write_report() const {
    const auto& o = scorer_->options();
    std::string methods;
    for (Method m : o.methods) methods += std::string(methods.empty() ? "" : ", ") + method_name(m);
    report_->write(a_.report, "longseq score-variants report",
                   {{"input", a_.input},
                    {"output", a_.output},
                    {"reference", a_.reference},
                    {"model", fmt::format("{} ({})", a_.model, model_->family())},
                    {"method", methods},
                    {"window", fmt::format("{} bases, strand {}, reduce {}", o.window, a_.strand, a_.reduce)},
                    {"records", fmt::format("{} read, {} in the regions, {} ALT alleles", summary_.records, summary_.kept, summary_.alleles)},
                    {"longseq", LONGSEQ_VERSION},
                    {"command", command_line()}});
    spdlog::info("score-variants: report in {}", a_.report);
  }

 private:
  const ScoreArgs& a_;
  ModelDir dir_;
  std::unique_ptr<LanguageModel> model_;
  DnaTokenizer tok_;
  FastaReader fasta_;
  RegionFilter filter_;
  std::optional<VariantScorer> scorer_;
  std::vector<std::string> tags_;  // INFO key per feature
  char type_ = 'v';
  HtsPtr in_;
  std::unique_ptr<bcf_hdr_t, HdrDeleter> hdr_;
  int header_contigs_ = 0;
  Summary summary_;
  std::optional<VariantReport> report_;
  std::optional<Progress> progress_;
  std::set<std::string> warned_contigs_;
};

// Before the model is loaded: the output must not be an input, a folder, or in a missing folder.
void check_paths(const ScoreArgs& a) {
  std::vector<std::filesystem::path> inputs = ModelDir::files(a.model);
  for (const auto& p : with_suffixes(a.reference, {".fai", ".gzi"})) inputs.push_back(p);
  for (const auto& p : with_suffixes(a.input == "-" ? "/dev/stdin" : a.input, {".tbi", ".csi"})) inputs.push_back(p);
  if (!a.regions_file.empty()) inputs.push_back(a.regions_file);
  if (!a.report.empty()) check_output_file(a.report, inputs, "--report");
  if (a.output == "-") return;
  check_output_file(a.output, inputs);
  if (a.write_index) check_output_file(a.output + (output_type(a) == 'z' ? ".tbi" : ".csi"), inputs, "--write-index");
}

void run(const ScoreArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  check_paths(a);
  ScoreVariants job(a);
  job.run();
  job.summary().print(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

}  // namespace

void add_score_variants(CLI::App& app) {
  auto a = std::make_shared<ScoreArgs>();
  auto* cmd = app.add_subcommand(
      "score-variants",
      "Score VCF/BCF variants with a DNA language model: one INFO tag (Number=A) per feature of --method (default: dll, "
      "log P(alt window) - log P(ref window), for causal models; llr for masked models)");
  cmd->footer(
      "Windows: W reference bases around REF (start = POS - floor((W - |REF|) / 2), shifted inside the contig near its ends, never "
      "padded). Forward strand: both windows start at the same base, the alt window is the prefix + ALT + the following reference, "
      "cut to W bases, so everything before the variant cancels. Reverse strand: the reverse complement, with both windows ending at "
      "the same base. --strand both reports the mean of the two. Unscored alleles get '.', counted by reason in the summary: "
      "ref_mismatch, missing_contig (chr20<->20 and chrM<->MT are mapped), unsupported_allele (<DEL>, *, breakends, '.', IUPAC), "
      "too_many_n, allele_too_long, out_of_range, non_finite (the model overflowed). Records outside --regions/--regions-file are not written (bcftools -t).");
  cmd->add_option("-r,--reference", a->reference, "Reference FASTA (plain or bgzipped, faidx-indexed or indexable)")->required();
  cmd->add_option("-m,--model", a->model, "Model directory (config.json + model.safetensors)")->required();
  cmd->add_option("-i,--input", a->input, "Input VCF, VCF.gz or BCF ('-' = stdin)");
  cmd->add_option("-o,--output", a->output, "Output file ('-' = stdout)");
  cmd->add_option("-O,--output-type", a->out_type, "v VCF, z bgzipped VCF, b BCF, u uncompressed BCF, t TSV (default: from -o's name)")
      ->check(CLI::IsMember({"v", "z", "b", "u", "t"}));
  cmd->add_option("--report", a->report,
                  "Also write an HTML summary (counts by skip reason, score distributions, top hits) that opens offline in a browser");
  cmd->add_flag("--write-index", a->write_index, "Index the output (.tbi for -O z, .csi for -O b)");
  cmd->add_option("--window", a->window, "Window length W in bases (default: the length the model was trained on, else its maximum, capped at 32768)")
      ->transform(count_range(2, int64_t(1) << 40));
  cmd->add_option("--reduce", a->reduce, "sum: difference of summed log-probabilities; mean: of per-position means")
      ->check(CLI::IsMember({"sum", "mean"}));
  cmd->add_option("--strand", a->strand, "fwd, rev, or both (mean of the two)")->check(CLI::IsMember({"fwd", "rev", "both"}));
  cmd->add_flag("--per-strand", a->per_strand, "With --strand both, also write <tag>_FWD and <tag>_REV");
  auto* regions = cmd->add_option("--regions", a->regions, "Only records overlapping chr:start-end[,chr:start-end...] (1-based, inclusive; no commas in numbers)");
  cmd->add_option("--regions-file", a->regions_file, "Only records overlapping the regions of a BED file")->excludes(regions);
  cmd->add_option("--method", a->methods,
                  "dll (causal models: delta log-likelihood), llr (masked models: log p(alt) - log p(ref) at the masked changed "
                  "positions; SNVs and MNPs, indels skipped as unsupported_allele), embed-dist (features l2 and cosine: distances of "
                  "the ref and alt windows' mean embeddings), inner (their inner product); several: --method dll,embed-dist")
      ->delimiter(',')
      ->check(CLI::IsMember({"dll", "llr", "embed-dist", "inner"}));
  cmd->add_option("--layer", a->layer, "Embedding methods: the residual stream after block LAYER (0-based); -1: the final normalised states")
      ->check(CLI::Range(int64_t(-1), int64_t(1) << 20));
  cmd->add_option("--tag", a->tag,
                  "INFO key of a single feature, or the prefix of several (<tag>_L2, ...); default LONGSEQ_<FEATURE>, e.g. LONGSEQ_DLL "
                  "(VCF 4.3 key rules)");
  cmd->add_option("--batch", a->batch, "Records read and scored together (parallel over sites)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  cli::add_device_option(cmd, a->device);
  cmd->add_option("--max-n-fraction", a->max_n, "Skip windows with a larger fraction of N bases")->check(finite_range(0.0, 1.0));
  cmd->add_flag("--allow-large", a->allow_large, "Run even when the window's estimated memory exceeds this machine's");
  cmd->add_flag("--strict", a->strict, "A REF that does not match the reference is an error instead of a skip");
  cmd->add_flag("--keep-case", a->keep_case, "Do not upper-case soft-masked reference bases");
  cmd->callback([a] { run(*a); });
}

}  // namespace longseq::cli
