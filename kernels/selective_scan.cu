// Host entry of the selective scan forward (kernels/selective_scan.cuh): validates the parameters,
// picks the number of segments so that (D / 32) x B x segments blocks give every SM about four
// (segments of at least 16 chunks, so the extra pass stays small), and runs the segmented driver
// with 8 warps x 32 lanes per block and 8 tokens per thread (64-token chunks).
#include "kernels/cuda_check.h"
#include "kernels/selective_scan.cuh"

namespace longseq::cuda {

void selective_scan_forward(const SelectiveScanParams& p) {
  LS_CHECK(p.batch >= 1 && p.length >= 0 && p.channels >= 1 && p.states >= 1, "selective_scan_forward: bad sizes B={} L={} D={} N={}",
           p.batch, p.length, p.channels, p.states);
  LS_CHECK(p.states <= kScanMaxStates, "selective_scan_forward: N={} exceeds the kernel's {} states", p.states, kScanMaxStates);
  LS_CHECK(p.u && p.delta && p.Bm && p.Cm && p.A && p.y, "selective_scan_forward: u, delta, B, C, A and y are required");
  LS_CHECK(p.batch <= 65535, "selective_scan_forward: batch {} exceeds the grid's 65535", p.batch);
  LS_CHECK(!p.cu_seqlens || (p.batch == 1 && p.n_seqs >= 1), "selective_scan_forward: a packed batch (cu_seqlens) needs B = 1 and n_seqs >= 1, got B={} n_seqs={}",
           p.batch, p.n_seqs);
  constexpr int kWarps = 8, kItems = 8, kChunk = kWarps * kItems, kMinChunksPerSegment = 16;
  int device = 0, sms = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int64_t blocks = (p.channels + kLanes - 1) / kLanes * p.batch, chunks = (p.length + kChunk - 1) / kChunk;
  int64_t segments = (4 * int64_t(sms) + blocks - 1) / blocks;
  segments = std::max<int64_t>(1, std::min<int64_t>(std::min<int64_t>(segments, chunks / kMinChunksPerSegment), 65535));
  float* scratch = nullptr;
  if (const int64_t n = selective_scan_scratch(p, segments); n > 0) CUDA_CHECK(cudaMalloc(&scratch, size_t(n) * sizeof(float)));
  try {
    selective_scan_segmented<kWarps, kItems>(p, segments, scratch, [](dim3 grid, dim3 block, auto kernel, const SelectiveScanParams& q) {
      kernel<<<grid, block>>>(q);
      CUDA_CHECK(cudaGetLastError());
    });
    CUDA_CHECK(cudaDeviceSynchronize());
  } catch (...) {
    cudaFree(scratch);
    throw;
  }
  CUDA_CHECK(cudaFree(scratch));
}

void selective_scan_step(const SelectiveStepParams& p) {
  LS_CHECK(p.batch >= 1 && p.channels >= 1 && p.states >= 1, "selective_scan_step: bad sizes B={} D={} N={}", p.batch, p.channels,
           p.states);
  LS_CHECK(p.u && p.delta && p.Bm && p.Cm && p.A && p.state && p.y, "selective_scan_step: u, delta, B, C, A, state and y are required");
  constexpr int kThreads = 256;
  const int64_t blocks = (p.batch * p.channels + kThreads - 1) / kThreads;
  LS_CHECK(blocks <= 0x7fffffff, "selective_scan_step: B x D = {} is too large for one launch", p.batch * p.channels);
  selective_scan_step_kernel<<<unsigned(blocks), kThreads>>>(p);
  CUDA_CHECK(cudaGetLastError());
  CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace longseq::cuda
