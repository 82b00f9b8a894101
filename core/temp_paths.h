// Temp outputs that must not outlive the process. Every output is written to a hidden temp file or
// folder and renamed into place when complete (core/fileio.h); this registry lets an interrupted run
// remove those temps too: SIGINT, SIGTERM and SIGHUP (Ctrl-C, `kill`, a SLURM time limit, a closed
// terminal) and exit() called from inside a library (libgomp exits when it cannot create a thread).
//
// Signals are taken by one watcher thread (sigwait) rather than an asynchronous handler, so the
// cleanup may remove whole folders with std::filesystem; that needs the signals blocked in every
// thread, which install_signal_cleanup() does for the calling thread before any other thread exists.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>

namespace longseq {

// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread (threads created later inherit the mask),
// starts the watcher thread and registers the exit-time cleanup. Call once, first thing in main(),
// before any thread is created. On a signal the watcher removes every registered path, restores the
// default action and re-raises the signal, so the exit status still says which signal ended the run.
void install_signal_cleanup();

// A registered temp path: removed (a file, or a folder with its contents) if the process is ended by
// a handled signal or exits while it is registered. Whatever creates, renames or fills in place a
// registered path runs under the registry's lock (the constructor's `create`, finish(),
// create_directories_guarded), and the signal watcher takes that lock for good before it removes
// anything: so a path is made either before the cleanup (and removed by it) or never, and a rename
// cannot land in a folder while the cleanup empties it. Destroying or releasing the registration
// does not remove the path: the owner either renamed it into place or removes it itself.
class TempPathGuard {
 public:
  TempPathGuard() = default;
  explicit TempPathGuard(const std::filesystem::path& path);
  // Registers `path` and runs `create` (which makes it); when `create` throws, the path is forgotten
  // and the exception passes on.
  TempPathGuard(const std::filesystem::path& path, const std::function<void()>& create);
  ~TempPathGuard() { release(); }
  TempPathGuard(TempPathGuard&& other) noexcept : id_(other.id_) { other.id_ = 0; }
  TempPathGuard& operator=(TempPathGuard&& other) noexcept;
  TempPathGuard(const TempPathGuard&) = delete;
  TempPathGuard& operator=(const TempPathGuard&) = delete;
  // Forgets the path (after it was renamed into place or removed).
  void release() noexcept;
  // Runs `fn` (the rename into place) and forgets the path, with no cleanup in between.
  void finish(const std::function<void()>& fn);

 private:
  uint64_t id_ = 0;
};

// std::filesystem::create_directories under the registry's lock: folders inside a registered temp
// folder are never re-made after the cleanup removed it (the call blocks until the process is gone).
void create_directories_guarded(const std::filesystem::path& dir);

// Paths registered now (for tests).
size_t registered_temp_paths();

}  // namespace longseq
