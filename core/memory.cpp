#include "core/memory.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace longseq {

namespace {
std::atomic<size_t> g_current{0};
std::atomic<size_t> g_peak{0};

size_t round_up(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }
}  // namespace

MemoryStats memory_stats() { return {g_current.load(), g_peak.load()}; }

void reset_peak_memory() { g_peak.store(g_current.load()); }

void* tracked_alloc(size_t bytes) {
  const size_t n = round_up(bytes == 0 ? 1 : bytes);
  void* p = std::aligned_alloc(kAlignment, n);
  if (!p) throw std::bad_alloc();
  const size_t now = g_current.fetch_add(n) + n;
  size_t peak = g_peak.load();
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
  }
  return p;
}

void tracked_free(void* ptr, size_t bytes) noexcept {
  if (!ptr) return;
  g_current.fetch_sub(round_up(bytes == 0 ? 1 : bytes));
  std::free(ptr);
}

size_t peak_rss_bytes() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  size_t kb = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "VmHWM:", 6) == 0) {
      kb = std::strtoull(line + 6, nullptr, 10);
      break;
    }
  std::fclose(f);
  return kb * 1024;
}

namespace {
// The number in a cgroup limit file ("max" or absent: no limit).
size_t cgroup_limit(const char* path) {
  FILE* f = std::fopen(path, "r");
  if (!f) return SIZE_MAX;
  char buf[64] = {};
  const bool read = std::fgets(buf, sizeof buf, f) != nullptr;
  std::fclose(f);
  if (!read || std::strncmp(buf, "max", 3) == 0) return SIZE_MAX;
  const unsigned long long v = std::strtoull(buf, nullptr, 10);
  return v > 0 ? size_t(v) : SIZE_MAX;
}
}  // namespace

size_t usable_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  size_t bytes = pages > 0 && page > 0 ? size_t(pages) * size_t(page) : SIZE_MAX;
  bytes = std::min(bytes, cgroup_limit("/sys/fs/cgroup/memory.max"));                    // cgroup v2
  bytes = std::min(bytes, cgroup_limit("/sys/fs/cgroup/memory/memory.limit_in_bytes"));  // cgroup v1
  return bytes;
}

}  // namespace longseq
