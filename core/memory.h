// 64-byte aligned host allocation with a process-wide accountant (current and peak bytes), so tests
// and benchmarks can prove memory bounds without reading /proc.
#pragma once

#include <cstddef>

namespace longseq {

inline constexpr size_t kAlignment = 64;

struct MemoryStats {
  size_t current = 0;  // bytes held by live tensor storage now
  size_t peak = 0;     // high-water mark since start or the last reset_peak_memory()
};

MemoryStats memory_stats();
void reset_peak_memory();
// Peak resident set size of the whole process (VmHWM), in bytes; 0 where unavailable.
size_t peak_rss_bytes();
// Memory this process may use: the machine's physical memory, or a smaller cgroup limit (a SLURM job's
// --mem, a container's limit). For refusing work that cannot fit before it starts.
size_t usable_memory_bytes();

// Allocates `bytes` (rounded up to kAlignment) aligned to kAlignment and counts them. Throws
// std::bad_alloc on failure. Free with tracked_free(ptr, bytes) using the same `bytes`.
void* tracked_alloc(size_t bytes);
void tracked_free(void* ptr, size_t bytes) noexcept;

}  // namespace longseq
