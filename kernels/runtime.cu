#include "kernels/runtime.h"

#include "kernels/cuda_check.h"

#include <fmt/format.h>

namespace longseq::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

std::string device_summary() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return fmt::format("no CUDA device ({})", cudaGetErrorString(err));
  }
  std::string out;
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    CUDA_CHECK(cudaGetDeviceProperties(&p, i));
    out += fmt::format("{}{}: {}, sm_{}{}, {:.1f} GiB", i ? "\n" : "", i, p.name, p.major, p.minor,
                       double(p.totalGlobalMem) / (1 << 30));
  }
  return n ? out : "no CUDA device";
}

}  // namespace longseq::cuda
