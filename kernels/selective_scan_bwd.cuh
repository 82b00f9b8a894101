// Selective scan backward kernel source, compiled by nvcc (kernels/selective_scan.cu) and under
// kernels/emu/cuda_emu.h by the CPU tests. The gradient flowing into the state runs backwards in
// time: with G_t = dL/dh_t and K_t = a_t G_t the part of dL/dh_{t-1} that comes through the
// recurrence, G_t = gy_t C_t + K_{t+1} and K_t = a_t K_{t+1} + a_t gy_t C_t, a linear recurrence of
// the same (a, b) form as the forward, scanned in reverse.
//
// Why it is shaped so:
// - One block owns a piece of L (grid z) of one batch row (grid y) for *all* channels, walking the
//   channel groups of 32 (lane = channel) in turn. dB and dC are sums over channels; owning every
//   channel of its tokens lets a block sum them in a fixed order without atomics, so the gradients
//   are deterministic, and B = 1 still fills the GPU because L is cut into many pieces.
// - Memory stays O(L N + S D N), never O(L D N): the states at the piece starts come from passes 1
//   and 2 of the forward (selective_scan_segment_starts, the forward's own kernel); inside a piece
//   the block recomputes the states at its chunk starts into its own scratch, then walks the chunks
//   in reverse, recomputing each chunk's states in registers.
// - The gradient entering a piece from the later pieces is found like the forward's segment
//   states: pass 1 (kCarryOnly) runs the reverse recurrence of each piece from zero, pass 2 chains
//   the pieces from the last (a piece's decay is exp(A sum(delta)), the forward's seg_dt), pass 3
//   computes every gradient. Per-piece sums of dA, dD, d(delta bias) are reduced in piece order.
// - Registers are capped for two 256-thread blocks per SM (__launch_bounds__): 32-bit indexing of
//   the block scratch and per-chunk row pointers keep it at 128 without spills (ptxas-report).
#pragma once

#include "kernels/selective_scan.cuh"

namespace longseq::cuda {
LS_KERNELS_BEGIN

// The kNItems tokens of one thread: u and delta (+ bias, softplus); zeros outside [.., end) or on
// an idle lane, so that a = 1 and b = 0 there.
template <int kNItems>
__device__ void load_scan_tokens(const SelectiveScanParams& p, int64_t b, int64_t d, int64_t t0, int64_t end, bool live, float bias,
                                 float* u, float* dt) {
  for (int i = 0; i < kNItems; ++i) {
    const int64_t t = t0 + i;
    const bool in = live && t < end;
    u[i] = in ? load_as<float>(p.u, b * p.u_b + t * p.u_l + d) : 0.0f;
    const float raw = in ? load_as<float>(p.delta, b * p.delta_b + t * p.delta_l + d) + bias : 0.0f;
    dt[i] = in ? (p.softplus ? softplus(raw) : raw) : 0.0f;
  }
}

template <int kNWarps, int kNItems, bool kCarryOnly>
__global__ void __launch_bounds__(kNWarps * kLanes, 2) selective_scan_bwd_kernel(SelectiveScanBwdParams g) {
  constexpr int kChunk = kNWarps * kNItems;
  constexpr float kLog2e = 1.4426950408889634f;
  static_assert(2 * kNItems <= kLanes, "a warp's lanes sum the dB and dC of its tokens");
  __shared__ ScanPair partial[kNWarps][kLanes], partial_rev[kNWarps][kLanes];
  __shared__ float lane_sums[2][2][kNWarps][kNItems][kLanes];  // [n parity][dB, dC] terms of each token and channel
  __shared__ float warp_sums[2][kNWarps][kLanes];           // dD, d(delta bias) per warp
  const SelectiveScanParams& p = g.fwd;
  const int lane = int(threadIdx.x) % kLanes, warp = int(threadIdx.x) / kLanes;
  const int64_t D = p.channels, S = p.segments, b = blockIdx.y, s = blockIdx.z;
  const int N = int(p.states);  // <= kScanMaxStates: 32-bit indexing of the block's scratch saves registers
  const int64_t begin = s * p.segment_len, end = begin + p.segment_len < p.length ? begin + p.segment_len : p.length;
  const int64_t chunks = (end - begin + kChunk - 1) / kChunk;
  float* carry = g.blocks + (b * S + s) * g.block_floats;  // [n][lane]: K entering the current chunk from the right
  float* dA_warp = carry + N * kLanes;                      // [warp][n][lane]
  float* chunk_h = dA_warp + kNWarps * N * kLanes;          // [chunk][n][lane]: the state before each chunk
  for (int64_t d0 = 0; d0 < D; d0 += kLanes) {
    const int64_t d = d0 + lane, bsd = (b * S + s) * D + d;
    const bool live = d < D;
    const float dskip = live && p.Dskip ? p.Dskip[d] : 0.0f, bias = live && p.delta_bias ? p.delta_bias[d] : 0.0f;
    for (int n = warp; n < N; n += kNWarps) {
      carry[n * kLanes + lane] = !kCarryOnly && S > 1 && live ? g.seg_carry[bsd * N + n] : 0.0f;
      if (!kCarryOnly)
        chunk_h[n * kLanes + lane] = !live ? 0.0f : S > 1 ? p.seg_h0[bsd * N + n] : p.h0 ? p.h0[(b * D + d) * N + n] : 0.0f;
    }
    if (!kCarryOnly)
      for (int n = 0; n < N; ++n) dA_warp[(warp * N + n) * kLanes + lane] = 0.0f;
    __syncthreads();
    float u[kNItems], dt[kNItems];
    if (!kCarryOnly) {  // the states at this piece's chunk starts
      for (int64_t c = 0; c + 1 < chunks; ++c) {
        load_scan_tokens<kNItems>(p, b, d, begin + c * kChunk + warp * kNItems, end, live, bias, u, dt);
        for (int n = 0; n < N; ++n) {
          const float A2 = live ? p.A[d * N + n] * kLog2e : 0.0f;
          ScanPair acc{1.0f, 0.0f};
          for (int i = 0; i < kNItems; ++i) {
            const int64_t t = begin + c * kChunk + warp * kNItems + i;
            const float Bt = t < end ? load_as<float>(p.Bm, b * p.B_b + t * p.B_l + n) : 0.0f;
            acc = scan_combine(acc, ScanPair{exp2f(dt[i] * A2), dt[i] * Bt * u[i]});
          }
          ScanPair total;
          warp_exclusive_scan<kNWarps>(acc, scan_combine, ScanPair{1.0f, 0.0f}, partial, &total);
          if (warp == 0)  // only warp 0 reads and writes chunk_h here, each lane its own channel
            chunk_h[((c + 1) * N + n) * kLanes + lane] = total.a * chunk_h[(c * N + n) * kLanes + lane] + total.b;
        }
      }
      __syncthreads();
    }
    float dD_sum = 0.0f, dbias_sum = 0.0f;
    for (int64_t c = chunks - 1; c >= 0; --c) {
      const int64_t t0 = begin + c * kChunk + warp * kNItems;
      const float* B_rows = static_cast<const float*>(p.Bm) + b * p.B_b + t0 * p.B_l;  // token i, state n: [i * B_l + n]
      const float* C_rows = static_cast<const float*>(p.Cm) + b * p.C_b + t0 * p.C_l;
      const float* h_chunk = chunk_h + int(c) * N * kLanes + lane;  // [n * kLanes]
      load_scan_tokens<kNItems>(p, b, d, t0, end, live, bias, u, dt);
      float gy[kNItems], ypre[kNItems], du[kNItems], ddt[kNItems];
      for (int i = 0; i < kNItems; ++i) {
        const int64_t t = t0 + i;
        const bool in = live && t < end;
        const float dy = in ? g.dy[b * g.dy_b + t * g.dy_l + d] : 0.0f;
        gy[i] = p.z && in ? dy * silu(load_as<float>(p.z, b * p.z_b + t * p.z_l + d)) : dy;
        ypre[i] = dskip * u[i];
        du[i] = gy[i] * dskip;
        ddt[i] = 0.0f;
      }
      for (int n = 0; n < N; ++n) {
        const float A = live ? p.A[d * N + n] : 0.0f, A2 = A * kLog2e;
        float a[kNItems], Bt[kNItems], Ct[kNItems];
        ScanPair rev{1.0f, 0.0f}, fwd{1.0f, 0.0f};  // this thread's tokens, last to first / first to last
        for (int i = 0; i < kNItems; ++i) {
          const int64_t t = t0 + i;
          Bt[i] = t < end ? B_rows[i * p.B_l + n] : 0.0f;
          Ct[i] = t < end ? C_rows[i * p.C_l + n] : 0.0f;
          a[i] = exp2f(dt[i] * A2);
          if (!kCarryOnly) fwd = scan_combine(fwd, ScanPair{a[i], dt[i] * Bt[i] * u[i]});
        }
        for (int i = kNItems - 1; i >= 0; --i) rev = scan_combine(rev, ScanPair{a[i], a[i] * gy[i] * Ct[i]});
        const float K_in = carry[n * kLanes + lane];  // written below only after the scans' barriers
        ScanPair later, rev_total, earlier, fwd_total;
        if (kCarryOnly)
          later = warp_exclusive_scan<kNWarps, true>(rev, scan_combine, ScanPair{1.0f, 0.0f}, partial_rev, &rev_total);
        else
          warp_exclusive_scan_both<kNWarps>(fwd, rev, scan_combine, ScanPair{1.0f, 0.0f}, partial, partial_rev, &earlier, &fwd_total, &later,
                                            &rev_total);
        if (!kCarryOnly) {
          float(*sums)[kNWarps][kNItems][kLanes] = lane_sums[n & 1];  // alternate buffers: no barrier after the reads
          float h[kNItems + 1];  // h[i] = the state before token i, h[kNItems] after the last
          h[0] = earlier.a * h_chunk[n * kLanes] + earlier.b;
          for (int i = 0; i < kNItems; ++i) h[i + 1] = a[i] * h[i] + dt[i] * Bt[i] * u[i];
          float K = later.a * K_in + later.b, dA_sum = 0.0f;  // K_{t+1} for the thread's last token
          for (int i = kNItems - 1; i >= 0; --i) {
            const float G = gy[i] * Ct[i] + K, ga = G * h[i] * a[i];
            sums[0][warp][i][lane] = G * dt[i] * u[i];
            sums[1][warp][i][lane] = gy[i] * h[i + 1];
            ypre[i] += Ct[i] * h[i + 1];
            ddt[i] += ga * A + G * Bt[i] * u[i];
            du[i] += G * dt[i] * Bt[i];
            dA_sum += ga * dt[i];
            K = a[i] * G;
          }
          dA_warp[(warp * N + n) * kLanes + lane] += dA_sum;
          __syncthreads();
          if (lane < 2 * kNItems) {  // lane i of a warp sums dB of its token i over the 32 channels, lane kNItems + i dC
            const int which = lane / kNItems, i = lane % kNItems;
            const int64_t t = t0 + i;
            float sum = 0.0f;
            for (int l = 0; l < kLanes; ++l) sum += sums[which][warp][i][l];
            float* dst = which == 0 ? g.dB + b * g.dB_b + t * g.dB_l + n : g.dC + b * g.dC_b + t * g.dC_l + n;
            if (t < end) *dst = d0 == 0 ? sum : *dst + sum;
          }  // the next n writes the other buffer; the one after, only past that n's scan barriers
        }
        if (warp == 0) carry[n * kLanes + lane] = rev_total.a * K_in + rev_total.b;
      }
      if (!kCarryOnly)
        for (int i = 0; i < kNItems; ++i) {
          const int64_t t = t0 + i;
          if (!live || t >= end) break;
          if (p.z) {
            const float z = load_as<float>(p.z, b * p.z_b + t * p.z_l + d), sg = sigmoid(z);
            g.dz[b * g.dz_b + t * g.dz_l + d] = g.dy[b * g.dy_b + t * g.dy_l + d] * ypre[i] * sg * (1.0f + z * (1.0f - sg));
          }
          const float draw = p.softplus ? ddt[i] * softplus_grad_from_value(dt[i]) : ddt[i];
          g.ddelta[b * g.ddelta_b + t * g.ddelta_l + d] = draw;
          g.du[b * g.du_b + t * g.du_l + d] = du[i];
          dD_sum += gy[i] * u[i];
          dbias_sum += draw;
        }
      __syncthreads();  // carry[] of this chunk is complete before the next chunk reads it
    }
    if (kCarryOnly) {
      for (int n = warp; n < N && live; n += kNWarps) g.seg_K[bsd * N + n] = carry[n * kLanes + lane];
    } else {
      if (s == 0 && g.dh0 && live)  // the gradient that reaches the state before the first token
        for (int n = warp; n < N; n += kNWarps) g.dh0[(b * D + d) * N + n] = carry[n * kLanes + lane];
      warp_sums[0][warp][lane] = dD_sum;
      warp_sums[1][warp][lane] = dbias_sum;
      __syncthreads();
      for (int n = warp; n < N && live; n += kNWarps) {
        float sum = 0.0f;
        for (int w = 0; w < kNWarps; ++w) sum += dA_warp[(w * N + n) * kLanes + lane];
        g.part_dA[bsd * N + n] = sum;
      }
      if (warp == 0 && live) {
        float sd = 0.0f, sb = 0.0f;
        for (int w = 0; w < kNWarps; ++w) sd += warp_sums[0][w][lane], sb += warp_sums[1][w][lane];
        g.part_dD[bsd] = sd;
        g.part_dbias[bsd] = sb;
      }
    }
    __syncthreads();  // the next channel group reuses carry, dA_warp, chunk_h and warp_sums
  }
}

// Pass 2: one thread per (b, d, n) chains the pieces from the last: seg_carry[s] = the gradient
// entering piece s from pieces s+1.., K(s) = decay(s) seg_carry[s] + seg_K[s].
__global__ void selective_scan_bwd_carry_kernel(SelectiveScanBwdParams g) {
  constexpr float kLog2e = 1.4426950408889634f;
  const SelectiveScanParams& p = g.fwd;
  const int64_t D = p.channels, N = p.states, S = p.segments;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.batch * D * N) return;
  const int64_t b = i / (D * N), d = (i / N) % D, n = i % N;
  const float A2 = p.A[d * N + n] * kLog2e;
  float K = 0.0f;
  for (int64_t s = S - 1; s >= 0; --s) {
    const int64_t bsd = (b * S + s) * D + d;
    g.seg_carry[bsd * N + n] = K;
    K = exp2f(A2 * p.seg_dt[bsd]) * K + g.seg_K[bsd * N + n];
  }
}

// dA, dDskip, d(delta bias): one thread per (d, n) sums the per-piece partials in (b, s) order.
__global__ void selective_scan_param_grads_kernel(SelectiveScanBwdParams g) {
  const SelectiveScanParams& p = g.fwd;
  const int64_t D = p.channels, N = p.states, BS = p.batch * p.segments;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= D * N) return;
  const int64_t d = i / N, n = i % N;
  float dA = 0.0f, dD = 0.0f, dbias = 0.0f;
  for (int64_t bs = 0; bs < BS; ++bs) {
    dA += g.part_dA[(bs * D + d) * N + n];
    if (n == 0) dD += g.part_dD[bs * D + d], dbias += g.part_dbias[bs * D + d];
  }
  g.dA[i] = dA;
  if (n == 0 && g.dDskip) g.dDskip[d] = dD;
  if (n == 0 && g.ddelta_bias) g.ddelta_bias[d] = dbias;
}

// Scratch floats of selective_scan_backward_run for `segments` pieces.
template <int kFwdWarps, int kFwdItems, int kNWarps, int kNItems>
int64_t selective_scan_bwd_scratch(SelectiveScanParams p, int64_t segments) {
  plan_segments(p, segments, kFwdWarps * kFwdItems);
  const int64_t BS = p.batch * p.segments, chunks = (p.segment_len + kNWarps * kNItems - 1) / (kNWarps * kNItems);
  return selective_scan_scratch(p, p.segments) + BS * p.channels * (3 * p.states + 2) + BS * (1 + kNWarps + chunks) * p.states * kLanes;
}

// Runs the backward in `segments` pieces (fp32 storage only: the host entry refuses others): the forward's passes 1 and 2 (kFwdWarps x kFwdItems) for
// the piece starts, then the backward passes (kNWarps x kNItems tokens per chunk). launch and
// scratch as for selective_scan_segmented; scratch holds selective_scan_bwd_scratch floats.
template <int kFwdWarps, int kFwdItems, int kNWarps, int kNItems, class Launch>
void selective_scan_backward_run(SelectiveScanBwdParams g, int64_t segments, float* scratch, Launch launch) {
  SelectiveScanParams& p = g.fwd;
  p.cu_seqlens = nullptr;
  plan_segments(p, segments, kFwdWarps * kFwdItems);
  if (p.segments > 1) selective_scan_segment_starts<kFwdWarps, kFwdItems, false, float>(p, scratch, launch);
  float* next = scratch + selective_scan_scratch(p, p.segments);
  const int64_t BSD = p.batch * p.segments * p.channels, chunks = (p.segment_len + kNWarps * kNItems - 1) / (kNWarps * kNItems);
  g.seg_K = next;
  g.seg_carry = g.seg_K + BSD * p.states;
  g.part_dA = g.seg_carry + BSD * p.states;
  g.part_dD = g.part_dA + BSD * p.states;
  g.part_dbias = g.part_dD + BSD;
  g.blocks = g.part_dbias + BSD;
  g.block_floats = (1 + kNWarps + chunks) * p.states * kLanes;
  const dim3 grid(1, unsigned(p.batch), unsigned(p.segments)), block(kNWarps * kLanes);
  constexpr unsigned kThreads = 256;
  if (p.segments > 1) {
    launch(grid, block, selective_scan_bwd_kernel<kNWarps, kNItems, true>, g);
    launch(dim3(unsigned((p.batch * p.channels * p.states + kThreads - 1) / kThreads)), dim3(kThreads), selective_scan_bwd_carry_kernel, g);
  }
  launch(grid, block, selective_scan_bwd_kernel<kNWarps, kNItems, false>, g);
  launch(dim3(unsigned((p.channels * p.states + kThreads - 1) / kThreads)), dim3(kThreads), selective_scan_param_grads_kernel, g);
}

LS_KERNELS_END
}  // namespace longseq::cuda
