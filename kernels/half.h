// The __host__ __device__ qualifier macro and the fp32 <-> f16/bf16 conversions, shared by the CUDA
// kernels and core's CPU paths: kernels/ includes nothing from core/, so what both need lives here.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define LS_HD __host__ __device__ __forceinline__
#else
#define LS_HD inline
#endif

namespace longseq {

LS_HD uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
LS_HD float f32_from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

LS_HD float bf16_to_f32(uint16_t h) { return f32_from_bits(uint32_t(h) << 16); }

// Round to nearest even; NaN stays a (quiet) NaN.
LS_HD uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x0040u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

LS_HD float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return f32_from_bits(sign | 0x7f800000u | (man << 13));  // inf / nan
  if (exp != 0) return f32_from_bits(sign | ((exp + 112u) << 23) | (man << 13));
  if (man == 0) return f32_from_bits(sign);
  // Subnormal: value = man * 2^-24, exact in fp32.
  const float v = float(man) * 5.9604644775390625e-8f;
  return sign ? -v : v;
}

// Round to nearest even, overflow to inf, NaN stays NaN.
LS_HD uint16_t f32_to_f16(float f) {
  const uint32_t u = f32_bits(f);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (a >= 0x38800000u) {                                  // normal half
    const uint32_t rounded = a + 0xfffu + ((a >> 13) & 1u);
    return uint16_t(sign | ((rounded - 0x38000000u) >> 13));
  }
  if (a < 0x33000000u) return sign;  // below half the smallest subnormal: +-0
  // Subnormal half: shift the full mantissa into place and round to nearest even.
  const uint32_t exp = a >> 23;
  const uint32_t man = (a & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - exp;  // 14..24
  const uint32_t half_ulp = 1u << (shift - 1);
  uint32_t v = man >> shift;
  const uint32_t rest = man & ((1u << shift) - 1u);
  if (rest > half_ulp || (rest == half_ulp && (v & 1u))) ++v;
  return uint16_t(sign | v);
}

}  // namespace longseq
