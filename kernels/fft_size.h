// FFT sizes shared by the CPU (FFTW) and CUDA (cuFFT) long convolutions, so both transform the same
// n: both libraries are fast on sizes whose only prime factors are 2, 3, 5 and 7.
#pragma once

#include <cstdint>

namespace longseq {

// Smallest even 7-smooth n >= min_size.
inline int64_t fft_fast_size(int64_t min_size) {
  int64_t best = int64_t(1) << 62;
  for (int64_t p2 = 2; p2 < best; p2 *= 2)
    for (int64_t p3 = p2; p3 < best; p3 *= 3)
      for (int64_t p5 = p3; p5 < best; p5 *= 5)
        for (int64_t p7 = p5; p7 < best; p7 *= 7)
          if (p7 >= min_size) {
            best = p7;
            break;
          }
  return best;
}

}  // namespace longseq
