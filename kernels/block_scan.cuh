// Block-level scan primitive through shared memory and __syncthreads only (no warp shuffles, no
// cub), so the same statements run on a GPU and in the CPU emulation of kernels/emu/cuda_emu.h.
// Layout it serves: the block's threads are kNWarps warps x 32 lanes, lane = an independent
// sequence (a channel), warp = a consecutive run of tokens of it; each thread holds the aggregate of
// its run, and the scan is over warps, per lane. kNWarps is small (<= 32), so the per-thread
// combination of the earlier warps' aggregates is a short loop, not a log-depth tree.
#pragma once

namespace longseq::cuda {

inline constexpr int kLanes = 32;

// Returns the combination of the aggregates of warps 0..w-1 of this lane (identity for warp 0) and
// sets *total to that of all warps. `op(earlier, later)` must be associative. smem: kNWarps x kLanes
// elements of block-shared memory. Every thread of the block must call it; it ends with a barrier,
// so smem may be rewritten at once.
template <int kNWarps, class T, class Op>
__device__ T warp_exclusive_scan(T value, Op op, T identity, T (*smem)[kLanes], T* total) {
  const int lane = int(threadIdx.x) % kLanes, warp = int(threadIdx.x) / kLanes;
  smem[warp][lane] = value;
  __syncthreads();
  T prefix = identity;
  for (int w = 0; w < warp; ++w) prefix = op(prefix, smem[w][lane]);
  T all = prefix;
  for (int w = warp; w < kNWarps; ++w) all = op(all, smem[w][lane]);
  *total = all;
  __syncthreads();
  return prefix;
}

}  // namespace longseq::cuda
