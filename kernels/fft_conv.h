// CUDA long convolution by FFT (Hyena's global op), forward and backward:
//   y[b, t, d] = gate[b, t, d] * ( sum_{s <= t} k[s, d] u[b, t - s, d] + bias[d] u[b, t, d] ),
// the same math as core/ops/ops.h (fft_causal_conv_*) (gate optional: Hyena's next projection; bias: its D skip).
// u, gate, y, dy and the gradients are (B, L, D) with batch and token strides and unit channel
// stride; k and dk are (L, D) with a token stride. The FFT size n is even and >= 2L - 1, so the
// circular convolution is the exact linear one. Channels run in blocks so that the working set
// (about (4 B + 1) x block x n floats) fits a memory budget whatever L is.
#pragma once

#include "kernels/elementwise.h"  // BLD

#include <cstdint>

namespace longseq::cuda {

struct CFloat {  // layout of cufftComplex
  float re, im;
};

// Spectra of the filter columns, (D, n/2 + 1) complex, unscaled: reusable for every input of
// length L (callers cache it per layer and L). Device memory owned by the caller.
struct FftFilterSpectrum {
  int64_t length = 0, channels = 0, n = 0;  // L, D, FFT size
  const CFloat* spec = nullptr;
};

struct FftConvParams {
  int64_t batch = 0, length = 0, channels = 0;  // B, L, D
  BLD u, gate;                                  // gate optional
  const float* __restrict__ bias = nullptr;     // (D) or null
  FftFilterSpectrum filter;
  float* __restrict__ y = nullptr;  // may not alias u or gate
  int64_t y_b = 0, y_l = 0;
};

// Gradients, written (not accumulated): du; dk (L, D) when not null; dgate when gate is set;
// dbias when bias is set.
struct FftConvBwdParams {
  FftConvParams fwd;  // y unused
  BLD dy;
  float* __restrict__ du = nullptr;
  int64_t du_b = 0, du_l = 0;
  float* __restrict__ dk = nullptr;  // (L, D) or null
  int64_t dk_l = 0;
  float* __restrict__ dgate = nullptr;
  int64_t dgate_b = 0, dgate_l = 0;
  float* __restrict__ dbias = nullptr;
};

// The FFT size for length L: the smallest even 2^a 3^b 5^c 7^d >= 2L - 1 (kernels/fft_size.h, as on
// the CPU; cuFFT's fast radices).
int64_t fft_conv_size(int64_t length);

// Device pointers; launch on the default stream and synchronize; cuFFT plans are cached per (n,
// batch) for the process. Throw longseq::Error for bad sizes, a filter spectrum of another L / n /
// D, missing pointers, or a CUDA / cuFFT failure (out of memory included).
// k: (L, D) with token stride k_l; spec: (D, n/2 + 1) device memory for the result.
void fft_conv_filter_spectrum(const float* k, int64_t k_l, int64_t length, int64_t channels, CFloat* spec);
void fft_conv_forward(const FftConvParams& p);
void fft_conv_backward(const FftConvBwdParams& p);

}  // namespace longseq::cuda
