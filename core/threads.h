// One thread pool for the whole process (OpenMP), sized by --threads. Ops parallelize only over
// independent outputs, never over a reduction axis, so results do not depend on the thread count.
#pragma once

namespace longseq {

// Sets the number of worker threads; n <= 0 means one per available core.
void set_num_threads(int n);
int num_threads();
int available_cores();

}  // namespace longseq
