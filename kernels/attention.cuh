// Causal attention kernel source (nvcc in kernels/attention.cu; the CPU tests through
// kernels/emu/cuda_emu.h). FlashAttention-2's schedule: a block owns a tile of query rows of one
// head and walks the key tiles up to its last row's position (later tiles are skipped, the diagonal
// tile masked), with the K and V tiles staged in shared memory and an online softmax (running
// maximum and sum per row) so that the (Lq, S) scores never exist. The backward recomputes the
// probabilities from the saved log-sum-exp, as FA2 does, but without atomics: one kernel owns dq
// (per query tile, over its keys), another dk and dv (per key tile, over the queries of every head
// of its group), so the gradients are the same bits on every run.
// Threads: 128 = 16 tile rows x 8 column slices (thread (r, s) owns columns s, s + 8, ... of row r,
// at most 16 registers per accumulator at hd = 128); a score is a dot product over shared memory.
// Scalar fp32 FMAs, no tensor-core mma (which the emulation cannot run): docs/CUDA.md.
#pragma once

#include "kernels/attention.h"
#include "kernels/attention_mask.h"
#include "kernels/storage.cuh"

#include <cmath>

namespace longseq::cuda {
LS_KERNELS_BEGIN

inline constexpr int kAttnTile = 16;                                  // query rows and keys per tile
inline constexpr int kAttnThreads = 128;                              // per block
inline constexpr int kAttnSlices = kAttnThreads / kAttnTile;          // threads per tile row
inline constexpr int kAttnCols = kAttentionMaxHeadDim / kAttnSlices;  // columns per thread
inline constexpr int kAttnPad = kAttentionMaxHeadDim + 1;             // row pitch: rows start in different banks

using AttnTile = float[kAttnTile][kAttnPad];

LS_HD int64_t attn_min(int64_t a, int64_t b) { return a < b ? a : b; }
LS_HD float attn_scale(const AttentionParams& p) { return p.scale > 0.0f ? p.scale : 1.0f / sqrtf(float(p.head_dim)); }
// Query row i (position offset + i) sees key j.
LS_HD bool attn_sees(const AttentionParams& p, int64_t i, int64_t j) {
  return j <= p.offset + i && j >= attention_first_key(p.offset + i, p.window);
}

// tile[r][e] = src[base + r ld + e] for r < rows (zeros after), e < hd; all threads take part.
template <class E>
__device__ void attn_load_tile(AttnTile& tile, const void* src, int64_t base, int64_t ld, int64_t rows, int64_t hd) {
  for (int64_t idx = threadIdx.x; idx < kAttnTile * hd; idx += kAttnThreads) {
    const int64_t r = idx / hd, e = idx % hd;
    tile[r][e] = r < rows ? load_as<E>(src, base + r * ld + e) : 0.0f;
  }
}

__device__ inline float attn_dot(const float* a, const float* b, int64_t hd) {
  float s = 0.0f;
  for (int64_t e = 0; e < hd; ++e) s += a[e] * b[e];
  return s;
}

// Grid: x = query tiles, y = heads, z = batch.
template <class E>
__global__ void __launch_bounds__(kAttnThreads) attention_fwd_kernel(AttentionParams p) {
  __shared__ AttnTile qs, ks, vs;
  __shared__ float ps[kAttnTile][kAttnTile + 1];
  __shared__ float m_s[kAttnTile], l_s[kAttnTile], alpha_s[kAttnTile];
  const int t = int(threadIdx.x), row = t / kAttnSlices, slice = t % kAttnSlices;
  const int64_t hd = p.head_dim, h = blockIdx.y, b = blockIdx.z, kvh = h / (p.heads / p.kv_heads);
  const int64_t i0 = int64_t(blockIdx.x) * kAttnTile, rows = attn_min(kAttnTile, p.queries - i0);
  const float scale = attn_scale(p);
  attn_load_tile<E>(qs, p.q, b * p.q_b + i0 * p.q_l + h * hd, p.q_l, rows, hd);
  if (t < kAttnTile) m_s[t] = -INFINITY, l_s[t] = 0.0f;
  float o[kAttnCols] = {};
  const int64_t key_end = p.offset + i0 + rows;  // the tile's last row sees keys up to key_end - 1
  for (int64_t j0 = attention_first_key(p.offset + i0, p.window); j0 < key_end; j0 += kAttnTile) {
    const int64_t n = attn_min(kAttnTile, key_end - j0);
    __syncthreads();  // the previous tile's reads of ks, vs and ps are done
    attn_load_tile<E>(ks, p.k, b * p.k_b + j0 * p.k_l + kvh * hd, p.k_l, n, hd);
    attn_load_tile<E>(vs, p.v, b * p.v_b + j0 * p.v_l + kvh * hd, p.v_l, n, hd);
    __syncthreads();
    for (int pair = t; pair < kAttnTile * kAttnTile; pair += kAttnThreads) {
      const int r = pair / kAttnTile, j = pair % kAttnTile;
      const bool seen = r < rows && j < n && attn_sees(p, i0 + r, j0 + j);
      ps[r][j] = seen ? attn_dot(qs[r], ks[j], hd) * scale : -INFINITY;
    }
    __syncthreads();
    if (t < kAttnTile) {  // row t's online-softmax step: new maximum, rescale, probabilities
      float mx = m_s[t];
      for (int j = 0; j < kAttnTile; ++j) mx = fmaxf(mx, ps[t][j]);
      const bool any = mx != -INFINITY;  // false only for rows past the queries
      const float alpha = any ? expf(m_s[t] - mx) : 1.0f;
      float sum = 0.0f;
      for (int j = 0; j < kAttnTile; ++j) {
        const float pr = any ? expf(ps[t][j] - mx) : 0.0f;
        ps[t][j] = pr;
        sum += pr;
      }
      l_s[t] = l_s[t] * alpha + sum, m_s[t] = mx, alpha_s[t] = alpha;
    }
    __syncthreads();
    const float alpha = alpha_s[row];
    for (int c = 0; c < kAttnCols; ++c) {
      const int64_t e = slice + int64_t(c) * kAttnSlices;
      if (e >= hd) break;
      float acc = o[c] * alpha;
      for (int64_t j = 0; j < n; ++j) acc += ps[row][j] * vs[j][e];
      o[c] = acc;
    }
  }
  if (row >= rows) return;
  const int64_t i = i0 + row;
  const float inv_l = 1.0f / l_s[row];
  E* y = static_cast<E*>(p.y) + b * p.y_b + i * p.y_l + h * hd;
  for (int c = 0; c < kAttnCols; ++c) {
    const int64_t e = slice + int64_t(c) * kAttnSlices;
    if (e >= hd) break;
    store_f32(y + e, o[c] * inv_l);
  }
  if (p.lse && slice == 0) p.lse[(b * p.heads + h) * p.queries + i] = m_s[row] + logf(l_s[row]);
}

// One thread per (b, h, i): rowdot = dy_i . y_i of the head (the D_i of FA2's backward).
__global__ void attention_rowdot_kernel(AttentionBwdParams g) {
  const AttentionParams& p = g.fwd;
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= p.batch * p.heads * p.queries) return;
  const int64_t i = idx % p.queries, h = (idx / p.queries) % p.heads, b = idx / (p.queries * p.heads), hd = p.head_dim;
  const float* dy = g.dy + b * g.dy_b + i * g.dy_l + h * hd;
  const float* y = static_cast<const float*>(p.y) + b * p.y_b + i * p.y_l + h * hd;
  g.rowdot[idx] = attn_dot(dy, y, hd);
}

// Loads rows i0 .. i0 + rows - 1 of head h: q and dy into tiles, lse and rowdot into lse_s, rd_s.
__device__ inline void attn_load_queries(const AttentionBwdParams& g, int64_t b, int64_t h, int64_t i0, int64_t rows, AttnTile& qs,
                                         AttnTile& dys, float* lse_s, float* rd_s) {
  const AttentionParams& p = g.fwd;
  const int64_t hd = p.head_dim;
  attn_load_tile<float>(qs, p.q, b * p.q_b + i0 * p.q_l + h * hd, p.q_l, rows, hd);
  attn_load_tile<float>(dys, g.dy, b * g.dy_b + i0 * g.dy_l + h * hd, g.dy_l, rows, hd);
  const int t = int(threadIdx.x);
  if (t < kAttnTile) {
    const int64_t at = (b * p.heads + h) * p.queries + i0 + t;
    lse_s[t] = t < rows ? p.lse[at] : 0.0f;
    rd_s[t] = t < rows ? g.rowdot[at] : 0.0f;
  }
}

// Grid: x = query tiles, y = heads, z = batch. dq_i = scale sum_j P_ij (dP_ij - D_i) k_j.
__global__ void __launch_bounds__(kAttnThreads) attention_bwd_dq_kernel(AttentionBwdParams g) {
  __shared__ AttnTile qs, dys, ks, vs;
  __shared__ float ds[kAttnTile][kAttnTile + 1];
  __shared__ float lse_s[kAttnTile], rd_s[kAttnTile];
  const AttentionParams& p = g.fwd;
  const int t = int(threadIdx.x), row = t / kAttnSlices, slice = t % kAttnSlices;
  const int64_t hd = p.head_dim, h = blockIdx.y, b = blockIdx.z, kvh = h / (p.heads / p.kv_heads);
  const int64_t i0 = int64_t(blockIdx.x) * kAttnTile, rows = attn_min(kAttnTile, p.queries - i0);
  const float scale = attn_scale(p);
  attn_load_queries(g, b, h, i0, rows, qs, dys, lse_s, rd_s);
  float dq[kAttnCols] = {};
  const int64_t key_end = p.offset + i0 + rows;
  for (int64_t j0 = attention_first_key(p.offset + i0, p.window); j0 < key_end; j0 += kAttnTile) {
    const int64_t n = attn_min(kAttnTile, key_end - j0);
    __syncthreads();
    attn_load_tile<float>(ks, p.k, b * p.k_b + j0 * p.k_l + kvh * hd, p.k_l, n, hd);
    attn_load_tile<float>(vs, p.v, b * p.v_b + j0 * p.v_l + kvh * hd, p.v_l, n, hd);
    __syncthreads();
    for (int pair = t; pair < kAttnTile * kAttnTile; pair += kAttnThreads) {
      const int r = pair / kAttnTile, j = pair % kAttnTile;
      float d = 0.0f;
      if (r < rows && j < n && attn_sees(p, i0 + r, j0 + j)) {
        const float pr = expf(attn_dot(qs[r], ks[j], hd) * scale - lse_s[r]);
        d = pr * (attn_dot(dys[r], vs[j], hd) - rd_s[r]) * scale;
      }
      ds[r][j] = d;
    }
    __syncthreads();
    for (int c = 0; c < kAttnCols; ++c) {
      const int64_t e = slice + int64_t(c) * kAttnSlices;
      if (e >= hd) break;
      for (int64_t j = 0; j < n; ++j) dq[c] += ds[row][j] * ks[j][e];
    }
  }
  if (row >= rows) return;
  float* out = g.dq + b * g.dq_b + (i0 + row) * g.dq_l + h * hd;
  for (int c = 0; c < kAttnCols; ++c) {
    const int64_t e = slice + int64_t(c) * kAttnSlices;
    if (e >= hd) break;
    out[e] = dq[c];
  }
}

// Grid: x = key tiles, y = key/value heads, z = batch. For every query head of the group and every
// query that sees a key of the tile: dv_j += P_ij dy_i, dk_j += scale P_ij (dP_ij - D_i) q_i.
__global__ void __launch_bounds__(kAttnThreads) attention_bwd_dkv_kernel(AttentionBwdParams g) {
  __shared__ AttnTile ks, vs, qs, dys;
  __shared__ float ps[kAttnTile][kAttnTile + 1], ds[kAttnTile][kAttnTile + 1];
  __shared__ float lse_s[kAttnTile], rd_s[kAttnTile];
  const AttentionParams& p = g.fwd;
  const int t = int(threadIdx.x), key = t / kAttnSlices, slice = t % kAttnSlices;
  const int64_t hd = p.head_dim, kvh = blockIdx.y, b = blockIdx.z, group = p.heads / p.kv_heads;
  const int64_t j0 = int64_t(blockIdx.x) * kAttnTile, n = attn_min(kAttnTile, p.keys - j0);
  const float scale = attn_scale(p);
  attn_load_tile<float>(ks, p.k, b * p.k_b + j0 * p.k_l + kvh * hd, p.k_l, n, hd);
  attn_load_tile<float>(vs, p.v, b * p.v_b + j0 * p.v_l + kvh * hd, p.v_l, n, hd);
  float dk[kAttnCols] = {}, dv[kAttnCols] = {};
  // Query i sees key j when j <= offset + i (and, with a window, j > offset + i - window).
  const int64_t first = j0 - p.offset > 0 ? j0 - p.offset : 0;
  const int64_t last = p.window > 0 ? attn_min(p.queries, j0 + n - 1 - p.offset + p.window) : p.queries;  // exclusive
  for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h)
    for (int64_t i0 = first; i0 < last; i0 += kAttnTile) {
      const int64_t rows = attn_min(kAttnTile, p.queries - i0);
      __syncthreads();
      attn_load_queries(g, b, h, i0, rows, qs, dys, lse_s, rd_s);
      __syncthreads();
      for (int pair = t; pair < kAttnTile * kAttnTile; pair += kAttnThreads) {
        const int r = pair / kAttnTile, j = pair % kAttnTile;
        float pr = 0.0f, d = 0.0f;
        if (r < rows && j < n && attn_sees(p, i0 + r, j0 + j)) {
          pr = expf(attn_dot(qs[r], ks[j], hd) * scale - lse_s[r]);
          d = pr * (attn_dot(dys[r], vs[j], hd) - rd_s[r]) * scale;
        }
        ps[r][j] = pr, ds[r][j] = d;
      }
      __syncthreads();
      for (int c = 0; c < kAttnCols; ++c) {
        const int64_t e = slice + int64_t(c) * kAttnSlices;
        if (e >= hd) break;
        for (int64_t r = 0; r < rows; ++r) dv[c] += ps[r][key] * dys[r][e], dk[c] += ds[r][key] * qs[r][e];
      }
    }
  if (key >= n) return;
  float* gk = g.dk + b * g.dk_b + (j0 + key) * g.dk_l + kvh * hd;
  float* gv = g.dv + b * g.dv_b + (j0 + key) * g.dv_l + kvh * hd;
  for (int c = 0; c < kAttnCols; ++c) {
    const int64_t e = slice + int64_t(c) * kAttnSlices;
    if (e >= hd) break;
    gk[e] = dk[c], gv[e] = dv[c];
  }
}

// One thread per (row, pair i < hd/2): the angle once, then every head's pair turned.
__global__ void rotary_kernel(RotaryParams p) {
  const int64_t half = p.head_dim / 2, idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= p.rows * half) return;
  const int64_t t = idx / half, i = idx % half;
  const double angle = double(p.offset + t) * p.pos_scale * double(p.inv_freq[i]);
  const double c = cos(angle), s = p.inverse ? -sin(angle) : sin(angle);
  for (int64_t h = 0; h < p.heads; ++h) {
    float* x = p.x + t * p.x_l + h * p.head_dim;
    const double x0 = x[i], x1 = x[i + half];
    x[i] = float(x0 * c - x1 * s);
    x[i + half] = float(x0 * s + x1 * c);
  }
}

// Drivers: launch(grid, block, kernel, params), a <<<>>> launch on a device or emu::launch.
template <class Launch>
void attention_forward_run(const AttentionParams& p, Launch launch) {
  const dim3 grid(unsigned((p.queries + kAttnTile - 1) / kAttnTile), unsigned(p.heads), unsigned(p.batch));
  dispatch_storage(p.dtype, [&](auto tag) { launch(grid, dim3(kAttnThreads), attention_fwd_kernel<typename decltype(tag)::type>, p); });
}

inline int64_t attention_bwd_scratch(const AttentionParams& p) { return p.batch * p.heads * p.queries; }

template <class Launch>
void attention_backward_run(AttentionBwdParams g, float* scratch, Launch launch) {
  const AttentionParams& p = g.fwd;
  g.rowdot = scratch;
  constexpr unsigned kThreads = 256;
  launch(dim3(unsigned((attention_bwd_scratch(p) + kThreads - 1) / kThreads)), dim3(kThreads), attention_rowdot_kernel, g);
  launch(dim3(unsigned((p.queries + kAttnTile - 1) / kAttnTile), unsigned(p.heads), unsigned(p.batch)), dim3(kAttnThreads),
         attention_bwd_dq_kernel, g);
  launch(dim3(unsigned((p.keys + kAttnTile - 1) / kAttnTile), unsigned(p.kv_heads), unsigned(p.batch)), dim3(kAttnThreads),
         attention_bwd_dkv_kernel, g);
}

template <class Launch>
void rotary_run(const RotaryParams& p, Launch launch) {
  constexpr unsigned kThreads = 256;
  launch(dim3(unsigned((p.rows * (p.head_dim / 2) + kThreads - 1) / kThreads)), dim3(kThreads), rotary_kernel, p);
}

LS_KERNELS_END
}  // namespace longseq::cuda
