// The HTML summary of a score-variants run (--report): counts by skip reason, each feature's score
// distribution (an inline SVG histogram drawn by core/plot) and the top hits, in one self-contained
// file that opens offline in any browser. Scores are kept as floats (4 bytes per allele and feature)
// and the top hits in a bounded heap, so a report of millions of variants stays small in memory.
#pragma once

#include "genomics/variant_scorer.h"

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace longseq::cli {

class VariantReport {
 public:
  // features: the scorer's feature names; top: hits listed per feature.
  VariantReport(std::vector<std::string> features, size_t top = 25);
  // One ALT allele of a record (1-based pos) with its score or skip reason.
  void add(const std::string& contig, int64_t pos, const std::string& ref, const std::string& alt, const AlleleScore& score);
  // Writes the report (temp file + rename). `title` and the `facts` (label, value) head the page.
  void write(const std::filesystem::path& path, const std::string& title, const std::vector<std::pair<std::string, std::string>>& facts) const;

 private:
  struct Hit {
    double damage = 0;  // sign-adjusted: larger = more damaging
    double value = 0;
    std::string variant;
  };
  void offer(size_t feature, Hit hit);
  std::vector<std::string> features_;
  size_t top_;
  std::array<int64_t, size_t(SkipReason::kCount)> reasons_{};
  std::vector<std::vector<float>> values_;  // per feature
  std::vector<std::vector<Hit>> hits_;      // per feature: a min-heap on damage of at most top_ entries
};

}  // namespace longseq::cli
