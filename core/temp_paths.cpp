#include "core/temp_paths.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

namespace longseq {

namespace {

struct Registry {
  std::mutex mu;
  std::map<uint64_t, std::filesystem::path> paths;
  uint64_t next = 1;
};

Registry& registry() {
  static Registry r;
  return r;
}

// Removes every registered path; the caller holds the registry's lock.
void remove_locked(Registry& r) noexcept {
  for (const auto& [id, path] : r.paths) {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  r.paths.clear();
}

void remove_registered() noexcept {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  remove_locked(r);
}

sigset_t cleanup_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

[[noreturn]] void watch_signals(sigset_t set) {
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  // The lock is kept until the process dies: a thread about to register (and then create) a new
  // temp waits here instead of leaving it behind. Temps are registered before they are created.
  Registry& r = registry();
  r.mu.lock();
  remove_locked(r);
  // Die of the same signal (the shell prints nothing for SIGINT and reports 130; SLURM sees SIGTERM).
  ::signal(sig, SIG_DFL);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  ::raise(sig);
  ::_exit(128 + sig);
}

}  // namespace

void install_signal_cleanup() {
  static std::once_flag once;
  std::call_once(once, [] {
    registry();  // constructed before the atexit handler is registered, so destroyed after it runs
    std::atexit(remove_registered);
    const sigset_t set = cleanup_signals();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::thread(watch_signals, set).detach();
  });
}

TempPathGuard::TempPathGuard(const std::filesystem::path& path) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  id_ = r.next++;
  r.paths.emplace(id_, path);
}

TempPathGuard::TempPathGuard(const std::filesystem::path& path, const std::function<void()>& create) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  id_ = r.next++;
  r.paths.emplace(id_, path);
  try {
    create();
  } catch (...) {
    r.paths.erase(id_);
    id_ = 0;
    throw;
  }
}

void TempPathGuard::finish(const std::function<void()>& fn) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.paths.erase(id_);
  id_ = 0;
  fn();
}

void create_directories_guarded(const std::filesystem::path& dir) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::filesystem::create_directories(dir);
}

TempPathGuard& TempPathGuard::operator=(TempPathGuard&& other) noexcept {
  if (this != &other) {
    release();
    id_ = other.id_;
    other.id_ = 0;
  }
  return *this;
}

void TempPathGuard::release() noexcept {
  if (!id_) return;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.paths.erase(id_);
  id_ = 0;
}

size_t registered_temp_paths() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.paths.size();
}

}  // namespace longseq
