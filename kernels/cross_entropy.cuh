// Cross-entropy kernel source (nvcc: kernels/cross_entropy.cu; CPU tests: kernels/emu/cuda_emu.h).
// A warp owns a row: max and sum of exp over lanes (warp_max / warp_sum through shared memory),
// then the loss and the gradient written in one more pass over the row.
#pragma once

#include "kernels/block_scan.cuh"
#include "kernels/cross_entropy.h"

#include <cmath>

namespace longseq::cuda {
LS_KERNELS_BEGIN

template <int kNWarps>
__global__ void cross_entropy_kernel(CrossEntropyParams p) {
  __shared__ float red[kNWarps][kLanes];
  const int lane = int(threadIdx.x) % kLanes, warp = int(threadIdx.x) / kLanes;
  const int64_t r = int64_t(blockIdx.x) * kNWarps + warp;
  const bool live = r < p.rows;
  const float* x = p.logits + (live ? r : 0) * p.logits_r;
  float m = -INFINITY;
  for (int64_t c = lane; live && c < p.classes; c += kLanes) m = m > x[c] ? m : x[c];
  m = warp_max<kNWarps>(m, red);
  float s = 0.0f;
  for (int64_t c = lane; live && c < p.classes; c += kLanes) s += expf(x[c] - m);
  s = warp_sum<kNWarps>(s, red);
  if (!live) return;
  const int64_t target = p.targets[r];
  if (target >= p.classes) {
    if (lane == 0) *p.bad_target = int(r < 0x7ffffffe ? r + 1 : 0x7fffffff);  // any row: the host reports one
    return;
  }
  const float lse = m + logf(s);
  if (lane == 0) p.loss[r] = target < 0 ? 0.0f : lse - x[target];
  if (!p.dlogits) return;
  float* dx = p.dlogits + r * p.dlogits_r;
  for (int64_t c = lane; c < p.classes; c += kLanes)
    dx[c] = target < 0 ? 0.0f : p.grad_scale * (expf(x[c] - lse) - (c == target ? 1.0f : 0.0f));
}

template <int kNWarps, class Launch>
void cross_entropy_run(const CrossEntropyParams& p, Launch launch) {
  launch(dim3(unsigned((p.rows + kNWarps - 1) / kNWarps)), dim3(kNWarps * kLanes), cross_entropy_kernel<kNWarps>, p);
}

LS_KERNELS_END
}  // namespace longseq::cuda
