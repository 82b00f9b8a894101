// Block-level scan primitive through shared memory and __syncthreads only (no warp shuffles, no
// cub), so the same statements run on a GPU and in the CPU emulation of kernels/emu/cuda_emu.h.
// Layout it serves: the block's threads are kNWarps warps x 32 lanes, lane = an independent
// sequence (a channel), warp = a consecutive run of tokens of it; each thread holds the aggregate of
// its run, and the scan is over warps, per lane. kNWarps is small (<= 32), so the per-thread
// combination of the earlier warps' aggregates is a short loop, not a log-depth tree.
#pragma once

#include "kernels/kernel_namespace.h"

namespace longseq::cuda {
LS_KERNELS_BEGIN

inline constexpr int kLanes = 32;

// Returns the combination of the aggregates of warps 0..w-1 of this lane (identity for warp 0) and
// sets *total to that of all warps; with kReverse, of warps w+1..kNWarps-1 taken from the last warp
// down (a scan that runs backwards in time). `op(first, then)` must be associative. smem: kNWarps x
// kLanes elements of block-shared memory. Every thread of the block must call it; it ends with a
// barrier, so smem may be rewritten at once.
template <int kNWarps, bool kReverse = false, class T, class Op>
__device__ T warp_exclusive_scan(T value, Op op, T identity, T (*smem)[kLanes], T* total) {
  const int lane = int(threadIdx.x) % kLanes, warp = int(threadIdx.x) / kLanes;
  smem[warp][lane] = value;
  __syncthreads();
  T prefix = identity;
  const int step = kReverse ? -1 : 1, first = kReverse ? kNWarps - 1 : 0, stop = kReverse ? -1 : kNWarps;
  int w = first;
  for (; w != warp; w += step) prefix = op(prefix, smem[w][lane]);
  T all = prefix;
  for (; w != stop; w += step) all = op(all, smem[w][lane]);
  *total = all;
  __syncthreads();
  return prefix;
}

// Both directions at once, for the backward scans: returns in *earlier the forward exclusive scan
// of `fwd` (warps 0..w-1) and in *later the reverse one of `rev` (warps kNWarps-1 down to w+1),
// with their totals, through one pair of barriers instead of two.
template <int kNWarps, class T, class Op>
__device__ void warp_exclusive_scan_both(T fwd, T rev, Op op, T identity, T (*smem_fwd)[kLanes], T (*smem_rev)[kLanes], T* earlier,
                                         T* fwd_total, T* later, T* rev_total) {
  const int lane = int(threadIdx.x) % kLanes, warp = int(threadIdx.x) / kLanes;
  smem_fwd[warp][lane] = fwd;
  smem_rev[warp][lane] = rev;
  __syncthreads();
  T f = identity, r = identity;
  int w = 0;
  for (; w < warp; ++w) f = op(f, smem_fwd[w][lane]);
  *earlier = f;
  for (; w < kNWarps; ++w) f = op(f, smem_fwd[w][lane]);
  *fwd_total = f;
  for (w = kNWarps - 1; w > warp; --w) r = op(r, smem_rev[w][lane]);
  *later = r;
  for (; w >= 0; --w) r = op(r, smem_rev[w][lane]);
  *rev_total = r;
  __syncthreads();
}

// Sum of `value` over the 32 lanes of each warp (every lane gets its warp's sum), for kernels in
// which each warp owns a row: through smem (kNWarps x kLanes floats) and two block barriers, so
// every thread of the block must call it, rows or not.
template <int kNWarps>
__device__ float warp_sum(float value, float (*smem)[kLanes]) {
  const int warp = int(threadIdx.x) / kLanes;
  smem[warp][threadIdx.x % kLanes] = value;
  __syncthreads();
  float sum = 0.0f;
  for (int l = 0; l < kLanes; ++l) sum += smem[warp][l];
  __syncthreads();
  return sum;
}

// Maximum over the lanes of each warp, as warp_sum.
template <int kNWarps>
__device__ float warp_max(float value, float (*smem)[kLanes]) {
  const int warp = int(threadIdx.x) / kLanes;
  smem[warp][threadIdx.x % kLanes] = value;
  __syncthreads();
  float m = smem[warp][0];
  for (int l = 1; l < kLanes; ++l) m = m > smem[warp][l] ? m : smem[warp][l];
  __syncthreads();
  return m;
}

LS_KERNELS_END
}  // namespace longseq::cuda
