// GFF3 gene reading and the variant-effect benchmark's labelling (genomics/coding.h,
// coding_snvs.h): the input is a GFF3 file over a fixed genome (contigs "c", 200 bases, and "d",
// 7 bases); its genes are read, checked against the genome, and every SNV of them labelled and sampled.
#include "genomics/coding_snvs.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::filesystem::path genome = [] {
    const std::string fa =
        ">c\nATGAAACCCGGGTTTTAAGCATGCTAGCTAGGATCCATGGCGCGTATAGCTAGCTTAAATGCCCAAATTTGGGTAGCTAGCATCG"
        "ATCGATGCATGAAATTTAAACCCGGGATGTAAGCTAGCTAGCTAGCATCGATCGATCGTAGCTAGCTAGCTTACGATCGATCGA"
        "TCGATGCTAGCTAGCATCGATCGACTGACTGACTTAA\n>d\nATGTAAN\n";
    return longseq::fuzz::write_input("genome.fa", reinterpret_cast<const uint8_t*>(fa.data()), fa.size());
  }();
  static const longseq::FastaReader fasta = longseq::FastaReader::open(genome);
  const auto path = longseq::fuzz::write_input("in.gff", data, size);
  return longseq::fuzz::run_one([&] {
    const auto genes = longseq::read_gff_cds(path);
    (void)longseq::sample_coding_snvs(fasta, genes, {.per_class = 3, .seed = 1});
  });
}
