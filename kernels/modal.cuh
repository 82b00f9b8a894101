// Modal long-filter kernel source (nvcc in kernels/modal.cu; the CPU tests through
// kernels/emu/cuda_emu.h). The recurrence: a block holds whole channels, a thread one (channel,
// state) pair whose pole, residue and state are double registers; the threads advance their states
// over a chunk of tokens, leaving R S per token in shared memory, then the block sums each
// (channel, token)'s N terms in state order (one barrier pair per chunk, not per token). The
// recurrence is sequential in L, so a block walks the whole sequence: parallelism is D N / 128
// blocks, plenty at Evo 2's shapes (1,920 x 16) and the decode step's single token alike.
// The explicit filter is one thread per (token, channel) (p^t as exp(t log p) in double); its
// backward one thread per (channel, state) summing over the tokens in order: no atomics.
#pragma once

#include "kernels/block_scan.cuh"
#include "kernels/modal.h"

#include <cmath>

namespace longseq::cuda {
LS_KERNELS_BEGIN

inline constexpr int kModalThreads = 128;
inline constexpr int kModalChunk = 16;  // tokens per shared-memory round

// Grid: x = groups of 128 / N channels, y = batch.
__global__ void __launch_bounds__(kModalThreads) modal_scan_kernel(ModalParams p) {
  __shared__ double terms[kModalThreads][kModalChunk + 1];
  const int t = int(threadIdx.x);
  const int64_t N = p.states, per_block = kModalThreads / N, D = p.channels, b = blockIdx.y;
  const int64_t c0 = int64_t(blockIdx.x) * per_block, cb = t / N, s = t % N, c = c0 + cb;
  const bool live = cb < per_block && c < D;
  const int64_t at = (b * D + c) * N + s;
  double S = live && p.state ? double(p.state[at]) : 0.0;
  const double pole = live ? exp(double(p.log_poles[c * N + s])) : 0.0, R = live ? double(p.residues[c * N + s]) : 0.0;
  for (int64_t t0 = 0; t0 < p.length; t0 += kModalChunk) {
    const int64_t n = p.length - t0 < kModalChunk ? p.length - t0 : kModalChunk;
    if (live)
      for (int64_t i = 0; i < n; ++i) {
        S = pole * S + double(p.u[b * p.u_b + (t0 + i) * p.u_l + c]);
        terms[t][i] = R * S;
      }
    __syncthreads();
    for (int64_t pair = t; pair < per_block * kModalChunk; pair += kModalThreads) {
      const int64_t cc = c0 + pair / kModalChunk, i = pair % kModalChunk, tok = t0 + i;
      if (cc >= D || i >= n) continue;
      const double u = double(p.u[b * p.u_b + tok * p.u_l + cc]);
      double acc = p.Dskip ? double(p.Dskip[cc]) * u : 0.0;
      for (int64_t k = 0; k < N; ++k) acc += terms[(pair / kModalChunk) * N + k][i];
      if (p.gate) acc *= double(p.gate[b * p.gate_b + tok * p.gate_l + cc]);
      p.y[b * p.y_b + tok * p.y_l + cc] = float(acc);
    }
    __syncthreads();
  }
  if (live && p.state) p.state[at] = float(S);
}

// One thread per (t, c): k[t, c] = sum_s R[c, s] exp(t log_poles[c, s]).
__global__ void modal_filter_kernel(ModalFilterParams p) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= p.length * p.channels) return;
  const int64_t t = idx / p.channels, c = idx % p.channels;
  double acc = 0.0;
  for (int64_t s = 0; s < p.states; ++s) acc += double(p.residues[c * p.states + s]) * exp(double(t) * double(p.log_poles[c * p.states + s]));
  p.k[t * p.k_l + c] = float(acc);
}

// One thread per (c, s): dR = sum_t dk[t, c] p^t, dlog_poles = R sum_t dk[t, c] t p^t.
__global__ void modal_filter_bwd_kernel(ModalFilterParams p) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= p.channels * p.states) return;
  const int64_t c = idx / p.states;
  const double pole = exp(double(p.log_poles[idx]));
  double pw = 1.0, sum = 0.0, tsum = 0.0;
  for (int64_t t = 0; t < p.length; ++t) {
    const double g = double(p.dk[t * p.k_l + c]) * pw;
    sum += g, tsum += double(t) * g;
    pw *= pole;
  }
  if (p.dresidues) p.dresidues[idx] = float(sum);
  if (p.dlog_poles) p.dlog_poles[idx] = float(double(p.residues[idx]) * tsum);
}

template <class Launch>
void modal_scan_run(const ModalParams& p, Launch launch) {
  const int64_t per_block = kModalThreads / p.states;
  launch(dim3(unsigned((p.channels + per_block - 1) / per_block), unsigned(p.batch)), dim3(kModalThreads), modal_scan_kernel, p);
}

template <class Launch>
void modal_filter_run(const ModalFilterParams& p, bool backward, Launch launch) {
  constexpr unsigned kThreads = 256;
  const int64_t n = backward ? p.channels * p.states : p.length * p.channels;
  launch(dim3(unsigned((n + kThreads - 1) / kThreads)), dim3(kThreads), backward ? modal_filter_bwd_kernel : modal_filter_kernel, p);
}

LS_KERNELS_END
}  // namespace longseq::cuda
