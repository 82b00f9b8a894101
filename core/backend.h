// Which compute backends this build has and which devices are present. CPU is always available;
// CUDA only when the build compiled kernels/ (LONGSEQ_CUDA) and a device is visible at run time.
#pragma once

#include <string>

namespace longseq {

bool cuda_compiled();
// Number of usable CUDA devices; 0 without a CUDA build, driver or device (never throws).
int cuda_device_count();
// One line per device ("0: NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB"), or why there is none.
std::string cuda_device_summary();

}  // namespace longseq
