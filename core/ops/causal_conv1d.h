// Causal depthwise 1-D convolution, token-major on CPU:
//   out[b, t, d] = act( bias[d] + sum_{k<W} weight[d, k] * x[b, t - (W-1) + k, d] )
// where inputs before t = 0 come from `state` (the previous chunk's last inputs), so running a
// sequence in chunks equals one pass over the whole sequence. act is SiLU when `silu`.
// x and out are (B, L, D) with unit channel stride (x may be a column slice of a GEMM output).
#pragma once

#include "core/tensor.h"

namespace longseq {

struct CausalConv1dArgs {
  Tensor x;       // (B, L, D)
  Tensor weight;  // (D, W) contiguous (a PyTorch Conv1d weight (D, 1, W) reshaped)
  Tensor bias;    // (D) or undefined
  Tensor out;     // (B, L, D), preallocated; must not alias x
  // (B, S, D) contiguous with S >= W - 1, or undefined (zeros before t = 0). Its last W - 1 rows are
  // the inputs just before x (oldest first). On return it holds the last S inputs seen (older state
  // rows shift in when L < S), i.e. mamba_ssm's conv_state transposed when S == W.
  Tensor state;
  bool silu = false;
};

void causal_conv1d(const CausalConv1dArgs& args);
void causal_conv1d_ref(const CausalConv1dArgs& args);

}  // namespace longseq
