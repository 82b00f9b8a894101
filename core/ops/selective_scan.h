// Selective scan (Mamba-1 S6), token-major on CPU: for each batch b and channel d,
//   delta_t = softplus(delta_t + delta_bias)            (when delta_softplus)
//   h_t     = exp(delta_t * A[d,:]) * h_{t-1} + delta_t * B_t * u_t        (N states)
//   y_t     = C_t . h_t + Dskip[d] * u_t,  then  y_t *= silu(z_t)          (when z is given)
// Layout: u, delta, z, y are (B, L, D) and B_t, C_t are (B, L, N), each with any batch and token
// strides but unit stride along their last dimension (so they can be column slices of a GEMM
// output); A is (D, N); the state is (B, D, N) as in mamba_ssm.
// Two paths with one contract: selective_scan_ref (scalar, libm exp) and selective_scan (SIMD over
// channels, state in registers, polynomial exp2). Work is split over (batch, channel block) only,
// so results do not depend on the thread count.
#pragma once

#include "core/tensor.h"

namespace longseq {

struct SelectiveScanArgs {
  Tensor u, delta;        // (B, L, D)
  Tensor A;               // (D, N)
  Tensor B, C;            // (B, L, N)
  Tensor Dskip;           // (D) or undefined
  Tensor z;               // (B, L, D) or undefined
  Tensor delta_bias;      // (D) or undefined
  bool delta_softplus = false;
  Tensor y;               // (B, L, D) output, preallocated
  // (B, D, N), F32 contiguous, or undefined. When defined it is the initial state if
  // `use_initial_state`, else zeros are used; on return it holds the state after the last token.
  Tensor state;
  bool use_initial_state = false;
};

// Throws longseq::Error naming the argument when a shape, dtype or stride does not fit.
void selective_scan(const SelectiveScanArgs& args);
void selective_scan_ref(const SelectiveScanArgs& args);
// True when the fast path handles these arguments (it always does for valid arguments today; the
// check is here so dispatch and capability sit side by side as for the CUDA kernels).
bool selective_scan_supported(const SelectiveScanArgs& args);

}  // namespace longseq
