// Elementwise and embedding kernel source (nvcc: kernels/elementwise.cu; CPU tests:
// kernels/emu/cuda_emu.h). Activations are grid-stride loops over contiguous floats; the embedding
// maps lane = channel, so a token's row is one coalesced access.
#pragma once

#include "kernels/activations.h"
#include "kernels/block_scan.cuh"
#include "kernels/elementwise.h"

namespace longseq::cuda {
LS_KERNELS_BEGIN

LS_HD float bld_at(const BLD& x, int64_t b, int64_t t, int64_t d) { return x.ptr[b * x.b + t * x.l + d]; }

// partial[tile, d] = sum over b, t in the tile of a x (x2 if set) x (x3 if set), for column sums
// (dbias) reduced in a fixed order by column_sums_finish_kernel.
struct ColumnSumParams {
  int64_t batch = 0, length = 0, channels = 0, tiles = 1, tile_len = 0;
  BLD a, x2, x3;
  float* __restrict__ partial = nullptr;  // (tiles, D)
  float* __restrict__ out = nullptr;      // (D)
};

// Grid: x = tiles, y = channel groups of 32 (lane = channel).
__global__ void column_sums_partial_kernel(ColumnSumParams q) {
  const int64_t d = int64_t(blockIdx.y) * kLanes + threadIdx.x, tile = blockIdx.x;
  if (d >= q.channels) return;
  const int64_t t_end = (tile + 1) * q.tile_len < q.length ? (tile + 1) * q.tile_len : q.length;
  float s = 0.0f;
  for (int64_t b = 0; b < q.batch; ++b)
    for (int64_t t = tile * q.tile_len; t < t_end; ++t) {
      float v = bld_at(q.a, b, t, d);
      if (q.x2.ptr) v *= bld_at(q.x2, b, t, d);
      if (q.x3.ptr) v *= bld_at(q.x3, b, t, d);
      s += v;
    }
  q.partial[tile * q.channels + d] = s;
}

__global__ void column_sums_finish_kernel(ColumnSumParams q) {
  const int64_t d = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (d >= q.channels) return;
  float s = 0.0f;
  for (int64_t tile = 0; tile < q.tiles; ++tile) s += q.partial[tile * q.channels + d];
  q.out[d] = s;
}

// Floats of scratch for column_sums_run's partials.
inline int64_t column_sums_scratch(int64_t channels, int64_t tiles) { return tiles * channels; }

// Runs the column sums over q.tiles pieces of L (q.tile_len is set here; q.partial holds
// column_sums_scratch floats).
template <class Launch>
void column_sums_run(ColumnSumParams q, Launch launch) {
  q.tile_len = (q.length + q.tiles - 1) / q.tiles;
  q.tiles = (q.length + q.tile_len - 1) / q.tile_len;
  launch(dim3(unsigned(q.tiles), unsigned((q.channels + kLanes - 1) / kLanes)), dim3(kLanes), column_sums_partial_kernel, q);
  launch(dim3(unsigned((q.channels + 255) / 256)), dim3(256), column_sums_finish_kernel, q);
}

LS_HD float activation_value(Activation kind, float x) {
  return kind == Activation::silu ? silu(x) : kind == Activation::gelu_erf ? gelu_erf(x) : gelu_tanh(x);
}
LS_HD float activation_grad(Activation kind, float x) {
  return kind == Activation::silu ? silu_grad(x) : kind == Activation::gelu_erf ? gelu_erf_grad(x) : gelu_tanh_grad(x);
}

template <bool kBackward>
__global__ void activation_kernel(ActivationParams p) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n; i += stride)
    p.out[i] = kBackward ? p.dy[i] * activation_grad(p.kind, p.x[i]) : activation_value(p.kind, p.x[i]);
}

template <bool kBackward>
__global__ void sin_columns_kernel(SinColumnsParams p) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x, n = p.rows * p.cols;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float f = p.freq[i % p.cols], fx = f * p.x[i];
    if constexpr (kBackward) {
      const float g = cosf(fx) * p.dy[i];
      if (p.cos_dy) p.cos_dy[i] = g;
      p.dx[i] = f * g;
    } else {
      p.y[i] = sinf(fx);
    }
  }
}

template <class Launch>
void sin_columns_run(const SinColumnsParams& p, bool backward, int64_t max_blocks, Launch launch) {
  const int64_t blocks = (p.rows * p.cols + 255) / 256;
  const dim3 grid{unsigned(blocks < max_blocks ? blocks : max_blocks)}, block{256};
  if (backward)
    launch(grid, block, sin_columns_kernel<true>, p);
  else
    launch(grid, block, sin_columns_kernel<false>, p);
}

struct AddParams {
  int64_t n = 0;
  float* y = nullptr;
  const float* x = nullptr;
};

__global__ void add_kernel(AddParams p) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n; i += stride) p.y[i] += p.x[i];
}

template <class Launch>
void add_run(const AddParams& p, int64_t max_blocks, Launch launch) {
  const int64_t blocks = (p.n + 255) / 256;
  launch(dim3{unsigned(blocks < max_blocks ? blocks : max_blocks)}, dim3{256}, add_kernel, p);
}

__global__ void mul_rows_kernel(MulRowsParams p) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.rows * p.cols; i += stride) {
    const int64_t r = i / p.cols, c = i % p.cols;
    p.out[r * p.ldo + c] = p.a[r * p.lda + c] * p.b[r * p.ldb + c];
  }
}

template <class Launch>
void mul_rows_run(const MulRowsParams& p, int64_t max_blocks, Launch launch) {
  const int64_t blocks = (p.rows * p.cols + 255) / 256;
  launch(dim3{unsigned(blocks < max_blocks ? blocks : max_blocks)}, dim3{256}, mul_rows_kernel, p);
}

__global__ void flip_kernel(FlipParams p) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.rows * p.cols; i += stride) {
    const int64_t r = i / p.cols, c = i % p.cols;
    const int64_t sr = p.flip_rows ? p.rows - 1 - r : r, sc = p.flip_cols ? p.cols - 1 - c : c;
    p.out[r * p.ldo + c] = p.x[sr * p.ldx + sc];
  }
}

template <class Launch>
void flip_run(const FlipParams& p, int64_t max_blocks, Launch launch) {
  const int64_t blocks = (p.rows * p.cols + 255) / 256;
  launch(dim3{unsigned(blocks < max_blocks ? blocks : max_blocks)}, dim3{256}, flip_kernel, p);
}

// Grid: x = tokens, y = channel groups of 32.
__global__ void embedding_fwd_kernel(EmbeddingParams p) {
  const int64_t t = blockIdx.x, c = int64_t(blockIdx.y) * kLanes + threadIdx.x;
  if (c >= p.dim) return;
  const int64_t v = p.ids[t];
  if (v < 0 || v >= p.vocab) {
    if (c == 0) *p.bad_id = int(t < 0x7ffffffe ? t + 1 : 0x7fffffff);
    return;
  }
  p.out[t * p.out_r + c] = p.table[v * p.dim + c];
}

// Grid: x = vocabulary rows, y = channel groups of 32.
__global__ void embedding_bwd_kernel(EmbeddingParams p) {
  const int64_t v = blockIdx.x, c = int64_t(blockIdx.y) * kLanes + threadIdx.x;
  if (c >= p.dim) return;
  float s = 0.0f;
  for (int64_t t = 0; t < p.tokens; ++t)
    if (p.ids[t] == v) s += p.dout[t * p.dout_r + c];
  p.dtable[v * p.dim + c] = s;
}

template <class Launch>
void activation_run(const ActivationParams& p, bool backward, int64_t max_blocks, Launch launch) {
  constexpr int64_t kThreads = 256;
  const int64_t blocks = (p.n + kThreads - 1) / kThreads;
  const dim3 grid{unsigned(blocks < max_blocks ? blocks : max_blocks)}, block{unsigned(kThreads)};
  if (backward)
    launch(grid, block, activation_kernel<true>, p);
  else
    launch(grid, block, activation_kernel<false>, p);
}

template <class Launch>
void embedding_forward_run(const EmbeddingParams& p, Launch launch) {
  launch(dim3(unsigned(p.tokens), unsigned((p.dim + kLanes - 1) / kLanes)), dim3(kLanes), embedding_fwd_kernel, p);
}

template <class Launch>
void embedding_backward_run(const EmbeddingParams& p, Launch launch) {
  launch(dim3(unsigned(p.vocab), unsigned((p.dim + kLanes - 1) / kLanes)), dim3(kLanes), embedding_bwd_kernel, p);
}

LS_KERNELS_END
}  // namespace longseq::cuda
