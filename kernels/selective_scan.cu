// Host entry of the selective scan forward kernel (kernels/selective_scan.cuh): validates the
// parameters, launches one block of 8 warps x 32 lanes per (32 channels, batch), 8 tokens per
// thread (64-token chunks).
#include "kernels/cuda_check.h"
#include "kernels/selective_scan.cuh"

namespace longseq::cuda {

void selective_scan_forward(const SelectiveScanParams& p) {
  LS_CHECK(p.batch >= 1 && p.length >= 0 && p.channels >= 1 && p.states >= 1, "selective_scan_forward: bad sizes B={} L={} D={} N={}",
           p.batch, p.length, p.channels, p.states);
  LS_CHECK(p.states <= kScanMaxStates, "selective_scan_forward: N={} exceeds the kernel's {} states", p.states, kScanMaxStates);
  LS_CHECK(p.u && p.delta && p.Bm && p.Cm && p.A && p.y, "selective_scan_forward: u, delta, B, C, A and y are required");
  LS_CHECK(p.channels <= 0x7fffffff && p.batch <= 65535, "selective_scan_forward: grid too large (D={}, B={})", p.channels, p.batch);
  constexpr int kWarps = 8, kItems = 8;
  const auto channel_blocks = unsigned((p.channels + kLanes - 1) / kLanes);
  selective_scan_fwd_kernel<kWarps, kItems><<<dim3(channel_blocks, unsigned(p.batch)), kWarps * kLanes>>>(p);
  CUDA_CHECK(cudaGetLastError());
  CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace longseq::cuda
