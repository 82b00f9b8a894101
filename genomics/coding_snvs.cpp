#include "genomics/coding_snvs.h"

#include "core/error.h"
#include "core/random.h"

#include <algorithm>
#include <map>

namespace longseq {

namespace {

// Reservoir sampling (Algorithm R) of up to `size` items.
class Reservoir {
 public:
  Reservoir(int64_t size, uint64_t seed) : size_(size), rng_(seed) {}
  void offer(const CodingSnv& s) {
    ++seen_;
    if (int64_t(kept_.size()) < size_) {
      kept_.push_back(s);
      return;
    }
    const uint64_t j = rng_.below(uint64_t(seen_));
    if (j < uint64_t(size_)) kept_[j] = s;
  }
  int64_t seen() const { return seen_; }
  const std::vector<CodingSnv>& kept() const { return kept_; }

 private:
  int64_t size_, seen_ = 0;
  Rng rng_;
  std::vector<CodingSnv> kept_;
};

}  // namespace

CodingSnvSample sample_coding_snvs(const FastaReader& fasta, const std::vector<Cds>& genes, const CodingSnvOptions& options) {
  LS_CHECK(options.per_class >= 1, "--per-class must be >= 1");
  const std::vector<std::string> contigs = fasta.contigs();
  std::map<std::string, size_t> contig_index;
  for (size_t i = 0; i < contigs.size(); ++i) contig_index[contigs[i]] = i;
  // Genes per contig in start order.
  std::vector<std::vector<size_t>> by_contig(contigs.size());
  for (size_t g = 0; g < genes.size(); ++g) {
    const auto it = contig_index.find(genes[g].contig);
    LS_CHECK(it != contig_index.end(), "gene {}: contig '{}' is not in the reference {}; give the genome the annotation was made on",
             genes[g].id, genes[g].contig, fasta.path().string());
    LS_CHECK(genes[g].end <= fasta.length(genes[g].contig), "gene {}: ends at {} past the end of contig {} ({} bases); give the genome "
             "the annotation was made on", genes[g].id, genes[g].end, genes[g].contig, fasta.length(genes[g].contig));
    by_contig[it->second].push_back(g);
  }
  CodingSnvSample out;
  std::vector<Reservoir> reservoirs;
  for (int c = 0; c < int(Consequence::kCount); ++c) reservoirs.emplace_back(options.per_class, options.seed * 1000003 + uint64_t(c));
  for (size_t ci = 0; ci < contigs.size(); ++ci) {
    auto& order = by_contig[ci];
    if (order.empty()) continue;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return genes[a].start < genes[b].start; });
    // How many genes cover each base (saturating), so shared positions are left out.
    std::vector<uint8_t> cover(size_t(fasta.length(contigs[ci])), 0);
    for (size_t g : order)
      for (int64_t p = genes[g].start; p < genes[g].end; ++p) cover[size_t(p)] = uint8_t(std::min(2, cover[size_t(p)] + 1));
    out.shared_positions += std::count(cover.begin(), cover.end(), uint8_t(2));
    for (size_t g : order) {
      const Cds& gene = genes[g];
      const std::string seq = cds_sequence(fasta, gene);
      if (const std::string why = coding_gene_problem(seq); !why.empty()) {
        out.genes_skipped.emplace_back(gene.id, why);
        continue;
      }
      ++out.genes_used;
      const std::string forward = fasta.fetch(gene.contig, gene.start, gene.end);
      for (int64_t p = gene.start; p < gene.end; ++p) {
        if (cover[size_t(p)] > 1) continue;
        const char ref = char(std::toupper(static_cast<unsigned char>(forward[size_t(p - gene.start)])));
        for (char alt : {'A', 'C', 'G', 'T'}) {
          if (alt == ref) continue;
          CodingSnv s{ci, p, ref, alt, g, classify_snv(gene, seq, p, alt)};
          reservoirs[size_t(s.change.consequence)].offer(s);
        }
      }
    }
  }
  for (int c = 0; c < int(Consequence::kCount); ++c) {
    out.candidates[size_t(c)] = reservoirs[size_t(c)].seen();
    const auto& kept = reservoirs[size_t(c)].kept();
    out.snvs.insert(out.snvs.end(), kept.begin(), kept.end());
  }
  std::sort(out.snvs.begin(), out.snvs.end(), [](const CodingSnv& a, const CodingSnv& b) {
    return std::tie(a.contig, a.pos, a.alt) < std::tie(b.contig, b.pos, b.alt);
  });
  return out;
}

}  // namespace longseq
