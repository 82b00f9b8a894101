// CUDA causal depthwise conv1d (Mamba's short conv, Hyena's short filters), forward and backward,
// with the inputs before t = 0 given (initial state), the last W - 1 inputs returned (final state)
// and a fused SiLU. Same math and token-major layout as core/ops/ops.h (causal_conv1d_*):
//   out[b, t, d] = act(bias[d] + sum_{k < W} weight[d, k] x[b, t - (W - 1) + k, d]).
// x, out, dout, dx are (B, L, D) with batch and token strides and unit channel stride; weight (D, W)
// contiguous; states (B, W - 1, D) contiguous, oldest input first (the CPU state's last W - 1 rows).
#pragma once

#include <cstdint>

namespace longseq::cuda {

// W up to kConvRegisterWidth (mamba_ssm's causal_conv1d: 2..4) runs with the window in registers;
// wider filters (StripedHyena 2's hcs, 7 taps, and hcm, 128) stage taps and inputs in shared memory.
inline constexpr int kConvRegisterWidth = 4;
inline constexpr int kConvMaxWidth = 128;

struct CausalConv1dParams {
  int64_t batch = 0, length = 0, channels = 0, width = 0;  // B, L, D, W
  const float* __restrict__ x = nullptr;
  int64_t x_b = 0, x_l = 0;
  const float* __restrict__ weight = nullptr;  // (D, W)
  const float* __restrict__ bias = nullptr;    // (D) or null
  const float* __restrict__ init = nullptr;    // (B, W - 1, D) inputs before t = 0, or null: zeros
  float* __restrict__ final_state = nullptr;   // (B, W - 1, D): the last W - 1 inputs of [init, x], or null
  bool silu = false;
  float* __restrict__ out = nullptr;  // must not alias x
  int64_t out_b = 0, out_l = 0;
};

// Backward: dx (written, not accumulated), dweight and dbias (sums over B and L, written), dinit
// (B, W - 1, D) the gradient of the initial state (written) when not null. fwd.out and
// fwd.final_state are not used.
struct CausalConv1dBwdParams {
  CausalConv1dParams fwd;
  const float* __restrict__ dout = nullptr;
  int64_t dout_b = 0, dout_l = 0;
  float* __restrict__ dx = nullptr;
  int64_t dx_b = 0, dx_l = 0;
  float* __restrict__ dweight = nullptr;  // (D, W)
  float* __restrict__ dbias = nullptr;    // (D), required when fwd.bias is set
  float* __restrict__ dinit = nullptr;    // (B, W - 1, D) or null
  // Set by the driver (causal_conv1d.cuh): L is cut into `tiles` pieces of tile_len tokens; each
  // block writes its sums of dweight and dbias (B, tiles, D, W + 1), reduced in a fixed order.
  int64_t tiles = 1, tile_len = 0;
  float* __restrict__ partial = nullptr;
};

// Device pointers; launch on the default stream and synchronize. Throw longseq::Error for bad sizes,
// W outside 1..kConvMaxWidth, SiLU with W > kConvRegisterWidth (not fused there), missing pointers
// or a CUDA failure.
void causal_conv1d_forward(const CausalConv1dParams& p);
void causal_conv1d_backward(const CausalConv1dBwdParams& p);

}  // namespace longseq::cuda
