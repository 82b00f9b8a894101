// Row norm kernel source (nvcc in kernels/norm.cu; the CPU tests through kernels/emu/cuda_emu.h).
// A warp owns a row: lane l takes columns l, l + 32, ... (each warp access one 128-byte line), the
// row statistics are warp sums through shared memory (kernels/block_scan.cuh). The backward's
// column sums (dweight, dbias) are a second kernel with lane = column over tiles of rows, then a
// fixed-order sum of the tiles: deterministic, no atomics.
#pragma once

#include "kernels/block_scan.cuh"
#include "kernels/norm.h"

#include <cmath>

namespace longseq::cuda {
LS_KERNELS_BEGIN

// Grid: x = groups of kNWarps rows.
template <int kNWarps>
__global__ void norm_fwd_kernel(NormParams p) {
  __shared__ float red[kNWarps][kLanes];
  const int lane = int(threadIdx.x) % kLanes, warp = int(threadIdx.x) / kLanes;
  const int64_t r = int64_t(blockIdx.x) * kNWarps + warp;
  const bool live = r < p.rows;
  const float* x = p.x + (live ? r : 0) * p.x_r;
  float s = 0.0f, s2 = 0.0f;
  for (int64_t c = lane; live && c < p.cols; c += kLanes) s += x[c], s2 += x[c] * x[c];
  const float n = float(p.cols);
  const float mean = p.rms ? 0.0f : warp_sum<kNWarps>(s, red) / n;
  float var = 0.0f;
  if (p.rms) {
    var = warp_sum<kNWarps>(s2, red) / n;  // mean square
  } else {
    float d2 = 0.0f;  // second pass around the mean: no cancellation
    for (int64_t c = lane; live && c < p.cols; c += kLanes) d2 += (x[c] - mean) * (x[c] - mean);
    var = warp_sum<kNWarps>(d2, red) / n;
  }
  if (!live) return;
  const float rstd = p.eps_outside ? 1.0f / (sqrtf(var) + p.eps) : 1.0f / sqrtf(var + p.eps);
  float* y = p.y + r * p.y_r;
  for (int64_t c = lane; c < p.cols; c += kLanes) y[c] = (x[c] - mean) * rstd * p.weight[c] + (p.bias ? p.bias[c] : 0.0f);
  if (lane == 0) {
    if (p.rstd) p.rstd[r] = rstd;
    if (p.mean) p.mean[r] = mean;
  }
}

// dx = rstd (g - mean(g) - xhat mean(g xhat)) with g = dy w (RMSNorm: no mean(g) term; with eps
// outside the root the last term is x / rms mean(g xhat), rms = 1 / rstd - eps, 0 for a zero row).
template <int kNWarps>
__global__ void norm_bwd_kernel(NormBwdParams g) {
  __shared__ float red[kNWarps][kLanes];
  const NormParams& p = g.fwd;
  const int lane = int(threadIdx.x) % kLanes, warp = int(threadIdx.x) / kLanes;
  const int64_t r = int64_t(blockIdx.x) * kNWarps + warp;
  const bool live = r < p.rows;
  const float* x = p.x + (live ? r : 0) * p.x_r;
  const float* dy = g.dy + (live ? r : 0) * g.dy_r;
  const float mean = live && !p.rms ? p.mean[r] : 0.0f, rstd = live ? p.rstd[r] : 0.0f;
  float sg = 0.0f, sgx = 0.0f;
  for (int64_t c = lane; live && c < p.cols; c += kLanes) {
    const float gc = dy[c] * p.weight[c];
    sg += gc;
    sgx += gc * (x[c] - mean) * rstd;
  }
  const float n = float(p.cols);
  const float mg = p.rms ? 0.0f : warp_sum<kNWarps>(sg, red) / n, mgx = warp_sum<kNWarps>(sgx, red) / n;
  if (!live) return;
  float* dx = g.dx + r * g.dx_r;
  const float rms = 1.0f / rstd - p.eps, scale = p.eps_outside ? (rms > 0.0f ? 1.0f / rms : 0.0f) : rstd;
  for (int64_t c = lane; c < p.cols; c += kLanes) {
    dx[c] = rstd * (dy[c] * p.weight[c] - mg - (x[c] - mean) * scale * mgx);
  }
}

// Grid: x = row tiles, y = column groups of 32; partial[tile, 0, c] = sum dy xhat, [tile, 1, c] = sum dy.
__global__ void norm_param_partial_kernel(NormBwdParams g) {
  const NormParams& p = g.fwd;
  const int64_t c = int64_t(blockIdx.y) * kLanes + threadIdx.x, tile = blockIdx.x;
  if (c >= p.cols) return;
  const int64_t r_end = (tile + 1) * g.tile_rows < p.rows ? (tile + 1) * g.tile_rows : p.rows;
  float sw = 0.0f, sb = 0.0f;
  for (int64_t r = tile * g.tile_rows; r < r_end; ++r) {
    const float dy = g.dy[r * g.dy_r + c];
    sw += dy * (p.x[r * p.x_r + c] - (p.rms ? 0.0f : p.mean[r])) * p.rstd[r];
    sb += dy;
  }
  g.partial[(tile * 2 + 0) * p.cols + c] = sw;
  g.partial[(tile * 2 + 1) * p.cols + c] = sb;
}

__global__ void norm_param_finish_kernel(NormBwdParams g) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, D = g.fwd.cols;
  if (c >= D) return;
  float sw = 0.0f, sb = 0.0f;
  for (int64_t tile = 0; tile < g.tiles; ++tile) sw += g.partial[(tile * 2) * D + c], sb += g.partial[(tile * 2 + 1) * D + c];
  g.dweight[c] = sw;
  if (g.dbias) g.dbias[c] = sb;
}

template <int kNWarps, class Launch>
void norm_forward_run(const NormParams& p, Launch launch) {
  launch(dim3(unsigned((p.rows + kNWarps - 1) / kNWarps)), dim3(kNWarps * kLanes), norm_fwd_kernel<kNWarps>, p);
}

inline int64_t norm_bwd_scratch(const NormParams& p, int64_t tiles) { return tiles * 2 * p.cols; }

template <int kNWarps, class Launch>
void norm_backward_run(NormBwdParams g, int64_t tiles, float* scratch, Launch launch) {
  const int64_t R = g.fwd.rows;
  tiles = tiles < 1 ? 1 : tiles > R ? R : tiles;
  g.tile_rows = (R + tiles - 1) / tiles;
  g.tiles = (R + g.tile_rows - 1) / g.tile_rows;
  g.partial = scratch;
  launch(dim3(unsigned((R + kNWarps - 1) / kNWarps)), dim3(kNWarps * kLanes), norm_bwd_kernel<kNWarps>, g);
  if (g.dweight) {
    launch(dim3(unsigned(g.tiles), unsigned((g.fwd.cols + kLanes - 1) / kLanes)), dim3(kLanes), norm_param_partial_kernel, g);
    launch(dim3(unsigned((g.fwd.cols + 255) / 256)), dim3(256), norm_param_finish_kernel, g);
  }
}

LS_KERNELS_END
}  // namespace longseq::cuda
