// Host helpers shared by the kernels' .cu entry points (included only from .cu files): a launcher
// for the drivers in the .cuh files, the SM count, and scratch memory freed on scope exit.
#pragma once

#include "kernels/cuda_check.h"

#include <cstdint>

namespace longseq::cuda {

// The `launch` argument of the .cuh drivers on a device: kernel<<<grid, block>>>(params), checked.
inline constexpr auto launch_on_device = [](dim3 grid, dim3 block, auto kernel, const auto& params) {
  kernel<<<grid, block>>>(params);
  CUDA_CHECK(cudaGetLastError());
};

inline int sm_count() {
  int device = 0, sms = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return sms;
}

// Device scratch of `floats` floats (none for 0), freed on scope exit (also when a launch throws).
struct DeviceScratch {
  float* ptr = nullptr;
  explicit DeviceScratch(int64_t floats) {
    if (floats > 0) CUDA_CHECK(cudaMalloc(&ptr, size_t(floats) * sizeof(float)));
  }
  ~DeviceScratch() { cudaFree(ptr); }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
};

}  // namespace longseq::cuda
