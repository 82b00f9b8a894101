#include "genomics/fasta.h"

#include "core/error.h"

#include <htslib/bgzf.h>
#include <htslib/faidx.h>
#include <htslib/hts.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>

namespace longseq {

struct FastaReader::Impl {
  faidx_t* fai = nullptr;
  ~Impl() {
    if (fai) fai_destroy(fai);
  }
};

namespace {
// A run of decimal digits, or nullopt.
std::optional<int64_t> parse_position(const std::string& s) {
  if (s.empty() || s.size() > 15 || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return std::stoll(s);
}
}  // namespace

std::vector<BedRegion> read_bed(const std::filesystem::path& path) {
  std::ifstream in(path);
  LS_CHECK(in, "{}: cannot read the BED file (check the path)", path.string());
  std::vector<BedRegion> out;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#' || line.starts_with("track") || line.starts_with("browser")) continue;
    std::istringstream f(line);
    BedRegion r;
    f >> r.region.contig >> r.region.start >> r.region.end;
    LS_CHECK(f && r.region.start >= 0 && r.region.end > r.region.start,
             "{}:{}: malformed BED line '{}' (need chrom, 0-based start, end > start)", path.string(), n, line);
    f >> r.name;
    out.push_back(std::move(r));
  }
  return out;
}

Region parse_region(const std::string& text) {
  std::string t;
  for (char c : text)
    if (c != ',') t += c;
  const auto bad = [&] { fail("malformed region '{}' (use chr, chr:start-end with 1-based inclusive coordinates)", text); };
  const size_t colon = t.rfind(':');
  Region r{t.substr(0, colon), 0, -1};
  if (r.contig.empty()) bad();
  if (colon == std::string::npos) return r;
  const std::string range = t.substr(colon + 1);
  const size_t dash = range.find('-');
  const auto a = parse_position(range.substr(0, dash));
  if (!a) bad();
  if (*a < 1) fail("region '{}': start must be >= 1 (coordinates are 1-based)", text);
  r.start = *a - 1;
  if (dash != std::string::npos) {
    const auto b = parse_position(range.substr(dash + 1));
    if (!b) bad();
    if (*b < *a) fail("region '{}': end is before start", text);
    r.end = *b;
  }
  return r;
}

namespace {

// System folders (package-managed data such as /usr/share) are never written, even by root.
bool is_system_dir(const std::filesystem::path& dir) {
  const std::string d = dir.lexically_normal().string() + "/";
  for (const char* p : {"/usr/", "/opt/", "/etc/", "/lib/", "/lib64/", "/bin/", "/sbin/", "/boot/", "/var/lib/", "/snap/"})
    if (d.rfind(p, 0) == 0) return true;
  return false;
}

bool owned_and_writable(const std::filesystem::path& dir) {
  struct stat st{};
  return !is_system_dir(dir) && stat(dir.c_str(), &st) == 0 && st.st_uid == geteuid() && access(dir.c_str(), W_OK) == 0;
}

std::filesystem::path cache_dir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  std::filesystem::path base = xdg && *xdg ? xdg : (home ? std::filesystem::path(home) / ".cache" : "/tmp");
  return base / "longseq" / "faidx";
}

// Checks each entry of a .fai (name, length, offset, bases per line, bytes per line): htslib divides
// by the bases per line when it fetches, so a contig with bases but an empty line layout (a NUL or a
// stray byte in the sequence, a hand-edited index) would end the process with SIGFPE (found by
// fuzzing). Throws naming the contig.
void check_index(const std::string& fai, const std::string& fasta) {
  std::ifstream in(fai);
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    const size_t tab = line.find('\t');
    std::istringstream f(tab == std::string::npos ? std::string() : line.substr(tab + 1));
    int64_t len = -1, offset = -1, bases = -1, bytes = -1;
    f >> len >> offset >> bases >> bytes;
    LS_CHECK(f && len >= 0 && offset >= 0 && bases >= 0 && bytes >= bases && (len == 0 || bases > 0),
             "{}: contig '{}' has an inconsistent line layout in its index {} (line {}: a stray or NUL byte in the sequence, or a "
             "stale index); fix the FASTA (e.g. `seqkit seq -w 60`) and delete the .fai",
             fasta, line.substr(0, tab), fai, n);
  }
}

}  // namespace

FastaReader FastaReader::open(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  if (!fs::is_regular_file(path)) fail("{}: reference FASTA not found (check the -r/--fasta path)", path.string());
  FastaReader r;
  r.path_ = path;
  r.impl_ = std::make_unique<Impl>();
  {  // Plain gzip cannot be indexed.
    htsFile* f = hts_open(path.c_str(), "r");
    if (!f) fail("{}: cannot open", path.string());
    const htsFormat* fmt = hts_get_format(f);
    const bool plain_gzip = fmt->compression == gzip;
    hts_close(f);
    if (plain_gzip)
      fail("{}: compressed with plain gzip, which cannot be indexed; recompress with `bgzip` (or gunzip it)", path.string());
  }
  const std::string fn = path.string();
  const bool bgzipped = [&] {
    BGZF* b = bgzf_open(fn.c_str(), "r");
    if (!b) return false;
    const bool c = bgzf_compression(b) == bgzf;
    bgzf_close(b);
    return c;
  }();
  std::string fai = fn + ".fai", gzi = bgzipped ? fn + ".gzi" : "";
  const bool have_index = fs::exists(fai) && (!bgzipped || fs::exists(gzi));
  if (!have_index && !owned_and_writable(fs::absolute(path).parent_path())) {
    const auto abs = fs::absolute(path).lexically_normal().string();
    const auto stamp = fs::last_write_time(path).time_since_epoch().count();
    const fs::path dir = cache_dir() / std::to_string(std::hash<std::string>{}(abs + "@" + std::to_string(stamp)));
    fs::create_directories(dir);
    fai = (dir / (path.filename().string() + ".fai")).string();
    if (bgzipped) gzi = (dir / (path.filename().string() + ".gzi")).string();
    if (!fs::exists(fai) && fai_build3(fn.c_str(), fai.c_str(), bgzipped ? gzi.c_str() : nullptr) != 0)
      fail("{}: cannot build a FASTA index in {} (is it a valid FASTA file?)", fn, dir.string());
  }
  r.impl_->fai = fai_load3(fn.c_str(), fai.c_str(), bgzipped ? gzi.c_str() : nullptr, FAI_CREATE);
  if (!r.impl_->fai) fail("{}: cannot load or build the FASTA index (is it a valid FASTA file?)", fn);
  check_index(fai, fn);
  return r;
}

FastaReader::~FastaReader() = default;
FastaReader::FastaReader(FastaReader&&) noexcept = default;
FastaReader& FastaReader::operator=(FastaReader&&) noexcept = default;

std::vector<std::string> FastaReader::contigs() const {
  std::vector<std::string> out;
  const int n = faidx_nseq(impl_->fai);
  for (int i = 0; i < n; ++i) out.emplace_back(faidx_iseq(impl_->fai, i));
  return out;
}

bool FastaReader::has_contig(const std::string& name) const { return faidx_has_seq(impl_->fai, name.c_str()) == 1; }

int64_t FastaReader::length(const std::string& contig) const {
  if (!has_contig(contig)) {
    const auto names = contigs();
    std::string some;
    for (size_t i = 0; i < names.size() && i < 5; ++i) some += (i ? ", " : "") + names[i];
    fail("{}: no contig '{}' in the reference (it has: {}{})", path_.string(), contig, some, names.size() > 5 ? ", ..." : "");
  }
  return faidx_seq_len(impl_->fai, contig.c_str());  // int in htslib 1.16: contigs < 2^31 bases
}

std::string FastaReader::fetch(const std::string& contig, int64_t start, int64_t end) const {
  const int64_t len = length(contig);
  if (start < 0 || end > len || start > end)
    fail("{}: {}:{}-{} is outside the contig (length {})", path_.string(), contig, start + 1, end, len);
  if (start == end) return {};
  hts_pos_t got = 0;
  char* s = faidx_fetch_seq64(impl_->fai, contig.c_str(), start, end - 1, &got);
  if (!s || got != end - start) {
    std::free(s);
    fail("{}: failed to read {}:{}-{} (truncated or corrupt file?)", path_.string(), contig, start + 1, end);
  }
  std::string out(s, size_t(got));
  std::free(s);
  return out;
}

Region FastaReader::resolve(const Region& region) const {
  const int64_t len = length(region.contig);
  Region r = region;
  if (r.end < 0) r.end = len;
  if (r.start >= len || r.end > len)
    fail("{}: region {}:{}-{} runs past the end of the contig (length {})", path_.string(), r.contig, r.start + 1, r.end, len);
  return r;
}

}  // namespace longseq
