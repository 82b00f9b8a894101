// Host-side CUDA runtime queries, callable from plain C++ (no CUDA headers leak out of kernels/).
#pragma once

#include <string>

namespace longseq::cuda {

// Number of visible devices; 0 (never an exception) when no driver or device is present.
int device_count();
std::string device_summary();

}  // namespace longseq::cuda
