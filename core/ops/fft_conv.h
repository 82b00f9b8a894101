// Causal long convolution by FFT (FFTW3 single precision), the one operation of long-convolution
// layers that is global in L:  y[t, c] = sum_{s <= t} k[s, c] * u[t - s, c]  (+ bias[c] * u[t, c]).
// Token-major (L, C) activations; channels are processed in fixed blocks, each block gathered into
// contiguous zero-padded rows, transformed (r2c), multiplied by the filter spectrum and transformed
// back (c2r). The FFT size is the smallest 2^a 3^b 5^c 7^d >= 2L - 1 (any size FFTW handles fast, not
// only powers of two), so the result is the exact linear convolution. Blocks and transform batches
// depend only on the sizes, never on the thread count, so results are identical for any --threads.
#pragma once

#include "kernels/fft_size.h"
#include "core/tensor.h"

#include <mutex>

namespace longseq {

// FFTW's planner is not thread-safe in any precision: every plan of the process is made under this
// lock (execution through the new-array interface needs none). The lock's owner is created on first
// use and returns FFTW's planner memory (fftw[f]_cleanup) at exit; a plan cache must call this
// before constructing itself, so that it is destroyed (and its plans with it) before that cleanup.
std::mutex& fftw_planner_mutex();


// Spectra of the filter columns, scaled by 1/n: (C, n/2 + 1) complex, stored as F32 (C, n/2 + 1, 2).
// Reusable across every input of length L (the filter depends only on the weights and L).
struct FilterSpectrum {
  int64_t L = 0, n = 0;
  Tensor spec;
};

// Spectra of k (L, C) (any row stride, unit channel stride).
FilterSpectrum fft_filter_spectrum(const Tensor& k);

struct FftConvArgs {
  Tensor u;     // (L, C), unit channel stride
  Tensor y;     // (L, C), unit channel stride, preallocated; may alias u
  Tensor bias;  // (C) or undefined: the skip term bias[c] * u[t, c]
  // Exactly one of: a precomputed spectrum, or the filter (L, C).
  const FilterSpectrum* spectrum = nullptr;
  Tensor k;
};

void fft_conv(const FftConvArgs& args);

// Channels per block for a transform of size n (a multiple of the transform batch).
int64_t fft_conv_block_channels(int64_t n, int64_t C);

}  // namespace longseq
