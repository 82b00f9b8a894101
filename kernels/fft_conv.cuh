// FFT long convolution kernel source, compiled by nvcc (kernels/fft_conv.cu, with cuFFT) and under
// kernels/emu/cuda_emu.h by the CPU tests (with FFTW standing in for cuFFT). The transforms run on
// channel-major rows (one zero-padded row of n samples per (b, channel)), while activations are
// token-major: pack and unpack are 32 x 32 tile transposes through shared memory, so both the
// token-major side (lane = channel) and the row side (lane = time) are 128-byte accesses. The
// pointwise work is fused into them: pack multiplies by an optional second tensor (dy x gate in the
// backward); unpack scales by 1/n and adds the D skip and gating. Spectral products are one pass.
// Drivers are templates on `launch` (as for the other kernels) and on `fft`, an object with
// forward(time, spec, rows) (R2C of rows of n reals) and inverse(spec, time, rows) (C2R, unscaled,
// which may overwrite spec, as cuFFT's does).
#pragma once

#include "kernels/half.h"  // LS_HD
#include "kernels/block_scan.cuh"  // kLanes
#include "kernels/elementwise.cuh"  // bld_at, column sums
#include "kernels/fft_conv.h"

namespace longseq::cuda {
LS_KERNELS_BEGIN

inline constexpr int kTileRows = 8;  // threads per tile column: a block is 32 x 8, each thread 4 rows of a 32 x 32 tile

// (B, cb, n) rows <- channels [c0, c0 + cb) of a token-major (B, L, D) operand, times `mul` if set,
// zero beyond L.
struct FftPackParams {
  int64_t batch = 0, length = 0, channels = 0, c0 = 0, cb = 0, n = 0;
  BLD src, mul;
  float* __restrict__ rows = nullptr;
};

// out[b, t, c0 + c] = m (rows[b, c, t] scale + bias[c0 + c] s1 s2) for t < L, each factor optional
// (m, s2 absent = 1; s1 or bias absent = no skip term).
struct FftUnpackParams {
  int64_t batch = 0, length = 0, channels = 0, c0 = 0, cb = 0, n = 0;
  const float* __restrict__ rows = nullptr;
  float scale = 1.0f;
  BLD m, s1, s2;
  const float* __restrict__ bias = nullptr;
  float* __restrict__ out = nullptr;
  int64_t out_b = 0, out_l = 0;
};

// dst[r, f] = src[r, f] x K[c0 + r % cb, f] (or its conjugate), r over B x cb rows of n/2 + 1 bins.
struct SpectrumMulParams {
  int64_t rows = 0, cb = 0, c0 = 0, bins = 0;
  const CFloat* src = nullptr;  // may equal dst
  CFloat* dst = nullptr;
  const CFloat* __restrict__ K = nullptr;  // (D, bins)
  bool conj = false;
};

// out[c, f] = sum over b (in order) of A[b, c, f] x conj(U[b, c, f]).
struct SpectrumCorrParams {
  int64_t batch = 0, cb = 0, bins = 0;
  const CFloat* __restrict__ A = nullptr;
  const CFloat* __restrict__ U = nullptr;
  CFloat* __restrict__ out = nullptr;
};

LS_HD CFloat cmul(CFloat a, CFloat b, bool conj_b) {
  const float bi = conj_b ? -b.im : b.im;
  return {a.re * b.re - a.im * bi, a.re * bi + a.im * b.re};
}

__global__ void fft_pack_kernel(FftPackParams q) {
  __shared__ float tile[kLanes][kLanes + 1];  // +1: the transposed reads hit 32 different banks
  const int lane = int(threadIdx.x), row = int(threadIdx.y);
  const int64_t t_base = int64_t(blockIdx.x) * kLanes, c_base = int64_t(blockIdx.y) * kLanes, b = blockIdx.z;
  for (int r = row; r < kLanes; r += kTileRows) {
    const int64_t t = t_base + r, c = c_base + lane;
    float v = 0.0f;
    if (t < q.length && c < q.cb) {
      v = bld_at(q.src, b, t, q.c0 + c);
      if (q.mul.ptr) v *= bld_at(q.mul, b, t, q.c0 + c);
    }
    tile[r][lane] = v;
  }
  __syncthreads();
  for (int r = row; r < kLanes; r += kTileRows) {
    const int64_t c = c_base + r, t = t_base + lane;
    if (c < q.cb && t < q.n) q.rows[(b * q.cb + c) * q.n + t] = tile[lane][r];
  }
}

__global__ void fft_unpack_kernel(FftUnpackParams q) {
  __shared__ float tile[kLanes][kLanes + 1];
  const int lane = int(threadIdx.x), row = int(threadIdx.y);
  const int64_t t_base = int64_t(blockIdx.x) * kLanes, c_base = int64_t(blockIdx.y) * kLanes, b = blockIdx.z;
  for (int r = row; r < kLanes; r += kTileRows) {
    const int64_t c = c_base + r, t = t_base + lane;
    tile[r][lane] = c < q.cb && t < q.length ? q.rows[(b * q.cb + c) * q.n + t] : 0.0f;
  }
  __syncthreads();
  for (int r = row; r < kLanes; r += kTileRows) {
    const int64_t t = t_base + r, c = c_base + lane, d = q.c0 + c;
    if (t >= q.length || c >= q.cb) continue;
    float v = tile[lane][r] * q.scale;
    if (q.bias && q.s1.ptr) v += q.bias[d] * bld_at(q.s1, b, t, d) * (q.s2.ptr ? bld_at(q.s2, b, t, d) : 1.0f);
    if (q.m.ptr) v *= bld_at(q.m, b, t, d);
    q.out[b * q.out_b + t * q.out_l + d] = v;
  }
}

// Grid: x over bins, y over rows.
__global__ void spectrum_multiply_kernel(SpectrumMulParams q) {
  const int64_t f = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, r = blockIdx.y;
  if (f >= q.bins) return;
  q.dst[r * q.bins + f] = cmul(q.src[r * q.bins + f], q.K[(q.c0 + r % q.cb) * q.bins + f], q.conj);
}

// Grid: x over bins, y over channels of the block.
__global__ void spectrum_correlate_kernel(SpectrumCorrParams q) {
  const int64_t f = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, c = blockIdx.y;
  if (f >= q.bins) return;
  CFloat acc{0.0f, 0.0f};
  for (int64_t b = 0; b < q.batch; ++b) {
    const CFloat p = cmul(q.A[(b * q.cb + c) * q.bins + f], q.U[(b * q.cb + c) * q.bins + f], true);
    acc.re += p.re, acc.im += p.im;
  }
  q.out[c * q.bins + f] = acc;
}

// Scratch layout of one channel block of `cb` channels: time rows (B, cb, n), two spectra (B, cb,
// n/2 + 1) and the filter-gradient spectrum (cb, n/2 + 1), in floats.
inline int64_t fft_conv_scratch(int64_t batch, int64_t cb, int64_t n) { return batch * cb * n + (2 * batch + 1) * cb * (n / 2 + 1) * 2; }

struct FftConvBuffers {
  float* time = nullptr;
  CFloat *spec_a = nullptr, *spec_b = nullptr, *spec_k = nullptr;
};

inline FftConvBuffers fft_conv_buffers(float* scratch, int64_t batch, int64_t cb, int64_t n) {
  FftConvBuffers s;
  const int64_t bins = n / 2 + 1;
  s.time = scratch;
  s.spec_a = reinterpret_cast<CFloat*>(scratch + batch * cb * n);
  s.spec_b = s.spec_a + batch * cb * bins;
  s.spec_k = s.spec_b + batch * cb * bins;
  return s;
}

template <class Launch>
void fft_pack(Launch launch, int64_t batch, int64_t L, int64_t D, int64_t c0, int64_t cb, int64_t n, BLD src, BLD mul, float* rows) {
  launch(dim3(unsigned((n + kLanes - 1) / kLanes), unsigned((cb + kLanes - 1) / kLanes), unsigned(batch)), dim3(kLanes, kTileRows),
         fft_pack_kernel, FftPackParams{batch, L, D, c0, cb, n, src, mul, rows});
}

template <class Launch>
void fft_unpack(Launch launch, const FftUnpackParams& q) {
  launch(dim3(unsigned((q.length + kLanes - 1) / kLanes), unsigned((q.cb + kLanes - 1) / kLanes), unsigned(q.batch)), dim3(kLanes, kTileRows),
         fft_unpack_kernel, q);
}

template <class Launch>
void spectrum_multiply(Launch launch, const SpectrumMulParams& q) {
  constexpr unsigned kThreads = 256;
  launch(dim3(unsigned((q.bins + kThreads - 1) / kThreads), unsigned(q.rows)), dim3(kThreads), spectrum_multiply_kernel, q);
}

// The filter spectrum: k (L, D) with token stride k_l, channels in blocks of cb; scratch as for
// one channel block with B = 1.
template <class Launch, class Fft>
void fft_filter_spectrum_run(const float* k, int64_t k_l, int64_t L, int64_t D, int64_t n, int64_t cb, CFloat* spec, float* scratch,
                             Launch launch, Fft& fft) {
  for (int64_t c0 = 0; c0 < D; c0 += cb) {
    const int64_t nc = c0 + cb < D ? cb : D - c0;
    fft_pack(launch, 1, L, D, c0, nc, n, BLD{k, 0, k_l}, BLD{}, scratch);
    fft.forward(scratch, spec + c0 * (n / 2 + 1), nc);
  }
}

// Forward over channel blocks of cb: pack u, R2C, times K, C2R, unpack with skip and gate.
template <class Launch, class Fft>
void fft_conv_forward_run(const FftConvParams& p, int64_t cb, float* scratch, Launch launch, Fft& fft) {
  const int64_t B = p.batch, L = p.length, D = p.channels, n = p.filter.n, bins = n / 2 + 1;
  for (int64_t c0 = 0; c0 < D; c0 += cb) {
    const int64_t nc = c0 + cb < D ? cb : D - c0;
    const FftConvBuffers s = fft_conv_buffers(scratch, B, nc, n);
    fft_pack(launch, B, L, D, c0, nc, n, p.u, BLD{}, s.time);
    fft.forward(s.time, s.spec_a, B * nc);
    spectrum_multiply(launch, SpectrumMulParams{B * nc, nc, c0, bins, s.spec_a, s.spec_a, p.filter.spec, false});
    fft.inverse(s.spec_a, s.time, B * nc);
    fft_unpack(launch, FftUnpackParams{B, L, D, c0, nc, n, s.time, 1.0f / float(n), p.gate, p.u, BLD{}, p.bias, p.y, p.y_b, p.y_l});
  }
}

// Floats of scratch for the backward's dbias partials.
inline int64_t fft_conv_dbias_scratch(int64_t length, int64_t channels, int64_t tiles) { return column_sums_scratch(channels, tiles); }

// Backward over channel blocks: U = R2C(u); dgate = dy (conv + bias u) from C2R(U K); G = R2C(dy
// gate); dk from C2R(sum_b G conj(U)); du = C2R(G conj(K)) / n + bias dy gate; dbias = sum dy gate u.
template <class Launch, class Fft>
void fft_conv_backward_run(const FftConvBwdParams& g, int64_t cb, int64_t dbias_tiles, float* scratch, float* dbias_scratch, Launch launch,
                           Fft& fft) {
  const FftConvParams& p = g.fwd;
  const int64_t B = p.batch, L = p.length, D = p.channels, n = p.filter.n, bins = n / 2 + 1;
  const float inv_n = 1.0f / float(n);
  for (int64_t c0 = 0; c0 < D; c0 += cb) {
    const int64_t nc = c0 + cb < D ? cb : D - c0;
    const FftConvBuffers s = fft_conv_buffers(scratch, B, nc, n);
    fft_pack(launch, B, L, D, c0, nc, n, p.u, BLD{}, s.time);
    fft.forward(s.time, s.spec_a, B * nc);  // U
    if (p.gate.ptr) {
      spectrum_multiply(launch, SpectrumMulParams{B * nc, nc, c0, bins, s.spec_a, s.spec_b, p.filter.spec, false});
      fft.inverse(s.spec_b, s.time, B * nc);
      fft_unpack(launch, FftUnpackParams{B, L, D, c0, nc, n, s.time, inv_n, g.dy, p.u, BLD{}, p.bias, g.dgate, g.dgate_b, g.dgate_l});
    }
    fft_pack(launch, B, L, D, c0, nc, n, g.dy, p.gate, s.time);
    fft.forward(s.time, s.spec_b, B * nc);  // G
    if (g.dk) {
      launch(dim3(unsigned((bins + 255) / 256), unsigned(nc)), dim3(256), spectrum_correlate_kernel,
             SpectrumCorrParams{B, nc, bins, s.spec_b, s.spec_a, s.spec_k});
      fft.inverse(s.spec_k, s.time, nc);
      fft_unpack(launch, FftUnpackParams{1, L, D, c0, nc, n, s.time, inv_n, BLD{}, BLD{}, BLD{}, nullptr, g.dk, 0, g.dk_l});
    }
    spectrum_multiply(launch, SpectrumMulParams{B * nc, nc, c0, bins, s.spec_b, s.spec_b, p.filter.spec, true});
    fft.inverse(s.spec_b, s.time, B * nc);
    fft_unpack(launch, FftUnpackParams{B, L, D, c0, nc, n, s.time, inv_n, BLD{}, g.dy, p.gate, p.bias, g.du, g.du_b, g.du_l});
  }
  if (p.bias) {
    column_sums_run(ColumnSumParams{B, L, D, dbias_tiles, 0, g.dy, p.gate, p.u, dbias_scratch, g.dbias}, launch);
  }
}

LS_KERNELS_END
}  // namespace longseq::cuda
