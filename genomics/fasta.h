// Random access to FASTA references (plain or bgzipped) through htslib's faidx. A missing index is
// built next to the reference only when that folder belongs to the user, is writable and is not a
// system folder (/usr, /opt, ...); otherwise
// it goes to a cache folder ($XDG_CACHE_HOME/longseq/faidx or ~/.cache/longseq/faidx), so a shared
// reference folder is never written by accident.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace longseq {

struct Region {
  std::string contig;
  int64_t start = 0;  // 0-based, inclusive
  int64_t end = 0;    // 0-based, exclusive; -1 = to the end of the contig
};

// "chr20", "chr20:1000-2000" (1-based inclusive, commas allowed). Throws on malformed text.
Region parse_region(const std::string& text);

// The rows of a BED file (chrom, 0-based start, end > start, and the name column when present, else
// ""); track/browser/comment lines skipped. Throws naming the file and line of a malformed row.
struct BedRegion {
  Region region;
  std::string name;
};
std::vector<BedRegion> read_bed(const std::filesystem::path& path);

class FastaReader {
 public:
  // Throws naming the file when it cannot be read or indexed (plain gzip: suggests bgzip).
  static FastaReader open(const std::filesystem::path& path);
  ~FastaReader();
  FastaReader(FastaReader&&) noexcept;
  FastaReader& operator=(FastaReader&&) noexcept;

  const std::filesystem::path& path() const { return path_; }
  std::vector<std::string> contigs() const;
  bool has_contig(const std::string& name) const;
  // Throws naming the contig (and listing a few present) when absent.
  int64_t length(const std::string& contig) const;
  // Bases [start, end) of `contig`, as stored (case kept). Throws when out of range.
  std::string fetch(const std::string& contig, int64_t start, int64_t end) const;
  // The region with end = -1 resolved and bounds checked.
  Region resolve(const Region& region) const;

 private:
  FastaReader() = default;
  std::filesystem::path path_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace longseq
