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

// The device memory pool: CUDA's stream-ordered allocator on the default pool, told to keep what is
// freed (release threshold: everything), so the per-call scratch of the kernels is carved from
// cached memory after the first call instead of a cudaMalloc / cudaFree pair each time.
inline void keep_pool_memory() {
  static const bool done = [] {
    int device = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    cudaMemPool_t pool = nullptr;
    CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
    uint64_t threshold = UINT64_MAX;
    CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
    return true;
  }();
  (void)done;
}

// Device scratch of `floats` floats (none for 0) from the pool, returned on scope exit (also when a
// launch throws); ordered on the default stream, like the launches that use it.
struct DeviceScratch {
  float* ptr = nullptr;
  explicit DeviceScratch(int64_t floats) {
    if (floats <= 0) return;
    keep_pool_memory();
    CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&ptr), size_t(floats) * sizeof(float), nullptr));
  }
  ~DeviceScratch() {
    if (ptr) cudaFreeAsync(ptr, nullptr);  // the default stream
  }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
};

}  // namespace longseq::cuda
