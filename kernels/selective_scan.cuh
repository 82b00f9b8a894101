// Selective scan forward kernel source, compiled by nvcc (kernels/selective_scan.cu) and by the C++
// compiler under kernels/emu/cuda_emu.h (tests/unit/test_kernel_emu.cpp), so CPU tests run this
// very code. One block per (32 channels, batch): lane = channel, so a warp's load of one token is
// one 128-byte line of the token-major (B, L, D) tensors and B_t, C_t are one broadcast load shared
// by 32 channels; warp = a run of kNItems tokens of the chunk (kNWarps x kNItems tokens). For each
// state n the pairs (a_t, b_t) = (exp2(delta_t A[d,n] log2 e), delta_t B_t[n] u_t) are combined
// sequentially within a thread, then across warps (warp_exclusive_scan); the state after each chunk
// is carried in shared memory, which is also how the initial state enters and the final state
// leaves (mamba_ssm's kernel has neither). y accumulates C_t[n] h_t[n] over n in registers; the D
// skip and SiLU(z) gating are applied before one store.
#pragma once

#include "core/dtype.h"
#include "kernels/block_scan.cuh"
#include "kernels/selective_scan.h"

#include <cmath>

namespace longseq::cuda {

// h_t = a h_{t-1} + b, as a pair that composes associatively: (p then q).
struct ScanPair {
  float a, b;
};
LS_HD ScanPair scan_combine(ScanPair p, ScanPair q) { return {p.a * q.a, q.a * p.b + q.b}; }
LS_HD float softplus_f(float x) { return x <= 20.0f ? log1pf(expf(x)) : x; }
LS_HD float silu_f(float x) { return x / (1.0f + expf(-x)); }

template <int kNWarps, int kNItems>
__global__ void selective_scan_fwd_kernel(SelectiveScanParams p) {
  constexpr int kChunk = kNWarps * kNItems;
  constexpr float kLog2e = 1.4426950408889634f;
  __shared__ ScanPair partial[kNWarps][kLanes];
  __shared__ float running[kScanMaxStates][kLanes];  // state h[n] of each lane's channel before the chunk
  const int lane = int(threadIdx.x) % kLanes, warp = int(threadIdx.x) / kLanes;
  const int64_t D = p.channels, N = p.states, L = p.length;
  const int64_t d = int64_t(blockIdx.x) * kLanes + lane, b = blockIdx.y;
  const bool live = d < D;  // the last block's spare lanes compute on zeros and store nothing
  for (int64_t n = warp; n < N; n += kNWarps) running[n][lane] = live && p.h0 ? p.h0[(b * D + d) * N + n] : 0.0f;
  __syncthreads();
  const float dskip = live && p.Dskip ? p.Dskip[d] : 0.0f, bias = live && p.delta_bias ? p.delta_bias[d] : 0.0f;
  for (int64_t c0 = 0; c0 < L; c0 += kChunk) {
    const int64_t t0 = c0 + int64_t(warp) * kNItems;
    float u[kNItems], dt[kNItems], out[kNItems];
    for (int i = 0; i < kNItems; ++i) {
      const int64_t t = t0 + i;
      const bool in = live && t < L;
      u[i] = in ? p.u[b * p.u_b + t * p.u_l + d] : 0.0f;
      const float raw = in ? p.delta[b * p.delta_b + t * p.delta_l + d] + bias : 0.0f;
      dt[i] = in ? (p.softplus ? softplus_f(raw) : raw) : 0.0f;  // outside: a = 1, b = 0 keeps the state
      out[i] = dskip * u[i];
    }
    for (int64_t n = 0; n < N; ++n) {
      const float A2 = live ? p.A[d * N + n] * kLog2e : 0.0f;
      ScanPair local[kNItems];
      ScanPair acc{1.0f, 0.0f};
      for (int i = 0; i < kNItems; ++i) {
        const int64_t t = t0 + i;
        const float Bt = t < L ? p.Bm[b * p.B_b + t * p.B_l + n] : 0.0f;
        acc = scan_combine(acc, {exp2f(dt[i] * A2), dt[i] * Bt * u[i]});
        local[i] = acc;
      }
      const float h_before = running[n][lane];  // written below only after the scan's barriers
      ScanPair total;
      const ScanPair prefix = warp_exclusive_scan<kNWarps>(acc, scan_combine, ScanPair{1.0f, 0.0f}, partial, &total);
      for (int i = 0; i < kNItems; ++i) {
        const int64_t t = t0 + i;
        if (t >= L) break;
        const ScanPair q = scan_combine(prefix, local[i]);
        out[i] += p.Cm[b * p.C_b + t * p.C_l + n] * (q.a * h_before + q.b);
      }
      if (warp == 0) running[n][lane] = total.a * h_before + total.b;
    }
    for (int i = 0; i < kNItems; ++i) {
      const int64_t t = t0 + i;
      if (!live || t >= L) break;
      const float g = p.z ? silu_f(p.z[b * p.z_b + t * p.z_l + d]) : 1.0f;
      p.y[b * p.y_b + t * p.y_l + d] = out[i] * g;
    }
    __syncthreads();  // running[] of this chunk is complete before the next chunk reads it
  }
  if (live && p.h_last)
    for (int64_t n = warp; n < N; n += kNWarps) p.h_last[(b * D + d) * N + n] = running[n][lane];
}

}  // namespace longseq::cuda
