// Host entries of the selective scan (kernels/selective_scan.cuh, selective_scan_bwd.cuh): validate
// the parameters and pick the pieces L is cut into. Forward: (D / 32) x B x pieces blocks give every
// SM about four (pieces of at least 16 chunks, so the extra pass stays small), 8 warps x 8 tokens
// per thread (64-token chunks). Backward: a block owns all channels of a piece, so B x pieces blocks
// give every SM about four; 8 warps x 4 tokens per thread (it holds more per token).
#include "kernels/cuda_check.h"
#include "kernels/device_util.h"
#include "kernels/selective_scan.cuh"
#include "kernels/selective_scan_bwd.cuh"

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
  const int64_t blocks = (p.channels + kLanes - 1) / kLanes * p.batch, chunks = (p.length + kChunk - 1) / kChunk;
  int64_t segments = (4 * int64_t(sm_count()) + blocks - 1) / blocks;
  segments = std::max<int64_t>(1, std::min<int64_t>(std::min<int64_t>(segments, chunks / kMinChunksPerSegment), 65535));
  DeviceScratch scratch(selective_scan_scratch(p, segments));
  selective_scan_segmented<kWarps, kItems>(p, segments, scratch.ptr, launch_on_device);
  CUDA_CHECK(cudaDeviceSynchronize());
}

void selective_scan_backward(const SelectiveScanBwdParams& g) {
  const SelectiveScanParams& p = g.fwd;
  LS_CHECK(p.batch >= 1 && p.length >= 1 && p.channels >= 1 && p.states >= 1, "selective_scan_backward: bad sizes B={} L={} D={} N={}",
           p.batch, p.length, p.channels, p.states);
  LS_CHECK(p.states <= kScanMaxStates, "selective_scan_backward: N={} exceeds the kernel's {} states", p.states, kScanMaxStates);
  LS_CHECK(p.u && p.delta && p.Bm && p.Cm && p.A && g.dy, "selective_scan_backward: u, delta, B, C, A and dy are required");
  LS_CHECK(g.du && g.ddelta && g.dB && g.dC && g.dA, "selective_scan_backward: du, ddelta, dB, dC and dA are required");
  LS_CHECK(!p.z || g.dz, "selective_scan_backward: z is set, so dz is required");
  LS_CHECK(!p.Dskip || g.dDskip, "selective_scan_backward: Dskip is set, so dDskip is required");
  LS_CHECK(!p.delta_bias || g.ddelta_bias, "selective_scan_backward: delta_bias is set, so ddelta_bias is required");
  LS_CHECK(p.dtype == StorageType::f32, "selective_scan_backward: the backward takes fp32 inputs; convert bf16/fp16 activations first");
  LS_CHECK(!p.cu_seqlens, "selective_scan_backward: packed batches (cu_seqlens) are not supported by the backward; pass one row per sequence");
  LS_CHECK(p.batch <= 65535, "selective_scan_backward: batch {} exceeds the grid's 65535", p.batch);
  constexpr int kFwdWarps = 8, kFwdItems = 8, kWarps = 8, kItems = 4;
  const int64_t segments = std::min<int64_t>(65535, (4 * int64_t(sm_count()) + p.batch - 1) / p.batch);
  DeviceScratch scratch(selective_scan_bwd_scratch<kFwdWarps, kFwdItems, kWarps, kItems>(p, segments));
  selective_scan_backward_run<kFwdWarps, kFwdItems, kWarps, kItems>(g, segments, scratch.ptr, launch_on_device);
  CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace longseq::cuda
