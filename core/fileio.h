// Output files that appear complete or not at all: data goes to a hidden temp file beside the target,
// which is flushed and renamed over the target by commit(). Destroying an uncommitted AtomicFile
// (an exception, an early return) removes the temp file, so no half-written output is left behind.
#pragma once

#include <cstdio>
#include <filesystem>
#include <string_view>

namespace longseq {

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
  std::filesystem::path target_, temp_;
  FILE* file_ = nullptr;
  bool direct_ = false;
};

// Reads a whole (small) text file; throws naming the file when it cannot be read.
std::string read_text_file(const std::filesystem::path& path);

}  // namespace longseq
