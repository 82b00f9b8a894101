#include "kernels/convert.h"

#include "kernels/half.h"
#include "kernels/cuda_check.h"

namespace longseq::cuda {

namespace {
__global__ void convert_half_kernel(ConvertParams p) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n; i += stride)
    p.dst[i] = p.bf16 ? bf16_to_f32(p.src[i]) : f16_to_f32(p.src[i]);
}
}  // namespace

void convert_half_to_f32(const ConvertParams& p) {
  LS_CHECK(p.n >= 0 && (p.n == 0 || (p.src && p.dst)), "convert_half_to_f32: bad arguments (n={})", p.n);
  if (p.n == 0) return;
  constexpr int kThreads = 256;
  const int blocks = int(std::min<int64_t>((p.n + kThreads - 1) / kThreads, 65535));
  convert_half_kernel<<<blocks, kThreads>>>(p);
  CUDA_CHECK(cudaGetLastError());
  CUDA_CHECK(cudaDeviceSynchronize());
}

void convert_half_to_f32_host(const uint16_t* src, float* dst, int64_t n, bool bf16) {
  uint16_t* d_src = nullptr;
  float* d_dst = nullptr;
  CUDA_CHECK(cudaMalloc(&d_src, size_t(n) * 2));
  CUDA_CHECK(cudaMalloc(&d_dst, size_t(n) * 4));
  try {
    CUDA_CHECK(cudaMemcpy(d_src, src, size_t(n) * 2, cudaMemcpyHostToDevice));
    convert_half_to_f32({d_src, d_dst, n, bf16});
    CUDA_CHECK(cudaMemcpy(dst, d_dst, size_t(n) * 4, cudaMemcpyDeviceToHost));
  } catch (...) {
    cudaFree(d_src);
    cudaFree(d_dst);
    throw;
  }
  CUDA_CHECK(cudaFree(d_src));
  CUDA_CHECK(cudaFree(d_dst));
}

}  // namespace longseq::cuda
