// Host entries of the row norms (kernels/norm.cuh): 8 rows (warps) per block; the backward's
// column sums over row tiles sized so that tiles x column groups give every SM about eight blocks.
#include "kernels/cuda_check.h"
#include "kernels/device_util.h"
#include "kernels/norm.cuh"

namespace longseq::cuda {

namespace {
constexpr int kWarps = 8;

void check_norm(const NormParams& p, const char* who) {
  LS_CHECK(p.rows >= 1 && p.cols >= 1, "{}: bad sizes rows={} cols={}", who, p.rows, p.cols);
  LS_CHECK(p.x && p.weight, "{}: x and weight are required", who);
  LS_CHECK((p.rows + kWarps - 1) / kWarps <= 0x7fffffff, "{}: {} rows are too many for one launch", who, p.rows);
}
}  // namespace

void norm_forward(const NormParams& p) {
  check_norm(p, "norm_forward");
  LS_CHECK(p.y, "norm_forward: y is required");
  norm_forward_run<kWarps>(p, launch_on_device);
  CUDA_CHECK(cudaDeviceSynchronize());
}

void norm_backward(const NormBwdParams& g) {
  const NormParams& p = g.fwd;
  check_norm(p, "norm_backward");
  LS_CHECK(g.dy && g.dx && p.rstd && (p.rms || p.mean), "norm_backward: dy, dx and the forward's saved rstd (and mean for LayerNorm) are required");
  LS_CHECK(!p.bias || !g.dweight || g.dbias, "norm_backward: bias is set, so dbias is required with dweight");
  const int64_t groups = (p.cols + kLanes - 1) / kLanes;
  const int64_t tiles = std::max<int64_t>(1, 8 * int64_t(sm_count()) / groups);
  DeviceScratch scratch(norm_bwd_scratch(p, tiles));
  norm_backward_run<kWarps>(g, tiles, scratch.ptr, launch_on_device);
  CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace longseq::cuda
