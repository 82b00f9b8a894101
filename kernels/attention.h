// CUDA causal attention with grouped-query heads and rotary positions, forward and backward: the
// math and layouts of core/ops/ops.h (causal_attention_*, rotary). q is (B, Lq, H hd), k and v
// (B, S, Hkv hd), y and the gradients like their tensors, each with batch and row strides and unit
// stride along the heads' columns; query row i sits at position offset + i and sees keys
// 0 .. offset + i (a KV cache of `offset` earlier keys), query head h reads key/value head
// h / (H / Hkv). lse (B, H, Lq): each query row's log-sum-exp of its scaled scores, which the
// backward recomputes the probabilities from.
#pragma once

#include "kernels/storage.h"

#include <cstdint>

namespace longseq::cuda {

inline constexpr int kAttentionMaxHeadDim = 128;  // hd the kernels hold per tile row (every released Evo 2: 128)

struct AttentionParams {
  int64_t batch = 0, queries = 0, keys = 0;          // B, Lq, S
  int64_t heads = 0, kv_heads = 0, head_dim = 0;     // H, Hkv, hd
  int64_t offset = 0;                                // position of query row 0; S >= offset + Lq
  float scale = 0.0f;                                // 0: 1 / sqrt(hd)
  int64_t window = 0;                                // > 0: sliding window (kernels/attention_mask.h)
  StorageType dtype = StorageType::f32;              // of q, k, v and y (the forward; the backward takes f32)
  const void* __restrict__ q = nullptr;
  int64_t q_b = 0, q_l = 0;
  const void* __restrict__ k = nullptr;
  int64_t k_b = 0, k_l = 0;
  const void* __restrict__ v = nullptr;
  int64_t v_b = 0, v_l = 0;
  void* __restrict__ y = nullptr;  // must not alias q, k, v
  int64_t y_b = 0, y_l = 0;
  float* __restrict__ lse = nullptr;  // (B, H, Lq) or null
};

// Gradients of sum(dy * y), written: dq (B, Lq, H hd), dk and dv (B, S, Hkv hd), from the forward's
// inputs, y and lse (fwd.lse required, fwd.y read). fp32 only.
struct AttentionBwdParams {
  AttentionParams fwd;
  const float* __restrict__ dy = nullptr;
  int64_t dy_b = 0, dy_l = 0;
  float* __restrict__ dq = nullptr;
  int64_t dq_b = 0, dq_l = 0;
  float* __restrict__ dk = nullptr;
  int64_t dk_b = 0, dk_l = 0;
  float* __restrict__ dv = nullptr;
  int64_t dv_b = 0, dv_l = 0;
  float* __restrict__ rowdot = nullptr;  // set by the driver: (B, H, Lq) dy_i . y_i
};

// Rotary positions (GPT-NeoX halves) in place on x (rows, heads hd) with row stride x_l: channel
// pairs (i, i + hd/2) of row t turn by (offset + t) pos_scale inv_freq[i] (angles in double, as the
// CPU op); `inverse` turns back (the backward).
struct RotaryParams {
  int64_t rows = 0, heads = 0, head_dim = 0;
  float* __restrict__ x = nullptr;
  int64_t x_l = 0;
  const float* __restrict__ inv_freq = nullptr;  // (hd / 2)
  int64_t offset = 0;
  double pos_scale = 1.0;
  bool inverse = false;
};

// Device pointers; default stream; synchronize. Throw longseq::Error for bad sizes (hd outside
// 1..kAttentionMaxHeadDim, H not a multiple of Hkv, S < offset + Lq), missing pointers or a CUDA
// failure.
void attention_forward(const AttentionParams& p);
void attention_backward(const AttentionBwdParams& p);
void rotary(const RotaryParams& p);

}  // namespace longseq::cuda
