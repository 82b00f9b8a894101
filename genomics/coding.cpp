#include "genomics/coding.h"

#include "core/error.h"
#include "genomics/variant_scorer.h"  // reverse_complement

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <sstream>

namespace longseq {

namespace {

int base_index(char c) {
  switch (c) {
    case 'T': return 0;
    case 'C': return 1;
    case 'A': return 2;
    case 'G': return 3;
    default: return -1;
  }
}

// Translation table 11, codons in TCAG order (first base slowest): NCBI's "AAs" line.
constexpr const char* kTable11 = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG";

std::vector<std::string> split(const std::string& line, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  for (std::string f; std::getline(ss, f, sep);) out.push_back(f);
  if (!line.empty() && line.back() == sep) out.emplace_back();
  return out;
}

// The value of `key` in a GFF3 attribute column ("ID=1_1;partial=00;..."), empty when absent.
std::string attribute(const std::string& column, const std::string& key) {
  for (const std::string& kv : split(column, ';')) {
    const size_t eq = kv.find('=');
    if (eq != std::string::npos && kv.compare(0, eq, key) == 0) return kv.substr(eq + 1);
  }
  return {};
}

int64_t parse_coordinate(const std::string& text, const std::filesystem::path& path, int64_t line_no, const char* what) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  LS_CHECK(used == text.size() && v >= 1, "{}:{}: {} '{}' is not a positive integer; fix the GFF3 row (columns 4 and 5 are 1-based)",
           path.string(), line_no, what, text);
  return v;
}

}  // namespace

std::vector<Cds> read_gff_cds(const std::filesystem::path& path, GffCdsStats* stats) {
  std::ifstream in(path);
  LS_CHECK(in, "{}: cannot open the GFF3 file (check the path)", path.string());
  GffCdsStats s;
  std::vector<Cds> genes;
  std::map<std::string, int> id_count;
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.starts_with("##FASTA")) break;
    if (line.empty() || line[0] == '#') continue;
    const std::vector<std::string> f = split(line, '\t');
    LS_CHECK(f.size() == 9, "{}:{}: {} tab-separated columns, GFF3 has 9; fix the row (spaces instead of tabs?)", path.string(),
             line_no, f.size());
    if (f[2] != "CDS") continue;
    ++s.lines;
    Cds g;
    g.contig = f[0];
    g.start = parse_coordinate(f[3], path, line_no, "start") - 1;
    g.end = parse_coordinate(f[4], path, line_no, "end");
    LS_CHECK(g.end > g.start, "{}:{}: end {} before start {}; fix the row", path.string(), line_no, f[4], f[3]);
    LS_CHECK(f[6] == "+" || f[6] == "-", "{}:{}: strand '{}' of a CDS must be + or -; fix the row", path.string(), line_no, f[6]);
    g.strand = f[6][0];
    g.id = attribute(f[8], "ID");
    if (g.id.empty()) g.id = g.contig + ":" + f[3] + "-" + f[4] + f[6];
    const std::string partial = attribute(f[8], "partial");
    if (!partial.empty() && partial != "00") {
      ++s.partial;
      continue;
    }
    if ((g.end - g.start) % 3 != 0) {
      ++s.off_frame;
      continue;
    }
    ++id_count[g.id];
    genes.push_back(std::move(g));
  }
  LS_CHECK(!in.bad(), "{}: read error", path.string());
  std::erase_if(genes, [&](const Cds& g) {
    const bool joined = id_count[g.id] > 1;
    s.joined += joined;
    return joined;
  });
  if (stats) *stats = s;
  return genes;
}

std::string cds_sequence(const FastaReader& fasta, const Cds& cds) {
  std::string seq = fasta.fetch(cds.contig, cds.start, cds.end);
  for (char& c : seq) c = char(std::toupper(static_cast<unsigned char>(c)));
  return cds.strand == '-' ? reverse_complement(seq) : seq;
}

char translate_codon(const char* codon) {
  const int a = base_index(codon[0]), b = base_index(codon[1]), c = base_index(codon[2]);
  if (a < 0 || b < 0 || c < 0) return 'X';
  return kTable11[a * 16 + b * 4 + c];
}

bool is_start_codon(const char* codon) {
  static constexpr const char* kStarts[] = {"ATG", "GTG", "TTG", "CTG", "ATT", "ATC", "ATA"};
  return std::any_of(std::begin(kStarts), std::end(kStarts), [&](const char* s) { return std::equal(s, s + 3, codon); });
}

const char* consequence_name(Consequence c) {
  switch (c) {
    case Consequence::kSynonymous: return "synonymous_variant";
    case Consequence::kMissense: return "missense_variant";
    case Consequence::kStopGained: return "stop_gained";
    case Consequence::kStopLost: return "stop_lost";
    case Consequence::kStartLost: return "start_lost";
    case Consequence::kStopRetained: return "stop_retained_variant";
    case Consequence::kStartRetained: return "start_retained_variant";
    case Consequence::kCount: break;
  }
  return "?";
}

Consequence parse_consequence(const std::string& name) {
  for (int c = 0; c < int(Consequence::kCount); ++c)
    if (name == consequence_name(Consequence(c))) return Consequence(c);
  fail("unknown consequence '{}' (use synonymous_variant, missense_variant, stop_gained, stop_lost, start_lost, "
       "stop_retained_variant or start_retained_variant)", name);
}

std::string coding_gene_problem(const std::string& seq) {
  if (seq.size() < 6 || seq.size() % 3 != 0) return "length not a multiple of 3 of at least two codons";
  if (std::any_of(seq.begin(), seq.end(), [](char c) { return base_index(c) < 0; })) return "a base other than A/C/G/T";
  if (!is_start_codon(seq.data())) return "no table-11 start codon";
  if (translate_codon(seq.data() + seq.size() - 3) != '*') return "no stop codon at the end";
  for (size_t i = 3; i + 3 < seq.size(); i += 3)
    if (translate_codon(seq.data() + i) == '*') return "an internal stop codon";
  return {};
}

CodonChange classify_snv(const Cds& cds, const std::string& seq, int64_t pos, char alt) {
  LS_ASSERT(pos >= cds.start && pos < cds.end && int64_t(seq.size()) == cds.end - cds.start);
  const int64_t offset = cds.strand == '+' ? pos - cds.start : cds.end - 1 - pos;
  const char coding_alt = cds.strand == '+' ? alt : reverse_complement(std::string(1, alt))[0];
  CodonChange ch;
  ch.codon = offset / 3;
  ch.ref_codon = seq.substr(size_t(ch.codon * 3), 3);
  ch.alt_codon = ch.ref_codon;
  ch.alt_codon[size_t(offset % 3)] = coding_alt;
  ch.ref_aa = translate_codon(ch.ref_codon.data());
  ch.alt_aa = translate_codon(ch.alt_codon.data());
  const int64_t last = int64_t(seq.size()) / 3 - 1;
  if (ch.codon == 0) {
    ch.consequence = is_start_codon(ch.alt_codon.data()) ? Consequence::kStartRetained : Consequence::kStartLost;
  } else if (ch.codon == last) {
    ch.consequence = ch.alt_aa == '*' ? Consequence::kStopRetained : Consequence::kStopLost;
  } else if (ch.alt_aa == '*') {
    ch.consequence = Consequence::kStopGained;
  } else {
    ch.consequence = ch.alt_aa == ch.ref_aa ? Consequence::kSynonymous : Consequence::kMissense;
  }
  return ch;
}

}  // namespace longseq
