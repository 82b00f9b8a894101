#include "core/fileio.h"

#include "core/error.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace longseq {

void write_text_atomic(const std::filesystem::path& path, std::string_view text) {
  AtomicFile f(path);
  f.write(text);
  f.commit();
}

AtomicFile::AtomicFile(std::filesystem::path target) : target_(std::move(target)) {
  std::error_code ec;
  const auto st = std::filesystem::status(target_, ec);
  if (!ec && std::filesystem::exists(st) && !std::filesystem::is_regular_file(st) && !std::filesystem::is_directory(st)) {
    // /dev/null, /dev/stdout, a FIFO: written in place (renaming a temp file over a device would
    // replace the device with a regular file).
    file_ = std::fopen(target_.c_str(), "wb");
    if (!file_) fail("{}: cannot open for writing: {}", target_.string(), std::strerror(errno));
    direct_ = true;
    return;
  }
  const auto dir = target_.has_parent_path() ? target_.parent_path() : std::filesystem::path(".");
  std::string pattern = fmt::format("{}/.{}.tmp.XXXXXX", dir.string(), target_.filename().string());
  const int fd = mkstemp(pattern.data());
  if (fd < 0)
    fail("{}: cannot create a temp file in {}: {} (check that the folder exists and is writable)", target_.string(),
         dir.string(), std::strerror(errno));
  temp_ = pattern;
  file_ = fdopen(fd, "wb");
  if (!file_) {
    ::close(fd);
    discard();
    fail("{}: cannot open temp file: {}", target_.string(), std::strerror(errno));
  }
}

AtomicFile::~AtomicFile() { discard(); }

void AtomicFile::discard() noexcept {
  if (file_) std::fclose(file_);
  file_ = nullptr;
  if (!temp_.empty()) {
    std::error_code ec;
    std::filesystem::remove(temp_, ec);
    temp_.clear();
  }
}

void AtomicFile::write(const void* data, size_t bytes) {
  LS_CHECK(file_ != nullptr, "{}: write after commit", target_.string());
  if (bytes && std::fwrite(data, 1, bytes, file_) != bytes) {
    const std::string why = std::strerror(errno);
    discard();
    fail("{}: write failed: {} (disk full?)", target_.string(), why);
  }
}

void AtomicFile::commit() {
  LS_CHECK(file_ != nullptr, "{}: commit twice", target_.string());
  if (direct_) {
    const bool flushed = std::fflush(file_) == 0;
    const int err = errno;
    std::fclose(file_);
    file_ = nullptr;
    if (!flushed) fail("{}: write failed: {}", target_.string(), std::strerror(err));
    return;
  }
  const bool ok = std::fflush(file_) == 0 && fsync(fileno(file_)) == 0;
  const int err = errno;
  std::fclose(file_);
  file_ = nullptr;
  if (!ok) {
    discard();
    fail("{}: flush failed: {} (disk full?)", target_.string(), std::strerror(err));
  }
  // mkstemp creates 0600; give the result the usual permissions.
  const mode_t mask = umask(0);
  umask(mask);
  std::error_code ec;
  std::filesystem::permissions(temp_, static_cast<std::filesystem::perms>(0666 & ~mask), ec);
  std::filesystem::rename(temp_, target_, ec);
  if (ec) {
    discard();
    fail("{}: cannot rename the finished temp file into place: {}", target_.string(), ec.message());
  }
  temp_.clear();
}

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot read: {} (check the path)", path.string(), std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace longseq
