// Selective scan forward kernel source, compiled by nvcc (kernels/selective_scan.cu) and by the C++
// compiler under kernels/emu/cuda_emu.h (tests/unit/test_kernel_emu.cpp), so CPU tests run this
// very code. One block per (32 channels, batch): lane = channel, so a warp's load of one token is
// one 128-byte line of the token-major (B, L, D) tensors and B_t, C_t are one broadcast load shared
// by 32 channels; warp = a run of kNItems tokens of the chunk (kNWarps x kNItems tokens). For each
// state n the pairs (a_t, b_t) = (exp2(delta_t A[d,n] log2 e), delta_t B_t[n] u_t) are combined
// sequentially within a thread, then across warps (warp_exclusive_scan); the state after each chunk
// is carried in shared memory, which is also how the initial state enters and the final state
// leaves (mamba_ssm's kernel has neither). y accumulates C_t[n] h_t[n] over n in registers; the D
// skip and SiLU(z) gating are applied before one store. A block walks its chunks in sequence, so a
// long L with few channels and batches is cut into segments run by separate blocks
// (selective_scan_segmented): blocks = (D / 32) x B x segments.
#pragma once

#include "kernels/half.h"
#include "kernels/activations.h"
#include "kernels/block_scan.cuh"
#include "kernels/selective_scan.h"
#include "kernels/storage.cuh"

#include <cmath>

namespace longseq::cuda {
LS_KERNELS_BEGIN

// h_t = a h_{t-1} + b, as a pair that composes associatively: (p then q).
struct ScanPair {
  float a, b;
};
LS_HD ScanPair scan_combine(ScanPair p, ScanPair q) { return {p.a * q.a, q.a * p.b + q.b}; }

// One block: 32 channels x one batch x one segment (blockIdx.z) of the sequence. With p.y null it is
// pass 1 of the segmented scan: from a zero state, it writes the segment's final state and delta sum.
// kPacked (p.cu_seqlens set) is a template flag so the common path keeps its registers.
template <int kNWarps, int kNItems, bool kPacked, class T>
__global__ void selective_scan_fwd_kernel(SelectiveScanParams p) {
  constexpr int kChunk = kNWarps * kNItems;
  constexpr float kLog2e = 1.4426950408889634f;
  static_assert(kNItems <= 32, "token flags are bits of a 32-bit mask");
  __shared__ ScanPair partial[kNWarps][kLanes];
  __shared__ float running[kScanMaxStates][kLanes];  // state h[n] of each lane's channel before the chunk
  __shared__ float dt_sum[kNWarps][kLanes], reset_any[kNWarps][kLanes];
  const int lane = int(threadIdx.x) % kLanes, warp = int(threadIdx.x) / kLanes;
  const int64_t D = p.channels, N = p.states, S = p.segments;
  const int64_t d = int64_t(blockIdx.x) * kLanes + lane, b = blockIdx.y, s = blockIdx.z;
  const int64_t begin = S == 1 ? 0 : s * p.segment_len;
  const int64_t L = S == 1 || begin + p.segment_len > p.length ? p.length : begin + p.segment_len;  // this segment's end
  const bool live = d < D, outputs = p.y != nullptr;  // the last block's spare lanes compute on zeros and store nothing
  constexpr bool packed = kPacked;
  const float* h0 = nullptr;  // this block's initial state, D x N (packed: zeros; sequences inject their own)
  if (outputs) h0 = S > 1 ? p.seg_h0 + (b * S + s) * D * N : p.h0 && !packed ? p.h0 + b * D * N : nullptr;
  for (int64_t n = warp; n < N; n += kNWarps) running[n][lane] = live && h0 ? h0[d * N + n] : 0.0f;
  __syncthreads();
  const float dskip = live && p.Dskip ? p.Dskip[d] : 0.0f, bias = live && p.delta_bias ? p.delta_bias[d] : 0.0f;
  float my_dt_sum = 0.0f, my_reset = 0.0f;
  for (int64_t c0 = begin; c0 < L; c0 += kChunk) {
    const int64_t t0 = c0 + int64_t(warp) * kNItems;
    float u[kNItems], dt[kNItems], out[kNItems];
    int seq[kNItems] = {};  // packed: the sequence of each token
    unsigned starts = 0, ends = 0;  // packed: bit i = token i opens / closes its sequence
    if constexpr (packed) {
      int64_t lo = 0, hi = p.n_seqs - 1;  // the last k with cu_seqlens[k] <= t0
      while (lo < hi) {
        const int64_t mid = (lo + hi + 1) / 2;
        if (p.cu_seqlens[mid] <= t0) lo = mid; else hi = mid - 1;
      }
      for (int i = 0; i < kNItems; ++i) {
        const int64_t t = t0 + i;
        while (lo + 1 < p.n_seqs && p.cu_seqlens[lo + 1] <= t) ++lo;
        seq[i] = int(lo);
        if (t < L && t == p.cu_seqlens[lo]) starts |= 1u << i;
        if (t < L && t == p.cu_seqlens[lo + 1] - 1) ends |= 1u << i;
      }
      if (starts) my_reset = 1.0f;
    }
    for (int i = 0; i < kNItems; ++i) {
      const int64_t t = t0 + i;
      const bool in = live && t < L;
      u[i] = in ? load_as<T>(p.u, b * p.u_b + t * p.u_l + d) : 0.0f;
      const float raw = in ? load_as<T>(p.delta, b * p.delta_b + t * p.delta_l + d) + bias : 0.0f;
      dt[i] = in ? (p.softplus ? softplus(raw) : raw) : 0.0f;  // outside: a = 1, b = 0 keeps the state
      out[i] = dskip * u[i];
      my_dt_sum += dt[i];
    }
    for (int64_t n = 0; n < N; ++n) {
      const float A2 = live ? p.A[d * N + n] * kLog2e : 0.0f;
      ScanPair local[kNItems];
      ScanPair acc{1.0f, 0.0f};
      for (int i = 0; i < kNItems; ++i) {
        const int64_t t = t0 + i;
        const float Bt = t < L ? load_as<T>(p.Bm, b * p.B_b + t * p.B_l + n) : 0.0f;
        ScanPair e{exp2f(dt[i] * A2), dt[i] * Bt * u[i]};
        if (starts >> i & 1u) e = {0.0f, e.b + (p.h0 && live ? e.a * p.h0[(int64_t(seq[i]) * D + d) * N + n] : 0.0f)};
        acc = scan_combine(acc, e);
        local[i] = acc;
      }
      const float h_before = running[n][lane];  // written below only after the scan's barriers
      ScanPair total;
      const ScanPair prefix = warp_exclusive_scan<kNWarps>(acc, scan_combine, ScanPair{1.0f, 0.0f}, partial, &total);
      if (outputs)
        for (int i = 0; i < kNItems; ++i) {
          const int64_t t = t0 + i;
          if (t >= L) break;
          const ScanPair q = scan_combine(prefix, local[i]);
          const float h = q.a * h_before + q.b;
          out[i] += load_as<T>(p.Cm, b * p.C_b + t * p.C_l + n) * h;
          if ((ends >> i & 1u) && p.h_last && live) p.h_last[(int64_t(seq[i]) * D + d) * N + n] = h;
        }
      if (warp == 0) running[n][lane] = total.a * h_before + total.b;
    }
    if (outputs)
      for (int i = 0; i < kNItems; ++i) {
        const int64_t t = t0 + i;
        if (!live || t >= L) break;
        const float g = p.z ? silu(load_as<T>(p.z, b * p.z_b + t * p.z_l + d)) : 1.0f;
        store_f32(static_cast<T*>(p.y) + b * p.y_b + t * p.y_l + d, out[i] * g);
      }
    __syncthreads();  // running[] of this chunk is complete before the next chunk reads it
  }
  if (!outputs) {  // pass 1: the segment's state from zero and its delta sum
    dt_sum[warp][lane] = my_dt_sum;
    reset_any[warp][lane] = my_reset;
    __syncthreads();
    if (!live) return;
    if (warp == 0) {
      float sum = 0.0f, reset = 0.0f;
      for (int w = 0; w < kNWarps; ++w) sum += dt_sum[w][lane], reset = reset > reset_any[w][lane] ? reset : reset_any[w][lane];
      p.seg_dt[(b * S + s) * D + d] = sum;
      p.seg_reset[(b * S + s) * D + d] = reset;
    }
    for (int64_t n = warp; n < N; n += kNWarps) p.seg_state[((b * S + s) * D + d) * N + n] = running[n][lane];
  } else if (live && S == 1 && p.h_last && !packed) {
    for (int64_t n = warp; n < N; n += kNWarps) p.h_last[(b * D + d) * N + n] = running[n][lane];
  }
}

// Pass 2: one thread per (b, d, n) walks the segments: seg_h0[s] = the state entering segment s,
// h_last = the state after the last. A segment's decay is exp(A sum(delta)) = the product of its
// per-token decays, or 0 when a packed sequence starts inside it.
__global__ void selective_scan_segment_states_kernel(SelectiveScanParams p) {
  constexpr float kLog2e = 1.4426950408889634f;
  const int64_t D = p.channels, N = p.states, S = p.segments;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.batch * D * N) return;
  const int64_t b = i / (D * N), d = (i / N) % D, n = i % N;
  const float A2 = p.A[d * N + n] * kLog2e;
  const bool packed = p.cu_seqlens != nullptr;  // then sequences carry their own initial and final states
  float h = p.h0 && !packed ? p.h0[i] : 0.0f;
  for (int64_t s = 0; s < S; ++s) {
    const int64_t bsd = (b * S + s) * D + d;
    p.seg_h0[bsd * N + n] = h;
    const float decay = p.seg_reset[bsd] > 0.0f ? 0.0f : exp2f(A2 * p.seg_dt[bsd]);  // a restart forgets what came in
    h = decay * h + p.seg_state[bsd * N + n];
  }
  if (p.h_last && !packed) p.h_last[i] = h;
}

// Scratch floats the segmented scan needs for `segments` pieces.
inline int64_t selective_scan_scratch(const SelectiveScanParams& p, int64_t segments) {
  return segments <= 1 ? 0 : p.batch * segments * p.channels * (2 * p.states + 2);
}

// Cuts p.length into at most `segments` pieces of whole kChunk-token chunks, none empty (sets
// p.segments and p.segment_len).
inline void plan_segments(SelectiveScanParams& p, int64_t segments, int64_t chunk) {
  const int64_t chunks = (p.length + chunk - 1) / chunk;
  p.segments = segments < 1 ? 1 : segments > chunks ? (chunks > 0 ? chunks : 1) : segments;
  p.segment_len = (chunks + p.segments - 1) / p.segments * chunk;
  p.segments = p.segment_len > 0 ? (p.length + p.segment_len - 1) / p.segment_len : 1;
}

// Passes 1 and 2 of the segmented scan for a planned p with p.segments > 1: every segment's true
// initial state (seg_h0) and delta sum (seg_dt), in `scratch` (selective_scan_scratch floats).
template <int kNWarps, int kNItems, bool kPacked, class T, class Launch>
void selective_scan_segment_starts(SelectiveScanParams& p, float* scratch, Launch launch) {
  const int64_t BSD = p.batch * p.segments * p.channels;
  p.seg_state = scratch;
  p.seg_h0 = scratch + BSD * p.states;
  p.seg_dt = scratch + 2 * BSD * p.states;
  p.seg_reset = p.seg_dt + BSD;
  SelectiveScanParams pass1 = p;
  pass1.y = nullptr;
  launch(dim3(unsigned((p.channels + kLanes - 1) / kLanes), unsigned(p.batch), unsigned(p.segments)), dim3(kNWarps * kLanes),
         selective_scan_fwd_kernel<kNWarps, kNItems, kPacked, T>, pass1);
  constexpr unsigned kThreads = 256;
  launch(dim3(unsigned((p.batch * p.channels * p.states + kThreads - 1) / kThreads)), dim3(kThreads),
         selective_scan_segment_states_kernel, p);
}

// The passes of selective_scan_segmented for one kernel variant.
template <int kNWarps, int kNItems, bool kPacked, class T, class Launch>
void selective_scan_passes(SelectiveScanParams p, int64_t segments, float* scratch, Launch launch) {
  plan_segments(p, segments, kNWarps * kNItems);
  if (p.segments > 1) selective_scan_segment_starts<kNWarps, kNItems, kPacked, T>(p, scratch, launch);
  launch(dim3(unsigned((p.channels + kLanes - 1) / kLanes), unsigned(p.batch), unsigned(p.segments)), dim3(kNWarps * kLanes),
         selective_scan_fwd_kernel<kNWarps, kNItems, kPacked, T>, p);
}

// Runs the scan in `segments` pieces of whole kNWarps x kNItems chunks (1: one pass). launch(grid,
// block, kernel, params) runs a kernel (a <<<>>> launch on a device, emu::launch on the CPU);
// scratch holds selective_scan_scratch(p, segments) floats.
template <int kNWarps, int kNItems, class Launch>
void selective_scan_segmented(SelectiveScanParams p, int64_t segments, float* scratch, Launch launch) {
  dispatch_storage(p.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (p.cu_seqlens)
      selective_scan_passes<kNWarps, kNItems, true, T>(p, segments, scratch, launch);
    else
      selective_scan_passes<kNWarps, kNItems, false, T>(p, segments, scratch, launch);
  });
}

LS_KERNELS_END
}  // namespace longseq::cuda
