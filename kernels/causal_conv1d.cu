// Host entries of the causal conv1d kernels (kernels/causal_conv1d.cuh): validate, pick the width
// instantiation and the tiling, launch on the default stream. Forward: 8 warps x 8 tokens per
// block (wide filters: 8 warps x 64 tokens). Backward: L cut into tiles so that tiles x channel
// groups x B give every SM about eight blocks, each thread walking runs of 8 tokens of its tile.
#include "kernels/causal_conv1d.cuh"
#include "kernels/cuda_check.h"
#include "kernels/device_util.h"

namespace longseq::cuda {

namespace {

constexpr int kItems = 8, kWarps = 8;

void check_params(const CausalConv1dParams& p, const char* who) {
  LS_CHECK(p.batch >= 1 && p.length >= 1 && p.channels >= 1, "{}: bad sizes B={} L={} D={}", who, p.batch, p.length, p.channels);
  LS_CHECK(p.width >= 1 && p.width <= kConvMaxWidth, "{}: width {} is outside the kernels' 1..{}; run this layer on the CPU", who, p.width,
           kConvMaxWidth);
  LS_CHECK(!p.silu || p.width <= kConvRegisterWidth, "{}: SiLU is fused only up to {} taps, got {}; apply it separately", who,
           kConvRegisterWidth, p.width);
  LS_CHECK(p.x && p.weight, "{}: x and weight are required", who);
  LS_CHECK(p.batch <= 65535 && (p.channels + kLanes - 1) / kLanes <= 65535, "{}: B={} or D={} exceeds the grid", who, p.batch, p.channels);
}

}  // namespace

void causal_conv1d_forward(const CausalConv1dParams& p) {
  check_params(p, "causal_conv1d_forward");
  LS_CHECK(p.out, "causal_conv1d_forward: out is required");
  causal_conv1d_forward_any<kItems, kWarps>(p, launch_on_device);
  CUDA_CHECK(cudaDeviceSynchronize());
}

void causal_conv1d_backward(const CausalConv1dBwdParams& g) {
  const CausalConv1dParams& p = g.fwd;
  check_params(p, "causal_conv1d_backward");
  LS_CHECK(g.dout && g.dx && g.dweight, "causal_conv1d_backward: dout, dx and dweight are required");
  LS_CHECK(!p.bias || g.dbias, "causal_conv1d_backward: bias is set, so dbias is required");
  const int64_t groups = (p.channels + kLanes - 1) / kLanes;
  const int64_t tiles = std::max<int64_t>(1, (8 * int64_t(sm_count()) + groups * p.batch - 1) / (groups * p.batch));
  DeviceScratch scratch(causal_conv1d_bwd_scratch(p, tiles));
  causal_conv1d_backward_any<kItems, kWarps>(g, tiles, scratch.ptr, launch_on_device);
  CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace longseq::cuda
