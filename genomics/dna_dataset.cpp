#include "genomics/dna_dataset.h"

#include "core/error.h"
#include "genomics/fasta.h"

#include <algorithm>
#include <numeric>

namespace longseq {

namespace {

// Splits [start, end) of a contig into maximal runs of A/C/G/T.
void add_runs(const std::vector<uint8_t>& tok, const std::array<int, 256>& base_index, size_t contig, int64_t start, int64_t end,
              std::vector<DnaCorpus::Run>& out) {
  int64_t s = -1;
  for (int64_t i = start; i <= end; ++i) {
    const bool ok = i < end && base_index[tok[size_t(i)]] >= 0;
    if (ok && s < 0) s = i;
    if (!ok && s >= 0) {
      out.push_back({contig, s, i});
      s = -1;
    }
  }
}

int64_t total(const std::vector<DnaCorpus::Run>& runs) {
  int64_t n = 0;
  for (const auto& r : runs) n += r.end - r.start;
  return n;
}

}  // namespace

DnaCorpus DnaCorpus::load(const std::filesystem::path& fasta, const DnaTokenizer& tokenizer, const DnaCorpusOptions& o) {
  LS_CHECK(o.val_fraction >= 0 && o.val_fraction < 1, "--val-fraction must be in [0, 1), got {}", o.val_fraction);
  const FastaReader reader = FastaReader::open(fasta);
  DnaCorpus c;
  c.names_ = o.contigs.empty() ? reader.contigs() : o.contigs;
  for (const auto& v : o.val_contigs)
    if (std::find(c.names_.begin(), c.names_.end(), v) == c.names_.end()) c.names_.push_back(v);
  c.base_index_.fill(-1);
  const char letters[] = "ACGT";
  c.complement_.resize(256);
  std::iota(c.complement_.begin(), c.complement_.end(), 0);
  for (int b = 0; b < 4; ++b) {
    const int64_t id = tokenizer.id(letters[b]), rc = tokenizer.id(letters[3 - b]);
    LS_CHECK(id >= 0 && id < 256, "the tokenizer has no id for base {}", letters[b]);
    c.base_index_[size_t(id)] = b;
    c.complement_[size_t(id)] = rc;
  }
  for (size_t i = 0; i < c.names_.size(); ++i) {
    const std::string& name = c.names_[i];
    LS_CHECK(reader.has_contig(name), "{}: no contig '{}' (contigs: {}...)", fasta.string(), name, reader.contigs().front());
    const std::string seq = reader.fetch(name, 0, reader.length(name));
    std::vector<int64_t> ids(seq.size());
    tokenizer.encode(seq, ids.data());
    std::vector<uint8_t> tok(seq.size());
    for (size_t k = 0; k < ids.size(); ++k) tok[k] = uint8_t(std::clamp<int64_t>(ids[k], 0, 255));
    const int64_t L = int64_t(tok.size());
    const bool held_out = std::find(o.val_contigs.begin(), o.val_contigs.end(), name) != o.val_contigs.end();
    const int64_t split = held_out ? 0 : o.val_contigs.empty() ? int64_t(double(L) * (1 - o.val_fraction)) : L;
    add_runs(tok, c.base_index_, i, 0, split, c.train_);
    add_runs(tok, c.base_index_, i, split, L, c.val_);
    c.tokens_.push_back(std::move(tok));
  }
  LS_CHECK(c.train_bases() > 0, "{}: no A/C/G/T bases in the training part (check --contigs / --val-contig)", fasta.string());
  return c;
}

int64_t DnaCorpus::train_bases() const { return total(train_); }
int64_t DnaCorpus::val_bases() const { return total(val_); }

void DnaCorpus::reverse_complement(std::vector<int64_t>& ids) const {
  std::reverse(ids.begin(), ids.end());
  for (auto& id : ids)
    if (id >= 0 && id < 256) id = complement_[size_t(id)];
}

void DnaCorpus::sample(Rng& rng, int64_t length, bool rc, std::vector<int64_t>& out) const {
  // Positions where a whole window fits: run r offers (len - length + 1) starts.
  int64_t starts = 0;
  for (const auto& r : train_) starts += std::max<int64_t>(0, r.end - r.start - length + 1);
  LS_CHECK(starts > 0, "no N-free stretch of {} bases in the training data (use a shorter --length)", length);
  int64_t pick = int64_t(rng.below(uint64_t(starts)));
  const bool flip = rc && rng.uniform() < 0.5;
  for (const auto& r : train_) {
    const int64_t n = std::max<int64_t>(0, r.end - r.start - length + 1);
    if (pick >= n) {
      pick -= n;
      continue;
    }
    const auto& tok = tokens_[r.contig];
    out.assign(tok.begin() + r.start + pick, tok.begin() + r.start + pick + length);
    if (flip) reverse_complement(out);
    return;
  }
}

std::vector<std::vector<int64_t>> DnaCorpus::validation_windows(int64_t length, int64_t max_windows) const {
  std::vector<std::pair<size_t, int64_t>> all;  // every non-overlapping window start, in order
  for (const auto& r : val_)
    for (int64_t s = r.start; s + length <= r.end; s += length) all.emplace_back(r.contig, s);
  std::vector<std::vector<int64_t>> out;
  const int64_t n = std::min<int64_t>(max_windows, int64_t(all.size()));
  for (int64_t i = 0; i < n; ++i) {
    const auto& [contig, s] = all[size_t(i * int64_t(all.size()) / n)];
    const auto& tok = tokens_[contig];
    out.emplace_back(tok.begin() + s, tok.begin() + s + length);
  }
  return out;
}

}  // namespace longseq
