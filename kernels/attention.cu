// Host entries of the attention kernels (kernels/attention.cuh): validate, launch on the default
// stream, synchronize. The backward's rowdot scratch comes from the device pool.
#include "kernels/attention.cuh"
#include "kernels/cuda_check.h"
#include "kernels/device_util.h"

namespace longseq::cuda {

namespace {

void check_attention(const AttentionParams& p, const char* who) {
  LS_CHECK(p.batch >= 1 && p.queries >= 1 && p.heads >= 1 && p.kv_heads >= 1 && p.heads % p.kv_heads == 0,
           "{}: bad sizes B={} Lq={} H={} Hkv={} (H must be a multiple of Hkv)", who, p.batch, p.queries, p.heads, p.kv_heads);
  LS_CHECK(p.head_dim >= 1 && p.head_dim <= kAttentionMaxHeadDim, "{}: head width {} is outside the kernels' 1..{}; run on the CPU", who,
           p.head_dim, kAttentionMaxHeadDim);
  LS_CHECK(p.offset >= 0 && p.offset + p.queries <= p.keys, "{}: {} queries at offset {} need {} keys, got {}", who, p.queries, p.offset,
           p.offset + p.queries, p.keys);
  LS_CHECK(p.q && p.k && p.v && p.y, "{}: q, k, v and y are required", who);
  LS_CHECK(p.heads <= 65535 && p.batch <= 65535, "{}: H={} or B={} exceeds the grid", who, p.heads, p.batch);
}

}  // namespace

void attention_forward(const AttentionParams& p) {
  check_attention(p, "attention_forward");
  attention_forward_run(p, launch_on_device);
  CUDA_CHECK(cudaDeviceSynchronize());
}

void attention_backward(const AttentionBwdParams& g) {
  check_attention(g.fwd, "attention_backward");
  LS_CHECK(g.fwd.dtype == StorageType::f32, "attention_backward: the backward takes fp32 inputs; convert bf16/fp16 activations first");
  LS_CHECK(g.fwd.lse && g.dy && g.dq && g.dk && g.dv, "attention_backward: the forward's lse, dy, dq, dk and dv are required");
  DeviceScratch scratch(attention_bwd_scratch(g.fwd));
  attention_backward_run(g, scratch.ptr, launch_on_device);
  CUDA_CHECK(cudaDeviceSynchronize());
}

void rotary(const RotaryParams& p) {
  LS_CHECK(p.rows >= 0 && p.heads >= 1 && p.head_dim >= 2 && p.head_dim % 2 == 0 && p.x && p.inv_freq,
           "rotary: bad sizes rows={} heads={} head width={} (even), or a missing pointer", p.rows, p.heads, p.head_dim);
  if (p.rows == 0) return;
  rotary_run(p, launch_on_device);
  CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace longseq::cuda
