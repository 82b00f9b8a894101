// Training tasks over DNA (core/data/task.h, run by core/train's loop): next-base language
// modelling on a FASTA corpus, and sequence classification from a TSV (`sequence<TAB>label`) or a folder with one sub-folder of FASTA
// files per class. Examples are drawn from (seed, step, index) alone, so resumed runs are exact.
#pragma once

#include "core/data/task.h"
#include "core/random.h"
#include "genomics/dna_dataset.h"
#include "genomics/tokenizer.h"

#include <array>
#include <filesystem>
#include <string>
#include <vector>

namespace longseq {

// Random windows of length + 1 bases: ids are the first `length`, targets the last `length`.
class DnaLmTask final : public TrainTask {
 public:
  DnaLmTask(const DnaCorpus& corpus, int64_t length, bool reverse_complement, int64_t val_windows);
  Example sample(uint64_t seed, int64_t step, int64_t index) const override;
  const std::vector<Example>& validation() const override { return val_; }
  bool classification() const override { return false; }
  std::string token_unit() const override { return "base"; }
  // The validation windows (length + 1 bases each), e.g. for the Markov baselines.
  const std::vector<std::vector<int64_t>>& validation_windows() const { return windows_; }

 private:
  const DnaCorpus& corpus_;
  int64_t length_;
  bool rc_;
  std::vector<std::vector<int64_t>> windows_;
  std::vector<Example> val_;
};

// Masked language modelling (BERT, as the Caduceus paper trains): random windows of `length` bases
// (reverse-complemented with probability 1/2 when asked); each position is a target with
// probability `fraction` (at least one per window), and a target reads the mask id 80% of the time,
// a uniformly drawn base 10% and itself 10%. Targets are the original ids there, -1 elsewhere.
class DnaMlmTask final : public TrainTask {
 public:
  DnaMlmTask(const DnaCorpus& corpus, const DnaTokenizer& tokenizer, int64_t length, bool reverse_complement, int64_t val_windows,
             int64_t mask_id, double fraction = 0.15);
  Example sample(uint64_t seed, int64_t step, int64_t index) const override;
  const std::vector<Example>& validation() const override { return val_; }
  bool classification() const override { return false; }
  std::string token_unit() const override { return "base"; }
  std::string target_unit() const override { return "masked base"; }

 private:
  Example masked(const std::vector<int64_t>& window, Rng& rng) const;
  const DnaCorpus& corpus_;
  int64_t length_, mask_id_;
  bool rc_;
  double fraction_;
  std::array<int64_t, 4> bases_{};  // ids of A, C, G, T
  std::vector<Example> val_;
};

struct LabelledSequence {
  std::string name, sequence, label;
};

// TSV `sequence<TAB>label` (a header line "sequence<TAB>label" is skipped; names are "line:N"), or a
// folder of class folders holding FASTA files (names are the record names). Throws naming the file
// and line for malformed input.
std::vector<LabelledSequence> read_labelled_sequences(const std::filesystem::path& path);

class DnaClassifyTask final : public TrainTask {
 public:
  // labels: the class names in id order. Train examples are cropped to `crop` bases at a random
  // offset when longer (0: never); validation examples are cropped at their centre.
  DnaClassifyTask(const std::vector<LabelledSequence>& train, const std::vector<LabelledSequence>& val,
                  const std::vector<std::string>& labels, const DnaTokenizer& tokenizer, int64_t crop, bool reverse_complement);
  Example sample(uint64_t seed, int64_t step, int64_t index) const override;
  const std::vector<Example>& validation() const override { return val_; }
  bool classification() const override { return true; }

 private:
  std::vector<Example> train_, val_;
  std::vector<int64_t> complement_;
  int64_t crop_;
  bool rc_;
};

// The sorted distinct labels of `data`.
std::vector<std::string> label_set(const std::vector<LabelledSequence>& data);
// Splits off `fraction` of each class (at least one example of classes with >= 2) for validation,
// deterministically in `seed`.
void split_validation(std::vector<LabelledSequence>& train, std::vector<LabelledSequence>& val, double fraction, uint64_t seed);

}  // namespace longseq
