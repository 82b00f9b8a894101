// CUDA modal (diagonal IIR) long filter, StripedHyena 2's hcl: the math and layouts of
// core/ops/ops.h (modal_scan, modal_filter, modal_filter_backward). A channel c's filter is
// h[t, c] = sum_s R[c, s] p[c, s]^t, p = exp(log_poles); the recurrence
//   S[c, s](t) = p S[c, s](t - 1) + u[t, c],   y[t, c] = gate[t, c] (sum_s R S + Dskip[c] u[t, c])
// streams it. u, gate, y are (B, L, D) with batch and token strides and unit channel stride;
// log_poles, residues (D, N) and the state (B, D, N) contiguous. States, poles and sums are double,
// as on the CPU: with poles near 1 a float state drifts past the official error (ops.h).
#pragma once

#include <cstdint>

namespace longseq::cuda {

inline constexpr int kModalMaxStates = 128;  // N a block's threads cover (every released Evo 2: 16)

struct ModalParams {
  int64_t batch = 0, length = 0, channels = 0, states = 0;  // B, L, D, N
  const float* __restrict__ u = nullptr;
  int64_t u_b = 0, u_l = 0;
  const float* __restrict__ gate = nullptr;  // or null: no gate
  int64_t gate_b = 0, gate_l = 0;
  const float* __restrict__ log_poles = nullptr;  // (D, N)
  const float* __restrict__ residues = nullptr;   // (D, N)
  const float* __restrict__ Dskip = nullptr;      // (D) or null
  float* __restrict__ state = nullptr;            // (B, D, N) read, then the state after the last token; null: zeros
  float* __restrict__ y = nullptr;
  int64_t y_b = 0, y_l = 0;
};

// The filter k (L, D) with token stride k_l, and its backward: dlog_poles and dresidues (D, N)
// WRITTEN (either may be null) from dk (L, D).
struct ModalFilterParams {
  int64_t length = 0, channels = 0, states = 0;  // L, D, N
  const float* __restrict__ log_poles = nullptr;
  const float* __restrict__ residues = nullptr;
  float* __restrict__ k = nullptr;  // forward output
  const float* __restrict__ dk = nullptr;  // backward input
  int64_t k_l = 0;
  float* __restrict__ dlog_poles = nullptr;
  float* __restrict__ dresidues = nullptr;
};

// Device pointers; default stream; synchronize. Throw longseq::Error for bad sizes (N outside
// 1..kModalMaxStates), missing pointers or a CUDA failure.
void modal_scan(const ModalParams& p);
void modal_filter(const ModalFilterParams& p);
void modal_filter_backward(const ModalFilterParams& p);

}  // namespace longseq::cuda
