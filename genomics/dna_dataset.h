// DNA language-modelling data from a FASTA (plain or bgzipped): contigs are tokenized once into
// memory (1 byte per base), split into a training part and a held-out validation part (the last
// fraction of every contig, or whole named contigs), and cut into N-free runs. Training windows are
// drawn uniformly over every position where a whole window fits inside a run (so N runs and contig
// ends are never crossed), optionally reverse-complemented; validation windows are fixed,
// non-overlapping and evenly spread, so validation numbers are comparable across runs.
#pragma once

#include "core/random.h"
#include "genomics/tokenizer.h"

#include <filesystem>
#include <string>
#include <vector>

namespace longseq {

struct DnaCorpusOptions {
  std::vector<std::string> contigs;      // empty: every contig of the file
  double val_fraction = 0.2;             // last fraction of each contig held out (when no val_contigs)
  std::vector<std::string> val_contigs;  // whole contigs held out instead
};

class DnaCorpus {
 public:
  // Throws naming the file / contig when it cannot be read, or when no N-free run is long enough.
  static DnaCorpus load(const std::filesystem::path& fasta, const DnaTokenizer& tokenizer, const DnaCorpusOptions& options);

  struct Run {  // an N-free stretch [start, end) of contig `contig`
    size_t contig;
    int64_t start, end;
  };
  const std::vector<Run>& train_runs() const { return train_; }
  const std::vector<Run>& val_runs() const { return val_; }
  int64_t train_bases() const;
  int64_t val_bases() const;
  const std::vector<uint8_t>& tokens(size_t contig) const { return tokens_[contig]; }
  const std::vector<std::string>& contig_names() const { return names_; }

  // `length` tokens from a uniformly drawn training position (reverse-complemented with probability
  // 1/2 when rc). Throws when no run holds `length` bases.
  void sample(Rng& rng, int64_t length, bool rc, std::vector<int64_t>& out) const;
  // Up to max_windows fixed windows of `length` tokens spread evenly over the validation runs.
  std::vector<std::vector<int64_t>> validation_windows(int64_t length, int64_t max_windows) const;
  // Reverse complement of token ids (specials and N unchanged).
  void reverse_complement(std::vector<int64_t>& ids) const;
  // Index 0..3 of A, C, G, T for a token id, -1 otherwise.
  int base_index(int64_t id) const { return id >= 0 && id < 256 ? base_index_[size_t(id)] : -1; }

 private:
  std::vector<std::string> names_;
  std::vector<std::vector<uint8_t>> tokens_;
  std::vector<Run> train_, val_;
  std::vector<int64_t> complement_;  // id -> id
  std::array<int, 256> base_index_{};
};

}  // namespace longseq
