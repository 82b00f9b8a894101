// Protein-coding genes and what a single-base change does to them: CDS features read from GFF3
// (prodigal's output, or any annotation with one CDS line per gene), the bacterial genetic code
// (NCBI translation table 11) and the codon consequence of an SNV. This is what labels the
// variant-effect benchmark (`longseq bench-vep`): the labels come from the genetic code alone, so
// they need no curated database and no wet lab.
#pragma once

#include "genomics/fasta.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace longseq {

// One protein-coding gene: bases [start, end) of `contig` (0-based), read 5'->3' on `strand`.
struct Cds {
  std::string contig, id;
  int64_t start = 0, end = 0;
  char strand = '+';
};

struct GffCdsStats {
  int64_t lines = 0;     // CDS lines read
  int64_t partial = 0;   // skipped: marked partial (prodigal's partial != 00), or start/stop codon missing
  int64_t off_frame = 0; // skipped: length not a multiple of 3
  int64_t joined = 0;    // skipped: an ID seen on several CDS lines (spliced or multi-part genes)
};

// Reads the CDS features of a GFF3 file (a FASTA section after ##FASTA is ignored). Throws naming the
// file and line of a malformed row. Genes that cannot be labelled codon by codon are left out and
// counted in `stats`: partial genes, lengths off the frame and multi-line IDs. The codons are not
// checked here (that needs the genome): see coding_gene_problem().
std::vector<Cds> read_gff_cds(const std::filesystem::path& path, GffCdsStats* stats = nullptr);

// The bases of a gene's coding strand, 5'->3' (reverse complemented on '-'), upper case.
std::string cds_sequence(const FastaReader& fasta, const Cds& cds);

// The amino acid of a codon under translation table 11 (one-letter code, '*' for a stop), 'X' when a
// base is not A/C/G/T.
char translate_codon(const char* codon);
// A start codon of translation table 11 (ATG, GTG, TTG, CTG, ATT, ATC, ATA).
bool is_start_codon(const char* codon);

// What an SNV does to the gene it lies in (Sequence Ontology terms, as VEP writes them).
enum class Consequence {
  kSynonymous,     // synonymous_variant
  kMissense,       // missense_variant
  kStopGained,     // stop_gained (nonsense)
  kStopLost,       // stop_lost
  kStartLost,      // start_lost: the first codon no longer a table-11 start
  kStopRetained,   // stop_retained_variant
  kStartRetained,  // start_retained_variant: the first codon another table-11 start
  kCount,
};
const char* consequence_name(Consequence c);
// The inverse of consequence_name; throws listing the names.
Consequence parse_consequence(const std::string& name);

// Empty when the gene can be labelled codon by codon; else why not (no start codon, no stop at the
// end, an internal stop, a base other than A/C/G/T). `seq` is cds_sequence().
std::string coding_gene_problem(const std::string& seq);

struct CodonChange {
  Consequence consequence = Consequence::kSynonymous;
  int64_t codon = 0;          // 0-based codon number in the gene
  std::string ref_codon, alt_codon;
  char ref_aa = 'X', alt_aa = 'X';
};

// The consequence of changing genomic position `pos` (0-based, inside the gene) to `alt` (A/C/G/T on
// the genome's forward strand). `seq` is the gene's cds_sequence() and must pass coding_gene_problem().
CodonChange classify_snv(const Cds& cds, const std::string& seq, int64_t pos, char alt);

}  // namespace longseq
