#include "core/threads.h"

#include "core/error.h"

#include <omp.h>
#include <pthread.h>

#include <cstring>
#include <vector>
#include <sched.h>

namespace longseq {

int available_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
  return omp_get_num_procs();
}

namespace {

// Starts n - 1 plain threads with default attributes (as libgomp does) and joins them: libgomp
// exits the process when pthread_create fails, so the limit is found here first.
void probe_thread_creation(int n) {
  std::vector<pthread_t> started;
  int err = 0;
  for (int i = 1; i < n && err == 0; ++i) {
    pthread_t t;
    err = pthread_create(&t, nullptr, [](void*) -> void* { return nullptr; }, nullptr);
    if (err == 0) started.push_back(t);
  }
  for (pthread_t t : started) pthread_join(t, nullptr);
  if (err != 0)
    fail("cannot start {} threads ({} after {}); use a smaller --threads (this machine has {} cores)", n, std::strerror(err),
         started.size() + 1, available_cores());
}

}  // namespace

void set_num_threads(int n) {
  LS_CHECK(n >= 0 && n <= kMaxThreads, "--threads {}: must be 0 (one per core) to {}; this machine has {} cores", n, kMaxThreads,
           available_cores());
  const int threads = n > 0 ? n : available_cores();
  probe_thread_creation(threads);
  omp_set_num_threads(threads);
  omp_set_max_active_levels(1);  // ops inside a for_blocks body run on their caller's thread
#pragma omp parallel
  {
    // Starts the pool now, before any output is opened.
  }
}

int thread_slot() { return omp_get_thread_num(); }

int num_threads() { return omp_get_max_threads(); }

}  // namespace longseq
