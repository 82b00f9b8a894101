// The SNVs of the variant-effect benchmark: every single-base change inside the protein-coding genes
// of a genome, labelled by its codon consequence (genomics/coding.h), and a fixed-size random sample
// of each consequence class. Sampling is a reservoir per class over the candidates in genome order
// (contigs as in the FASTA, positions ascending, ALT in A, C, G, T order) from a generator seeded with
// (seed, class), so the same genome, genes and seed give the same variants on every machine.
#pragma once

#include "genomics/coding.h"
#include "genomics/fasta.h"

#include <array>
#include <cstdint>
#include <vector>

namespace longseq {

struct CodingSnv {
  size_t contig = 0;  // index into the FASTA's contigs()
  int64_t pos = 0;    // 0-based
  char ref = 'N', alt = 'N';
  size_t gene = 0;    // index into the genes given
  CodonChange change;
};

struct CodingSnvOptions {
  int64_t per_class = 400;  // at most this many of each consequence
  uint64_t seed = 1;
};

struct CodingSnvSample {
  std::vector<CodingSnv> snvs;  // in genome order
  std::array<int64_t, size_t(Consequence::kCount)> candidates{};  // every labelled SNV of each class
  int64_t genes_used = 0;
  std::vector<std::pair<std::string, std::string>> genes_skipped;  // (id, why): coding_gene_problem()
  int64_t shared_positions = 0;  // coding positions in more than one gene: not sampled (two labels)
};

// Throws naming the gene when its contig is absent from the FASTA or it runs past the contig's end.
CodingSnvSample sample_coding_snvs(const FastaReader& fasta, const std::vector<Cds>& genes, const CodingSnvOptions& options);

}  // namespace longseq
