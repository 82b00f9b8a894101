// Device conversion of half-precision weights (F16/BF16) to F32. The per-element conversion is
// kernels/half.h's f16_to_f32 / bf16_to_f32, shared with the CPU path and tested there.
#pragma once

#include <cstdint>

namespace longseq::cuda {

struct ConvertParams {
  const uint16_t* __restrict__ src;  // device pointer, n elements
  float* __restrict__ dst;           // device pointer, n elements
  int64_t n;
  bool bf16;  // true: BF16 source, false: F16 source
};

// Launches on the default stream and synchronizes. Throws longseq::Error on a CUDA failure.
void convert_half_to_f32(const ConvertParams& p);

// Host convenience for tests: copies `n` host values to the device, converts, and copies back.
void convert_half_to_f32_host(const uint16_t* src, float* dst, int64_t n, bool bf16);

}  // namespace longseq::cuda
