// Causal conv1d kernel source, compiled by nvcc (kernels/causal_conv1d.cu) and under
// kernels/emu/cuda_emu.h by the CPU tests. Lane = channel, so each warp's load of a token is one
// 128-byte line of the token-major tensors; a thread runs kNItems consecutive tokens of its channel
// with the W - 1 + kNItems inputs they need in registers (W is a template parameter, so the window
// is unrolled and never spills to local memory). The op is memory-bound: per (token, channel) 4
// bytes in and 4 out, plus (W - 1) / kNItems re-read inputs at run edges (from L1/L2).
// Backward recomputes the pre-activation (for SiLU's derivative) rather than storing it; dweight and
// dbias are sums over B x L: each block adds its tokens in a fixed order and writes one partial,
// and a last kernel adds the partials in (b, tile) order, so the gradients are deterministic.
#pragma once

#include "kernels/causal_conv1d.h"
#include "kernels/activations.h"
#include "kernels/block_scan.cuh"  // kLanes

#include <type_traits>

namespace longseq::cuda {
LS_KERNELS_BEGIN

// The input at time t of channel d (t < 0: the initial state's row W - 1 + t, or zero; t >= L: zero).
__device__ inline float conv_input(const CausalConv1dParams& p, int64_t b, int64_t t, int64_t d) {
  if (t >= p.length) return 0.0f;
  if (t >= 0) return p.x[b * p.x_b + t * p.x_l + d];
  return p.init && t >= -(p.width - 1) ? p.init[(b * (p.width - 1) + p.width - 1 + t) * p.channels + d] : 0.0f;
}

// Grid: x = runs of kNWarps x kNItems tokens, y = channel groups of 32, z = batch.
template <int kW, int kNItems>
__global__ void causal_conv1d_fwd_kernel(CausalConv1dParams p) {
  const int lane = int(threadIdx.x) % kLanes, warp = int(threadIdx.x) / kLanes;
  const int64_t d = int64_t(blockIdx.y) * kLanes + lane, b = blockIdx.z;
  const int64_t t0 = (int64_t(blockIdx.x) * (blockDim.x / kLanes) + warp) * kNItems;
  if (d >= p.channels || t0 >= p.length) return;
  float w[kW], win[kW - 1 + kNItems];
  for (int k = 0; k < kW; ++k) w[k] = p.weight[d * kW + k];
  for (int j = 0; j < kW - 1 + kNItems; ++j) win[j] = conv_input(p, b, t0 - (kW - 1) + j, d);
  const float bias = p.bias ? p.bias[d] : 0.0f;
  for (int i = 0; i < kNItems; ++i) {
    const int64_t t = t0 + i;
    if (t >= p.length) break;
    float acc = bias;
    for (int k = 0; k < kW; ++k) acc += w[k] * win[i + k];
    p.out[b * p.out_b + t * p.out_l + d] = p.silu ? silu(acc) : acc;
  }
}

// One thread per (b, j, d): final_state[b, j, d] = the input at time L - (W - 1) + j.
__global__ void causal_conv1d_final_state_kernel(CausalConv1dParams p) {
  const int64_t W1 = p.width - 1, i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.batch * W1 * p.channels) return;
  const int64_t b = i / (W1 * p.channels), j = (i / p.channels) % W1, d = i % p.channels;
  p.final_state[i] = conv_input(p, b, p.length - W1 + j, d);
}

// Grid: x = tiles of g.tile_len tokens, y = channel groups, z = batch. A thread walks its channel's
// runs of kNItems tokens in the tile (the warps interleaved), computing dx for its tokens from the
// upstream gradient g_t = dout_t act'(pre_t) of tokens t .. t + W - 1.
template <int kW, int kNItems, int kNWarps>
__global__ void __launch_bounds__(kNWarps * kLanes, 2) causal_conv1d_bwd_kernel(CausalConv1dBwdParams g) {
  constexpr int kExt = kNItems + kW - 1;  // tokens whose upstream gradient the run's dx needs
  __shared__ float sums[kNWarps][kW + 1][kLanes];
  const CausalConv1dParams& p = g.fwd;
  const int lane = int(threadIdx.x) % kLanes, warp = int(threadIdx.x) / kLanes;
  const int64_t d = int64_t(blockIdx.y) * kLanes + lane, b = blockIdx.z, tile = blockIdx.x;
  const int64_t tile_begin = tile * g.tile_len, tile_end = tile_begin + g.tile_len < p.length ? tile_begin + g.tile_len : p.length;
  const bool live = d < p.channels;
  float w[kW], dw[kW + 1] = {};  // dw[kW] is dbias
  for (int k = 0; k < kW; ++k) w[k] = live ? p.weight[d * kW + k] : 0.0f;
  const float bias = live && p.bias ? p.bias[d] : 0.0f;
  for (int64_t t0 = tile_begin + int64_t(warp) * kNItems; live && t0 < tile_end; t0 += int64_t(kNWarps) * kNItems) {
    float win[kExt + kW - 1], gt[kExt];  // inputs t0 - (W - 1) .. t0 + kExt - 1; g of t0 .. t0 + kExt - 1
    for (int j = 0; j < kExt + kW - 1; ++j) win[j] = conv_input(p, b, t0 - (kW - 1) + j, d);
    for (int j = 0; j < kExt; ++j) {
      const int64_t t = t0 + j;
      if (t >= p.length) {
        gt[j] = 0.0f;
        continue;
      }
      const float dy = g.dout[b * g.dout_b + t * g.dout_l + d];
      if (p.silu) {
        float pre = bias;
        for (int k = 0; k < kW; ++k) pre += w[k] * win[j + k];
        gt[j] = dy * silu_grad(pre);
      } else {
        gt[j] = dy;
      }
    }
    for (int i = 0; i < kNItems; ++i) {  // x at t0 + i feeds outputs t0 + i + (W - 1) - k
      const int64_t t = t0 + i;
      if (t >= tile_end) break;
      float dx = 0.0f;
      for (int k = 0; k < kW; ++k) dx += w[k] * gt[i + kW - 1 - k];
      g.dx[b * g.dx_b + t * g.dx_l + d] = dx;
      for (int k = 0; k < kW; ++k) dw[k] += gt[i] * win[i + k];
      dw[kW] += gt[i];
    }
    if (t0 == 0 && g.dinit)  // the initial state's rows feed outputs 0 .. W - 2
      for (int j = 0; j < kW - 1; ++j) {
        float di = 0.0f;  // the input at time j - (W - 1) feeds output j - k through weight k
        for (int k = 0; k <= j; ++k) di += w[k] * gt[j - k];
        g.dinit[(b * (kW - 1) + j) * p.channels + d] = di;
      }
  }
  for (int k = 0; k <= kW; ++k) sums[warp][k][lane] = dw[k];
  __syncthreads();
  if (warp == 0 && live) {
    float* out = g.partial + ((b * g.tiles + tile) * p.channels + d) * (kW + 1);
    for (int k = 0; k <= kW; ++k) {
      float s = 0.0f;
      for (int v = 0; v < kNWarps; ++v) s += sums[v][k][lane];
      out[k] = s;
    }
  }
}

// One thread per channel: dweight and dbias from the partials, in (b, tile) order.
template <int kW>
__global__ void causal_conv1d_param_grads_kernel(CausalConv1dBwdParams g) {
  const CausalConv1dParams& p = g.fwd;
  const int64_t d = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (d >= p.channels) return;
  float s[kW + 1] = {};
  for (int64_t bt = 0; bt < p.batch * g.tiles; ++bt)
    for (int k = 0; k <= kW; ++k) s[k] += g.partial[(bt * p.channels + d) * (kW + 1) + k];
  for (int k = 0; k < kW; ++k) g.dweight[d * kW + k] = s[k];
  if (g.dbias) g.dbias[d] = s[kW];
}

// Drivers: launch(grid, block, kernel, params) as for the selective scan (a <<<>>> launch on a
// device, emu::launch on the CPU).
template <int kW, int kNItems, int kNWarps, class Launch>
void causal_conv1d_forward_run(const CausalConv1dParams& p, Launch launch) {
  constexpr int64_t kRun = int64_t(kNWarps) * kNItems;
  launch(dim3(unsigned((p.length + kRun - 1) / kRun), unsigned((p.channels + kLanes - 1) / kLanes), unsigned(p.batch)),
         dim3(kNWarps * kLanes), causal_conv1d_fwd_kernel<kW, kNItems>, p);
  if (p.final_state && kW > 1) {
    constexpr unsigned kThreads = 256;
    launch(dim3(unsigned((p.batch * (kW - 1) * p.channels + kThreads - 1) / kThreads)), dim3(kThreads), causal_conv1d_final_state_kernel, p);
  }
}

// Floats of scratch causal_conv1d_backward_run needs for `tiles` pieces of L.
inline int64_t causal_conv1d_bwd_scratch(const CausalConv1dParams& p, int64_t tiles) {
  return p.batch * tiles * p.channels * (p.width + 1);
}

// `tiles` pieces of whole kNItems-token runs (fewer when L is short).
template <int kW, int kNItems, int kNWarps, class Launch>
void causal_conv1d_backward_run(CausalConv1dBwdParams g, int64_t tiles, float* scratch, Launch launch) {
  const int64_t runs = (g.fwd.length + kNItems - 1) / kNItems;
  tiles = tiles < 1 ? 1 : tiles > runs ? runs : tiles;
  g.tile_len = (runs + tiles - 1) / tiles * kNItems;
  g.tiles = (g.fwd.length + g.tile_len - 1) / g.tile_len;
  g.partial = scratch;
  launch(dim3(unsigned(g.tiles), unsigned((g.fwd.channels + kLanes - 1) / kLanes), unsigned(g.fwd.batch)), dim3(kNWarps * kLanes),
         causal_conv1d_bwd_kernel<kW, kNItems, kNWarps>, g);
  constexpr unsigned kThreads = 256;
  launch(dim3(unsigned((g.fwd.channels + kThreads - 1) / kThreads)), dim3(kThreads), causal_conv1d_param_grads_kernel<kW>, g);
}

// ---- filters wider than kConvRegisterWidth: taps and inputs staged in shared memory -------------
// A block owns 32 channels (lane = channel) x kConvWideTile tokens: it loads the channels' taps
// transposed (taps[k][lane]) and the tile's kConvWideTile + W - 1 inputs once, then each warp
// computes every kNWarps-th token of the tile from shared memory (one broadcast-free, conflict-free
// row per access). The backward is two such passes: dx, the same sum over the upstream gradient run
// the other way (plus the initial state's rows), and the tap sums per tile of tokens, reduced in a
// fixed order as above. SiLU is not fused here (no wide filter of the families uses it).
inline constexpr int kConvWideTile = 64;

using ConvWideTaps = float[kConvMaxWidth][kLanes];
using ConvWideWindow = float[kConvWideTile + kConvMaxWidth - 1][kLanes];

__device__ inline void conv_wide_load_taps(const CausalConv1dParams& p, int64_t d0, ConvWideTaps& taps) {
  for (int64_t i = threadIdx.x; i < p.width * kLanes; i += blockDim.x) {
    const int64_t k = i / kLanes, lane = i % kLanes, d = d0 + lane;
    taps[k][lane] = d < p.channels ? p.weight[d * p.width + k] : 0.0f;
  }
}

// Grid: x = tiles of kConvWideTile tokens, y = channel groups, z = batch.
// out[t] = bias + sum_k w[k] x[t - (W - 1) + k].
__global__ void causal_conv1d_wide_fwd_kernel(CausalConv1dParams p) {
  __shared__ ConvWideTaps taps;
  __shared__ ConvWideWindow win;
  const int lane = int(threadIdx.x) % kLanes, warp = int(threadIdx.x) / kLanes, warps = int(blockDim.x) / kLanes;
  const int64_t d0 = int64_t(blockIdx.y) * kLanes, d = d0 + lane, b = blockIdx.z, t0 = int64_t(blockIdx.x) * kConvWideTile, W = p.width;
  conv_wide_load_taps(p, d0, taps);
  for (int64_t i = threadIdx.x; i < (kConvWideTile + W - 1) * kLanes; i += blockDim.x) {
    const int64_t j = i / kLanes, dd = d0 + i % kLanes;
    win[j][i % kLanes] = dd < p.channels ? conv_input(p, b, t0 - (W - 1) + j, dd) : 0.0f;
  }
  __syncthreads();
  if (d >= p.channels) return;
  const float bias = p.bias ? p.bias[d] : 0.0f;
  for (int64_t i = warp; i < kConvWideTile && t0 + i < p.length; i += warps) {
    float acc = bias;
    for (int64_t k = 0; k < W; ++k) acc += taps[k][lane] * win[i + k][lane];
    p.out[b * p.out_b + (t0 + i) * p.out_l + d] = acc;
  }
}

// Grid as the forward's over output times first .. L - 1, first = -(W - 1) when dinit is wanted
// (those rows are the initial state's gradients). dx[t] = sum_k w[k] dout[t + (W - 1) - k].
__global__ void causal_conv1d_wide_dx_kernel(CausalConv1dBwdParams g) {
  __shared__ ConvWideTaps taps;
  __shared__ ConvWideWindow up;  // dout at t0 .. t0 + kConvWideTile + W - 2
  const CausalConv1dParams& p = g.fwd;
  const int lane = int(threadIdx.x) % kLanes, warp = int(threadIdx.x) / kLanes, warps = int(blockDim.x) / kLanes;
  const int64_t W = p.width, first = g.dinit ? -(W - 1) : 0;
  const int64_t d0 = int64_t(blockIdx.y) * kLanes, d = d0 + lane, b = blockIdx.z, t0 = first + int64_t(blockIdx.x) * kConvWideTile;
  conv_wide_load_taps(p, d0, taps);
  for (int64_t i = threadIdx.x; i < (kConvWideTile + W - 1) * kLanes; i += blockDim.x) {
    const int64_t j = i / kLanes, dd = d0 + i % kLanes, t = t0 + j;
    up[j][i % kLanes] = dd < p.channels && t >= 0 && t < p.length ? g.dout[b * g.dout_b + t * g.dout_l + dd] : 0.0f;
  }
  __syncthreads();
  if (d >= p.channels) return;
  for (int64_t i = warp; i < kConvWideTile && t0 + i < p.length; i += warps) {
    float acc = 0.0f;
    for (int64_t k = 0; k < W; ++k) acc += taps[k][lane] * up[i + (W - 1) - k][lane];
    const int64_t t = t0 + i;
    if (t >= 0)
      g.dx[b * g.dx_b + t * g.dx_l + d] = acc;
    else
      g.dinit[(b * (W - 1) + (W - 1) + t) * p.channels + d] = acc;
  }
}

// Grid: x = tiles of g.tile_len tokens, y = channel groups, z = batch. Thread (lane, warp) sums
// dout[t] x[t - (W - 1) + k] over the tile for k = warp, warp + kNWarps, ... (k = W: dout, dbias).
template <int kNWarps>
__global__ void causal_conv1d_wide_dw_kernel(CausalConv1dBwdParams g) {
  constexpr int kPerThread = (kConvMaxWidth + kNWarps) / kNWarps;  // taps + bias over the warps
  __shared__ ConvWideWindow win;
  __shared__ float up[kConvWideTile][kLanes];
  const CausalConv1dParams& p = g.fwd;
  const int lane = int(threadIdx.x) % kLanes, warp = int(threadIdx.x) / kLanes;
  const int64_t W = p.width, d0 = int64_t(blockIdx.y) * kLanes, d = d0 + lane, b = blockIdx.z, tile = blockIdx.x;
  const int64_t begin = tile * g.tile_len, end = begin + g.tile_len < p.length ? begin + g.tile_len : p.length;
  float acc[kPerThread] = {};
  for (int64_t t0 = begin; t0 < end; t0 += kConvWideTile) {
    const int64_t n = end - t0 < kConvWideTile ? end - t0 : kConvWideTile;
    __syncthreads();  // the previous round's reads are done
    for (int64_t i = threadIdx.x; i < (n + W - 1) * kLanes; i += blockDim.x) {
      const int64_t j = i / kLanes, dd = d0 + i % kLanes;
      win[j][i % kLanes] = dd < p.channels ? conv_input(p, b, t0 - (W - 1) + j, dd) : 0.0f;
    }
    for (int64_t i = threadIdx.x; i < n * kLanes; i += blockDim.x) {
      const int64_t j = i / kLanes, dd = d0 + i % kLanes;
      up[j][i % kLanes] = dd < p.channels ? g.dout[b * g.dout_b + (t0 + j) * g.dout_l + dd] : 0.0f;
    }
    __syncthreads();
    for (int c = 0; c < kPerThread; ++c) {
      const int64_t k = warp + int64_t(c) * kNWarps;
      if (k > W) break;
      float s = 0.0f;
      for (int64_t i = 0; i < n; ++i) s += up[i][lane] * (k < W ? win[i + k][lane] : 1.0f);
      acc[c] += s;
    }
  }
  if (d >= p.channels) return;
  float* out = g.partial + ((b * g.tiles + tile) * p.channels + d) * (W + 1);
  for (int c = 0; c < kPerThread; ++c) {
    const int64_t k = warp + int64_t(c) * kNWarps;
    if (k > W) break;
    out[k] = acc[c];
  }
}

// One thread per (d, k), k <= W: dweight (and dbias, k = W) from the partials in (b, tile) order.
__global__ void causal_conv1d_wide_param_grads_kernel(CausalConv1dBwdParams g) {
  const CausalConv1dParams& p = g.fwd;
  const int64_t W = p.width, i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.channels * (W + 1)) return;
  const int64_t d = i / (W + 1), k = i % (W + 1);
  float s = 0.0f;
  for (int64_t bt = 0; bt < p.batch * g.tiles; ++bt) s += g.partial[(bt * p.channels + d) * (W + 1) + k];
  if (k < W)
    g.dweight[d * W + k] = s;
  else if (g.dbias)
    g.dbias[d] = s;
}

// Calls f(std::integral_constant<int, W>) for the runtime width 1..kConvRegisterWidth.
template <class F>
void dispatch_conv_width(int64_t W, F f) {
  switch (W) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    default: return;
  }
}

// The drivers for any width 1..kConvMaxWidth: the register kernels up to kConvRegisterWidth taps,
// the shared-memory ones past it (the final state likewise).
template <int kNItems, int kNWarps, class Launch>
void causal_conv1d_forward_any(const CausalConv1dParams& p, Launch launch) {
  if (p.width <= kConvRegisterWidth)
    return dispatch_conv_width(p.width, [&](auto W) { causal_conv1d_forward_run<W.value, kNItems, kNWarps>(p, launch); });
  const unsigned groups = unsigned((p.channels + kLanes - 1) / kLanes);
  launch(dim3(unsigned((p.length + kConvWideTile - 1) / kConvWideTile), groups, unsigned(p.batch)), dim3(kNWarps * kLanes),
         causal_conv1d_wide_fwd_kernel, p);
  if (p.final_state) {
    constexpr unsigned kThreads = 256;
    launch(dim3(unsigned((p.batch * (p.width - 1) * p.channels + kThreads - 1) / kThreads)), dim3(kThreads), causal_conv1d_final_state_kernel, p);
  }
}

template <int kNItems, int kNWarps, class Launch>
void causal_conv1d_backward_any(CausalConv1dBwdParams g, int64_t tiles, float* scratch, Launch launch) {
  const CausalConv1dParams& p = g.fwd;
  if (p.width <= kConvRegisterWidth)
    return dispatch_conv_width(p.width, [&](auto W) { causal_conv1d_backward_run<W.value, kNItems, kNWarps>(g, tiles, scratch, launch); });
  const int64_t runs = (p.length + kConvWideTile - 1) / kConvWideTile;
  tiles = tiles < 1 ? 1 : tiles > runs ? runs : tiles;
  g.tile_len = (runs + tiles - 1) / tiles * kConvWideTile;
  g.tiles = (p.length + g.tile_len - 1) / g.tile_len;
  g.partial = scratch;
  const unsigned groups = unsigned((p.channels + kLanes - 1) / kLanes);
  const int64_t outputs = p.length + (g.dinit ? p.width - 1 : 0);
  launch(dim3(unsigned((outputs + kConvWideTile - 1) / kConvWideTile), groups, unsigned(p.batch)), dim3(kNWarps * kLanes),
         causal_conv1d_wide_dx_kernel, g);
  launch(dim3(unsigned(g.tiles), groups, unsigned(p.batch)), dim3(kNWarps * kLanes), causal_conv1d_wide_dw_kernel<kNWarps>, g);
  constexpr unsigned kThreads = 256;
  launch(dim3(unsigned((p.channels * (p.width + 1) + kThreads - 1) / kThreads)), dim3(kThreads), causal_conv1d_wide_param_grads_kernel, g);
}

LS_KERNELS_END
}  // namespace longseq::cuda
