// CUDA row norms over the last dimension (D) of R = B x L rows, forward and backward:
//   RMSNorm:   y = x rstd w,                 rstd = 1 / sqrt(mean(x^2) + eps)  (or 1 / (sqrt(mean(x^2)) + eps):
//                                            eps_outside, StripedHyena's form)
//   LayerNorm: y = (x - mean) rstd w + b,    rstd = 1 / sqrt(var(x) + eps)
// the math of core/ops/ops.h's rms_norm_* / layer_norm_* (which accumulate in double; these
// in fp32, per-lane partials then a fixed-order sum). Rows have a stride, columns are contiguous.
#pragma once

#include <cstdint>

namespace longseq::cuda {

struct NormParams {
  int64_t rows = 0, cols = 0;  // R, D
  bool rms = true;             // RMSNorm, else LayerNorm
  bool eps_outside = false;    // RMSNorm with eps added to the root
  float eps = 1e-5f;
  const float* __restrict__ x = nullptr;
  int64_t x_r = 0;
  const float* __restrict__ weight = nullptr;  // (D)
  const float* __restrict__ bias = nullptr;    // (D) or null (LayerNorm only)
  float* __restrict__ y = nullptr;             // may not alias x
  int64_t y_r = 0;
  float* __restrict__ mean = nullptr;  // (R) saved for the backward (LayerNorm), or null
  float* __restrict__ rstd = nullptr;  // (R) saved for the backward, or null
};

// dx (written), dweight and dbias (column sums over the rows, written; dbias when fwd.bias). Uses
// the forward's saved mean (LayerNorm) and rstd.
struct NormBwdParams {
  NormParams fwd;  // y unused; mean and rstd as the forward wrote them
  const float* __restrict__ dy = nullptr;
  int64_t dy_r = 0;
  float* __restrict__ dx = nullptr;
  int64_t dx_r = 0;
  float* __restrict__ dweight = nullptr;
  float* __restrict__ dbias = nullptr;
  // Set by the driver: row tiles whose column sums are reduced in order.
  int64_t tiles = 1, tile_rows = 0;
  float* __restrict__ partial = nullptr;  // (tiles, 2, D)
};

// Device pointers; default stream; synchronize. Throw longseq::Error for bad sizes, missing
// pointers (LayerNorm's backward needs the saved mean, both need rstd) or a CUDA failure.
void norm_forward(const NormParams& p);
void norm_backward(const NormBwdParams& p);

}  // namespace longseq::cuda
