// FASTA through htslib faidx (index built for the input) and the region parser: the first line of the
// input is a region string, the rest a FASTA file; the region is parsed, resolved and fetched.
#include "genomics/fasta.h"
#include "tests/fuzz/fuzz.h"

#include <algorithm>
#include <filesystem>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto* nl = static_cast<const uint8_t*>(std::find(data, data + size, uint8_t('\n')));
  const std::string region(reinterpret_cast<const char*>(data), size_t(nl - data));
  const size_t rest = nl < data + size ? size_t(data + size - nl - 1) : 0;
  std::error_code ec;
  std::filesystem::remove(longseq::fuzz::scratch() / "in.fa.fai", ec);  // a stale index would describe the last input
  const auto path = longseq::fuzz::write_input("in.fa", nl < data + size ? nl + 1 : nl, rest);
  return longseq::fuzz::run_one([&] {
    const longseq::Region r = longseq::parse_region(region);
    const auto fasta = longseq::FastaReader::open(path);
    for (const auto& c : fasta.contigs()) (void)fasta.fetch(c, 0, std::min<int64_t>(fasta.length(c), 1 << 16));
    const longseq::Region got = fasta.resolve(r);
    (void)fasta.fetch(got.contig, got.start, std::min(got.end, got.start + (int64_t(1) << 16)));
  });
}
