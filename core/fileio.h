// Output files that appear complete or not at all: data goes to a hidden temp file beside the target,
// which is flushed and renamed over the target by commit(). Destroying an uncommitted AtomicFile
// (an exception, an early return) removes the temp file, and the temp is registered with
// core/temp_paths.h so a signal removes it too: no half-written output is left behind.
// Outputs are checked before any work starts (check_output_file/check_output_folder): an output that
// is one of the run's inputs (same device and inode, through links) or of the wrong kind is refused.
#pragma once

#include "core/temp_paths.h"

#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <optional>
#include <utility>
#include <string>
#include <string_view>
#include <vector>

namespace longseq {

// `path` followed by `path + suffix` for each suffix: a file with the index files htslib keeps beside
// it (".fai", ".gzi" for FASTA; ".tbi", ".csi" for VCF), for the same-file checks below.
std::vector<std::filesystem::path> with_suffixes(const std::filesystem::path& path, std::initializer_list<const char*> suffixes);

// (device, inode) of an existing path, links followed; nullopt when it does not exist.
std::optional<std::pair<uint64_t, uint64_t>> file_identity(const std::filesystem::path& path);

// True when both paths exist and name the same file (same device and inode; links followed).
bool same_file(const std::filesystem::path& a, const std::filesystem::path& b);

// Checks an output file path before any work: throws longseq::Error (naming `option`, e.g. "-o")
// when it is an existing folder, when its folder does not exist, or when it is the same file as one
// of `inputs` (inputs that do not exist are ignored). Devices and FIFOs (/dev/stdout) pass.
void check_output_file(const std::filesystem::path& output, const std::vector<std::filesystem::path>& inputs,
                       std::string_view option = "-o");

// The same for an output folder: throws when it exists and is not a folder, or when it is one of
// `inputs` (a model folder given as input, say). Files the run writes inside it are checked by the
// caller with check_output_file.
void check_output_folder(const std::filesystem::path& output, const std::vector<std::filesystem::path>& inputs,
                         std::string_view option = "-o");

// Writes `text` to `path` through an AtomicFile (temp + rename): readers never see half a file.
void write_text_atomic(const std::filesystem::path& path, std::string_view text);

class AtomicFile {
 public:
  // Opens a temp file in the directory of `target`. Throws longseq::Error when it cannot be created.
  explicit AtomicFile(std::filesystem::path target);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t bytes);
  void write(std::string_view text) { write(text.data(), text.size()); }
  FILE* stream() { return file_; }
  // Where the data goes until commit(): the temp file, or the target itself when it is not a regular
  // file (a device such as /dev/null or /dev/stdout, a FIFO), which is written in place.
  const std::filesystem::path& temp_path() const { return direct_ ? target_ : temp_; }
  // Flushes, fsyncs and renames onto the target. Throws on failure (and removes the temp file).
  void commit();

 private:
  void discard() noexcept;
  int create_temp(const std::filesystem::path& dir, const std::string& name);
  std::filesystem::path target_, temp_;
  TempPathGuard guard_;  // removes temp_ if a signal ends the process first
  FILE* file_ = nullptr;
  bool direct_ = false;
};

// A read-only memory map of a whole regular file; the mapping lives as long as the object (tensor
// views of weights hold a shared_ptr to it).
class MappedFile {
 public:
  // Throws naming the file when it cannot be opened, is not a regular file, or cannot be mapped.
  static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const std::byte* data() const { return static_cast<const std::byte*>(addr_); }
  uint64_t size() const { return size_; }

 private:
  MappedFile() = default;
  void* addr_ = nullptr;
  uint64_t size_ = 0;
};

// Reads a whole (small) text file; throws naming the file when it cannot be read.
std::string read_text_file(const std::filesystem::path& path);

}  // namespace longseq
