#include "core/fileio.h"

#include "core/error.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

namespace longseq {

std::vector<std::filesystem::path> with_suffixes(const std::filesystem::path& path, std::initializer_list<const char*> suffixes) {
  std::vector<std::filesystem::path> out{path};
  for (const char* s : suffixes) out.emplace_back(path.string() + s);
  return out;
}

std::optional<std::pair<uint64_t, uint64_t>> file_identity(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return std::pair<uint64_t, uint64_t>{uint64_t(st.st_dev), uint64_t(st.st_ino)};
}

bool same_file(const std::filesystem::path& a, const std::filesystem::path& b) {
  const auto ia = file_identity(a);
  return ia && ia == file_identity(b);
}

namespace {

// The first of `inputs` that is the same file as `output`, or nullptr.
const std::filesystem::path* input_named_by(const std::filesystem::path& output, const std::vector<std::filesystem::path>& inputs) {
  for (const auto& in : inputs)
    if (!in.empty() && same_file(output, in)) return &in;
  return nullptr;
}

}  // namespace

void check_output_file(const std::filesystem::path& output, const std::vector<std::filesystem::path>& inputs,
                       std::string_view option) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto st = fs::status(output, ec);
  if (fs::is_directory(st))
    fail("{} {}: is a folder; give a file name (e.g. {}/out{})", option, output.string(), output.string(),
         output.extension().string());
  if (const auto* in = input_named_by(output, inputs))
    fail("{} {}: is the same file as the input {}; writing it would destroy the input, so choose another output name", option,
         output.string(), in->string());
  if (fs::exists(st)) return;  // an existing file (replaced on success) or a device/FIFO
  const fs::path dir = output.has_parent_path() ? output.parent_path() : fs::path(".");
  if (!fs::is_directory(dir, ec)) fail("{} {}: the folder {} does not exist; create it first", option, output.string(), dir.string());
}

void check_output_folder(const std::filesystem::path& output, const std::vector<std::filesystem::path>& inputs,
                         std::string_view option) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(output, ec) && !fs::is_directory(output, ec))
    fail("{} {}: exists and is not a folder; give a folder name (it is created when missing)", option, output.string());
  if (const auto* in = input_named_by(output, inputs))
    fail("{} {}: is the input {}; choose another output folder", option, output.string(), in->string());
}

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
  const int fd = create_temp(dir, target_.filename().string());
  if (fd < 0)
    fail("{}: cannot create a temp file in {}: {} (check that the folder exists and is writable)", target_.string(),
         dir.string(), std::strerror(errno));
  file_ = fdopen(fd, "wb");
  if (!file_) {
    ::close(fd);
    discard();
    fail("{}: cannot open temp file: {}", target_.string(), std::strerror(errno));
  }
}

// Like mkstemp, but the name is registered for signal cleanup and the file created under the
// registry's lock, so no moment is left in which a signal could strand an unregistered temp. Returns the descriptor or -1 (errno set).
int AtomicFile::create_temp(const std::filesystem::path& dir, const std::string& name) {
  static constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng(std::random_device{}() ^ (uint64_t(::getpid()) << 32));
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string suffix(6, ' ');
    for (char& c : suffix) c = kChars[rng() % (sizeof kChars - 1)];
    temp_ = fmt::format("{}/.{}.tmp.{}", dir.string(), name, suffix);
    int fd = -1, err = 0;
    guard_ = TempPathGuard(temp_, [&] {
      fd = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      err = errno;
    });
    if (fd >= 0) return fd;
    guard_.release();
    temp_.clear();
    errno = err;
    if (err != EEXIST) return -1;
  }
  return -1;
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
  guard_.release();
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
  // The temp is created 0600; give the result the usual permissions.
  const mode_t mask = umask(0);
  umask(mask);
  std::error_code ec;
  std::filesystem::permissions(temp_, static_cast<std::filesystem::perms>(0666 & ~mask), ec);
  guard_.finish([&] { std::filesystem::rename(temp_, target_, ec); });
  if (ec) {
    discard();
    fail("{}: cannot rename the finished temp file into place: {}", target_.string(), ec.message());
  }
  temp_.clear();
}

std::shared_ptr<const MappedFile> MappedFile::open(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open: {} (check the path)", path.string(), std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("{}: not a regular file (pass the model file or its folder)", path.string());
  }
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->size_ = uint64_t(st.st_size);
  if (m->size_ > 0) {
    void* addr = mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);
    if (addr == MAP_FAILED) fail("{}: cannot map: {}", path.string(), std::strerror(err));
    m->addr_ = addr;
  } else {
    ::close(fd);
  }
  return m;
}

MappedFile::~MappedFile() {
  if (addr_) munmap(addr_, size_);
}

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot read: {} (check the path)", path.string(), std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace longseq
