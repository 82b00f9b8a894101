// Storage types of the kernels' activations: fp32, or bf16 / fp16 bits. The arithmetic is fp32
// whatever the storage; only loads and stores convert (kernels/storage.cuh). One enum for every
// kernel that takes half-precision inputs, so a caller names a tensor's storage one way.
#pragma once

#include <cstdint>

namespace longseq::cuda {

enum class StorageType : uint8_t { f32, bf16, f16 };
struct Bf16 {  // bfloat16 bits (layout of __nv_bfloat16)
  uint16_t bits;
};
struct F16 {  // IEEE half bits (layout of __half)
  uint16_t bits;
};

}  // namespace longseq::cuda
