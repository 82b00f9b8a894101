#include "core/threads.h"

#include <omp.h>
#include <sched.h>

namespace longseq {

int available_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
  return omp_get_num_procs();
}

void set_num_threads(int n) {
  omp_set_num_threads(n > 0 ? n : available_cores());
  omp_set_max_active_levels(1);  // ops inside a for_blocks body run on their caller's thread
}

int thread_slot() { return omp_get_thread_num(); }

int num_threads() { return omp_get_max_threads(); }

}  // namespace longseq
