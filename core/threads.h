// One thread pool for the whole process (OpenMP), sized by --threads. Ops parallelize only over
// independent outputs, never over a reduction axis, so results do not depend on the thread count.
#pragma once

#include <algorithm>
#include <cstdint>

namespace longseq {

// Most worker threads one process may ask for: far above any machine's cores, far below what makes
// thread creation or per-thread scratch fail.
inline constexpr int kMaxThreads = 1024;

// Sets the number of worker threads (0: one per available core) and starts them now, so a failure
// to create them is an error here (longseq::Error naming the count) rather than libgomp ending the
// process midway. Throws for n outside 0..kMaxThreads.
void set_num_threads(int n);
int num_threads();
int thread_slot();  // index of the calling thread in the current parallel region (0 outside)
int available_cores();

// Calls fn(begin, count, slot) for consecutive blocks [begin, begin + count) of [0, n), blocks spread
// over the threads. `slot` (< num_threads()) is the calling thread's index, for per-thread scratch.
// Block bounds depend only on n and block, so each block's result is the same for any thread count.
// Ops called inside run single-threaded (no nested parallelism). fn must not throw.
template <class Fn>
void for_blocks(int64_t n, int64_t block, Fn&& fn) {
  const int64_t blocks = (n + block - 1) / block;
#pragma omp parallel for schedule(dynamic, 1) if (blocks > 1)
  for (int64_t b = 0; b < blocks; ++b) fn(b * block, std::min(block, n - b * block), thread_slot());
}

}  // namespace longseq
