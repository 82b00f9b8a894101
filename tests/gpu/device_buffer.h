// Device buffers for the GPU tests (CUDA builds only): a device copy of a host vector, or an
// uninitialised buffer, freed on scope exit; host() copies it back.
#pragma once

#include "kernels/cuda_check.h"

#include <algorithm>
#include <vector>

namespace longseq::testing {

// A device copy of a host vector (or an uninitialised buffer of n values), freed on scope exit.
template <class T>
struct DeviceBuffer {
  T* ptr = nullptr;
  size_t n = 0;
  explicit DeviceBuffer(size_t count) : n(count) { CUDA_CHECK(cudaMalloc(&ptr, std::max<size_t>(n, 1) * sizeof(T))); }
  explicit DeviceBuffer(const std::vector<T>& v) : DeviceBuffer(v.size()) {
    CUDA_CHECK(cudaMemcpy(ptr, v.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { cudaFree(ptr); }
  std::vector<T> host() const {
    std::vector<T> v(n);
    CUDA_CHECK(cudaMemcpy(v.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost));
    return v;
  }
};
using DeviceFloats = DeviceBuffer<float>;

}  // namespace longseq::testing
