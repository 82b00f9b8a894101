// CUDA selective scan (Mamba-1 S6) forward: the plain parameter struct that crosses into .cu code,
// and the host entry point. Same contract and layout as core/ops/ops.h (selective_scan_*): u, delta, z, y
// are (B, L, D) and B_t, C_t are (B, L, N), each with batch and token strides and unit stride along
// the last dimension; A is (D, N) contiguous; states are (B, D, N) contiguous.
#pragma once

#include "kernels/storage.h"

#include <cstdint>

namespace longseq::cuda {

inline constexpr int kScanMaxStates = 256;  // N the kernel carries in shared memory


struct SelectiveScanParams {
  int64_t batch = 0, length = 0, channels = 0, states = 0;  // B, L, D, N
  const void* __restrict__ u = nullptr;
  int64_t u_b = 0, u_l = 0;
  const void* __restrict__ delta = nullptr;
  int64_t delta_b = 0, delta_l = 0;
  const void* __restrict__ Bm = nullptr;
  int64_t B_b = 0, B_l = 0;
  const void* __restrict__ Cm = nullptr;
  int64_t C_b = 0, C_l = 0;
  const void* __restrict__ z = nullptr;  // or null: no gating
  int64_t z_b = 0, z_l = 0;
  StorageType dtype = StorageType::f32;  // of u, delta, B, C, z, y (mamba_ssm's input_t; the backward takes f32);
                                        // A, D skip, delta bias and the states are always fp32
  const float* __restrict__ A = nullptr;           // (D, N)
  const float* __restrict__ Dskip = nullptr;       // (D) or null
  const float* __restrict__ delta_bias = nullptr;  // (D) or null
  bool softplus = false;
  const float* __restrict__ h0 = nullptr;  // (B, D, N) initial state, or null: zeros ((n_seqs, D, N) when packed)
  float* __restrict__ h_last = nullptr;    // (B, D, N) state after the last token, or null ((n_seqs, D, N) when packed)
  // Packed variable-length batch (B must be 1): sequence k is tokens [cu_seqlens[k], cu_seqlens[k+1]),
  // cu_seqlens[0] = 0, cu_seqlens[n_seqs] = L, every sequence non-empty. The state restarts at each
  // sequence's first token (from h0[k], or zeros) and h_last[k] is its state after its last token.
  const int64_t* __restrict__ cu_seqlens = nullptr;  // (n_seqs + 1), device memory, or null: one sequence per row
  int64_t n_seqs = 0;
  void* __restrict__ y = nullptr;
  int64_t y_b = 0, y_l = 0;
  // Set by the segmented driver (selective_scan.cuh), not by callers: L is cut into `segments`
  // pieces of `segment_len` tokens run by separate blocks (grid z). Pass 1 (y == null) writes each
  // piece's state from zero (seg_state) and its delta sum (seg_dt); pass 2 turns them into each
  // piece's true initial state (seg_h0), from which pass 3 computes y.
  int64_t segments = 1, segment_len = 0;
  float* __restrict__ seg_state = nullptr;  // (B, S, D, N)
  float* __restrict__ seg_dt = nullptr;     // (B, S, D)
  float* __restrict__ seg_h0 = nullptr;     // (B, S, D, N)
  float* __restrict__ seg_reset = nullptr;  // (B, S, D): 1 when a packed sequence starts inside the segment
};

// Backward of the selective scan: gradients of a loss with respect to every input of the forward,
// given dL/dy. The forward's inputs come in `fwd` (its y and h_last are not used). Gradient tensors
// have the layouts of their inputs, with their own strides; every gradient is written, not
// accumulated: du, ddelta, dB, dC always, dz when fwd.z is set, dDskip and ddelta_bias when
// fwd.Dskip and fwd.delta_bias are set, dA always, dh0 (the initial state's) when not null.
// Packed batches (cu_seqlens) are not supported by the backward yet.
struct SelectiveScanBwdParams {
  SelectiveScanParams fwd;
  const float* __restrict__ dy = nullptr;  // (B, L, D)
  int64_t dy_b = 0, dy_l = 0;
  float* __restrict__ du = nullptr;  // (B, L, D)
  int64_t du_b = 0, du_l = 0;
  float* __restrict__ ddelta = nullptr;  // (B, L, D)
  int64_t ddelta_b = 0, ddelta_l = 0;
  float* __restrict__ dz = nullptr;  // (B, L, D)
  int64_t dz_b = 0, dz_l = 0;
  float* __restrict__ dB = nullptr;  // (B, L, N)
  int64_t dB_b = 0, dB_l = 0;
  float* __restrict__ dC = nullptr;  // (B, L, N)
  int64_t dC_b = 0, dC_l = 0;
  float* __restrict__ dA = nullptr;           // (D, N)
  float* __restrict__ dDskip = nullptr;       // (D)
  float* __restrict__ ddelta_bias = nullptr;  // (D)
  float* __restrict__ dh0 = nullptr;          // (B, D, N) or null
  // Set by the driver (selective_scan_bwd.cuh), not by callers; S = fwd.segments pieces of L.
  float* __restrict__ seg_K = nullptr;       // (B, S, D, N) pass 1: gradient reaching each piece's start from its own tokens
  float* __restrict__ seg_carry = nullptr;   // (B, S, D, N) pass 2: gradient entering each piece from the later pieces
  float* __restrict__ part_dA = nullptr;     // (B, S, D, N) per-piece sums, reduced in a fixed order
  float* __restrict__ part_dD = nullptr;     // (B, S, D)
  float* __restrict__ part_dbias = nullptr;  // (B, S, D)
  float* __restrict__ blocks = nullptr;      // per block: carry, per-warp dA sums and the states at its chunk starts
  int64_t block_floats = 0;
};

// Device pointers; launches on the default stream and synchronizes. Long sequences are cut into
// segments across blocks so that even B = 1 fills the GPU. Throws longseq::Error for inconsistent
// sizes (N > kScanMaxStates, missing pointers) or a CUDA failure.
void selective_scan_forward(const SelectiveScanParams& p);

// Device pointers; launches on the default stream and synchronizes. Memory: scratch of O(B L N +
// B S D N) floats (S pieces, about four blocks per SM), never O(L D N). Throws like the forward, and
// for a packed batch.
void selective_scan_backward(const SelectiveScanBwdParams& p);

}  // namespace longseq::cuda
