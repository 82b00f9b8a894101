// 64-byte aligned host allocation with a process-wide accountant (current and peak bytes), so tests
// and benchmarks can prove memory bounds without reading /proc.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

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

// std::vector storage aligned to kAlignment (not counted): arrays whose rows the SIMD paths and the
// GEMVs load, such as a model's flat weight table (an unaligned table costs decoding ~25%).
template <class T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>&) noexcept {}
  // std::aligned_alloc (not operator new): a request that cannot be met is a null, hence a
  // std::bad_alloc the commands turn into one line, also under AddressSanitizer.
  T* allocate(size_t n) {
    if (n > (size_t(1) << 62) / sizeof(T)) throw std::bad_alloc();
    const size_t bytes = (std::max<size_t>(n * sizeof(T), 1) + kAlignment - 1) / kAlignment * kAlignment;
    void* p = std::aligned_alloc(kAlignment, bytes);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) noexcept { std::free(p); }
  template <class U>
  bool operator==(const AlignedAllocator<U>&) const noexcept { return true; }
};
template <class T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

}  // namespace longseq
