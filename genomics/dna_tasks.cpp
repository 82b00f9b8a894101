#include "genomics/dna_tasks.h"

#include "core/data/split.h"

#include "core/error.h"
#include "core/fileio.h"
#include "genomics/fasta.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

namespace longseq {

namespace {

Example lm_example(const std::vector<int64_t>& window) {
  Example e;
  e.ids.assign(window.begin(), window.end() - 1);
  e.targets.assign(window.begin() + 1, window.end());
  return e;
}

std::vector<int64_t> encode(const DnaTokenizer& tok, const std::string& seq) {
  std::vector<int64_t> ids(seq.size());
  tok.encode(seq, ids.data());
  return ids;
}

}  // namespace

DnaLmTask::DnaLmTask(const DnaCorpus& corpus, int64_t length, bool reverse_complement, int64_t val_windows)
    : corpus_(corpus), length_(length), rc_(reverse_complement) {
  LS_CHECK(length >= 2, "--length must be >= 2, got {}", length);
  windows_ = corpus.validation_windows(length + 1, val_windows);
  for (const auto& w : windows_) val_.push_back(lm_example(w));
}

Example DnaLmTask::sample(uint64_t seed, int64_t step, int64_t index) const {
  Rng rng = example_rng(seed, step, index);
  std::vector<int64_t> w;
  corpus_.sample(rng, length_ + 1, rc_, w);
  return lm_example(w);
}

DnaMlmTask::DnaMlmTask(const DnaCorpus& corpus, const DnaTokenizer& tokenizer, int64_t length, bool reverse_complement,
                       int64_t val_windows, int64_t mask_id, double fraction)
    : corpus_(corpus), length_(length), mask_id_(mask_id), rc_(reverse_complement), fraction_(fraction) {
  LS_CHECK(length >= 2, "--length must be >= 2, got {}", length);
  LS_CHECK(fraction > 0 && fraction <= 1, "the masked fraction must be in (0, 1], got {}", fraction);
  for (size_t b = 0; b < 4; ++b) bases_[b] = tokenizer.id("ACGT"[b]);
  const auto windows = corpus.validation_windows(length, val_windows);
  for (size_t i = 0; i < windows.size(); ++i) {  // fixed masks: the same validation set at every evaluation
    Rng rng(0x6d6c6d0000ull + i);
    val_.push_back(masked(windows[i], rng));
  }
}

Example DnaMlmTask::masked(const std::vector<int64_t>& window, Rng& rng) const {
  Example e{.ids = window, .targets = std::vector<int64_t>(window.size(), -1)};
  bool any = false;
  for (size_t i = 0; i < window.size(); ++i) {
    if (rng.uniform() >= fraction_) continue;
    any = true;
    e.targets[i] = window[i];
    const double u = rng.uniform();
    if (u < 0.8)
      e.ids[i] = mask_id_;
    else if (u < 0.9)
      e.ids[i] = bases_[rng.below(4)];
  }
  if (!any) {
    const size_t i = rng.below(window.size());
    e.targets[i] = window[i];
    e.ids[i] = mask_id_;
  }
  return e;
}

Example DnaMlmTask::sample(uint64_t seed, int64_t step, int64_t index) const {
  Rng rng = example_rng(seed, step, index);
  std::vector<int64_t> w;
  corpus_.sample(rng, length_, rc_, w);
  return masked(w, rng);
}

std::vector<LabelledSequence> read_labelled_sequences(const std::filesystem::path& path) {
  std::vector<LabelledSequence> out;
  if (std::filesystem::is_directory(path)) {
    std::vector<std::filesystem::path> classes;
    for (const auto& e : std::filesystem::directory_iterator(path))
      if (e.is_directory()) classes.push_back(e.path());
    std::sort(classes.begin(), classes.end());
    LS_CHECK(!classes.empty(), "{}: no class folders (expected DIR/<label>/*.fa)", path.string());
    for (const auto& dir : classes) {
      std::vector<std::filesystem::path> files;
      for (const auto& e : std::filesystem::directory_iterator(dir)) {
        const std::string n = e.path().filename().string();
        if (e.is_regular_file() && (n.ends_with(".fa") || n.ends_with(".fasta") || n.ends_with(".fna") || n.ends_with(".fa.gz") ||
                                    n.ends_with(".fasta.gz") || n.ends_with(".fna.gz")))
          files.push_back(e.path());
      }
      std::sort(files.begin(), files.end());
      LS_CHECK(!files.empty(), "{}: no FASTA files (.fa, .fasta, .fna, optionally bgzipped) in class folder", dir.string());
      for (const auto& f : files) {
        const FastaReader r = FastaReader::open(f);
        for (const auto& c : r.contigs()) out.push_back({c, r.fetch(c, 0, r.length(c)), dir.filename().string()});
      }
    }
    return out;
  }
  std::ifstream in(path);
  LS_CHECK(in.good(), "cannot read {} (expected a TSV file or a folder of class folders)", path.string());
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const size_t tab = line.find('\t');
    LS_CHECK(tab != std::string::npos && tab > 0 && tab + 1 < line.size(),
             "{}:{}: expected 'sequence<TAB>label' (fix the line or remove it)", path.string(), n);
    std::string seq = line.substr(0, tab), label = line.substr(tab + 1);
    if (n == 1 && seq == "sequence") continue;  // header
    LS_CHECK(label.find('\t') == std::string::npos, "{}:{}: more than two columns (expected 'sequence<TAB>label')", path.string(), n);
    out.push_back({"line:" + std::to_string(n), std::move(seq), std::move(label)});
  }
  LS_CHECK(!out.empty(), "{}: no sequences", path.string());
  return out;
}

std::vector<std::string> label_set(const std::vector<LabelledSequence>& data) { return labels_of(data); }

void split_validation(std::vector<LabelledSequence>& train, std::vector<LabelledSequence>& val, double fraction, uint64_t seed) {
  split_validation_by_label(train, val, fraction, seed);
}

DnaClassifyTask::DnaClassifyTask(const std::vector<LabelledSequence>& train, const std::vector<LabelledSequence>& val,
                                 const std::vector<std::string>& labels, const DnaTokenizer& tokenizer, int64_t crop,
                                 bool reverse_complement)
    : crop_(crop), rc_(reverse_complement) {
  auto to_example = [&](const LabelledSequence& s, bool centre_crop) {
    const auto it = std::find(labels.begin(), labels.end(), s.label);
    LS_CHECK(it != labels.end(), "sequence '{}' has label '{}', which the model does not know (labels: {})", s.name, s.label,
             fmt::join(labels, ", "));
    LS_CHECK(!s.sequence.empty(), "sequence '{}' is empty", s.name);
    Example e;
    e.ids = encode(tokenizer, s.sequence);
    if (centre_crop && crop_ > 0 && int64_t(e.ids.size()) > crop_) {
      const int64_t off = (int64_t(e.ids.size()) - crop_) / 2;
      e.ids = std::vector<int64_t>(e.ids.begin() + off, e.ids.begin() + off + crop_);
    }
    e.label = int64_t(it - labels.begin());
    return e;
  };
  for (const auto& s : train) train_.push_back(to_example(s, false));
  for (const auto& s : val) val_.push_back(to_example(s, true));
  LS_CHECK(!train_.empty(), "no training sequences");
  complement_.resize(256);
  for (int64_t i = 0; i < 256; ++i) complement_[size_t(i)] = i;
  const char b[] = "ACGT";
  for (int k = 0; k < 4; ++k) complement_[size_t(tokenizer.id(b[k]))] = tokenizer.id(b[3 - k]);
}

Example DnaClassifyTask::sample(uint64_t seed, int64_t step, int64_t index) const {
  Rng rng = example_rng(seed, step, index);
  Example e = train_[size_t(rng.below(train_.size()))];
  if (crop_ > 0 && int64_t(e.ids.size()) > crop_) {
    const int64_t off = int64_t(rng.below(uint64_t(int64_t(e.ids.size()) - crop_ + 1)));
    e.ids = std::vector<int64_t>(e.ids.begin() + off, e.ids.begin() + off + crop_);
  }
  if (rc_ && rng.uniform() < 0.5) {
    std::reverse(e.ids.begin(), e.ids.end());
    for (auto& id : e.ids)
      if (id >= 0 && id < 256) id = complement_[size_t(id)];
  }
  return e;
}

}  // namespace longseq
