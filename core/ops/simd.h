// Portable SIMD for the CPU fast paths: GCC vector extensions at the widest width the build targets
// (16 lanes with AVX-512, 8 with AVX2), so one source serves -march=native and x86-64-v3 builds.
// exp2/log are Cephes-style polynomials (relative error ~2e-7 over the ranges used); the scan is
// exp-bound, and libm's scalar expf is ~20x slower.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace longseq::simd {

#if defined(__AVX512F__)
inline constexpr int kLanes = 16;
#else
inline constexpr int kLanes = 8;
#endif

typedef float vf __attribute__((vector_size(kLanes * 4)));
typedef int32_t vi __attribute__((vector_size(kLanes * 4)));

inline vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
inline vf splat(float x) { return vf{} + x; }
inline vi as_int(vf v) {
  vi r;
  std::memcpy(&r, &v, sizeof r);
  return r;
}
inline vf as_float(vi v) {
  vf r;
  std::memcpy(&r, &v, sizeof r);
  return r;
}
inline vf select(vi mask, vf a, vf b) { return mask ? a : b; }
#if defined(__AVX512F__)
inline vf vmin(vf a, vf b) { return (vf)_mm512_maskz_min_ps(0xffff, (__m512)a, (__m512)b); }
inline vf vmax(vf a, vf b) { return (vf)_mm512_maskz_max_ps(0xffff, (__m512)a, (__m512)b); }
#else
inline vf vmin(vf a, vf b) { return a < b ? a : b; }
inline vf vmax(vf a, vf b) { return a > b ? a : b; }
#endif
// a * b + c with one rounding, whatever the compiler's -ffp-contract (sums whose order is part of a
// result's definition, as the GEMM's, say so explicitly).
#if defined(__AVX512F__)
inline vf fma(vf a, vf b, vf c) { return (vf)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c); }
#else
inline vf fma(vf a, vf b, vf c) { return (vf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c); }
#endif
inline float hsum(vf v) {
  float s = 0;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

// 2^f for f in [-0.5, 0.5] (Cephes exp2f polynomial, relative error ~2e-7).
inline vf exp2_fraction(vf f) {
  vf p = splat(1.535336188319500e-4f);
  p = p * f + 1.339887440266574e-3f;
  p = p * f + 9.618437357674640e-3f;
  p = p * f + 5.550332471162809e-2f;
  p = p * f + 2.402264791363012e-1f;
  p = p * f + 6.931472028550421e-1f;
  return p * f + 1.0f;
}

#if defined(__AVX512F__)
// 2^x = 2^n * 2^f with n = round(x), f in [-0.5, 0.5]; vscalefps applies 2^n with correct overflow
// to inf and underflow to 0, so no clamping is needed (9 instructions). The maskz forms avoid
// GCC 12's false maybe-uninitialized warnings on the unmasked intrinsics.
inline vf exp2(vf x) {
  const __m512 xx = (__m512)x;
  const __m512 n = _mm512_maskz_roundscale_ps(0xffff, xx, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const vf f = (vf)_mm512_sub_ps(xx, n);
  const vf p = exp2_fraction(f);
  return (vf)_mm512_maskz_scalef_ps(0xffff, (__m512)p, n);
}
#else
// 2^x for x in [-126, 127] (clamped outside).
inline vf exp2(vf x) {
  x = vmin(vmax(x, splat(-126.0f)), splat(127.0f));
  const vi n = __builtin_convertvector(x + 128.5f, vi) - 128;  // round to nearest (x + 128.5 > 0)
  const vf f = x - __builtin_convertvector(n, vf);            // [-0.5, 0.5]
  const vf p = exp2_fraction(f);
  return as_float(as_int(p) + (n << 23));
}
#endif

inline constexpr float kLog2e = 1.4426950408889634f;

inline vf exp(vf x) { return exp2(x * kLog2e); }

// Natural log for positive normal x.
inline vf log(vf x) {
  const vi bits = as_int(x);
  vi e = ((bits >> 23) & 0xff) - 126;
  vf m = as_float((bits & 0x7fffff) | 0x3f000000);  // [0.5, 1)
  const vi small = m < 0.70710678118654752f;
  e = e + small;  // small lanes are -1 (true), so this subtracts one
  m = select(small, m + m - 1.0f, m - 1.0f);
  const vf z = m * m;
  vf y = splat(7.0376836292e-2f);
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  const vf ef = __builtin_convertvector(e, vf);
  y = y + ef * -2.12194440e-4f;
  y = y - 0.5f * z;
  return m + y + ef * 0.693359375f;
}

// log(1 + e^x), as torch.nn.functional.softplus (threshold 20: identity above). log1p is computed
// with the u = 1 + e^x correction so tiny values keep their relative accuracy.
inline vf softplus(vf x) {
  const vf e = exp(vmin(x, splat(20.0f)));
  const vf u = 1.0f + e;
  const vf d = u - 1.0f;
  const vf lp = select(d == 0.0f, e, log(u) * (e / select(d == 0.0f, splat(1.0f), d)));
  return select(x > 20.0f, x, lp);
}

// GELU with the tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), with
// tanh(a) = 1 - 2 / (exp(2a) + 1).
inline vf gelu_tanh(vf x) {
  const vf a = 0.7978845608028654f * (x + 0.044715f * x * x * x);
  const vf th = 1.0f - 2.0f / (exp(2.0f * a) + 1.0f);
  return 0.5f * x * (1.0f + th);
}

// x * sigmoid(x).
inline vf silu(vf x) { return x / (1.0f + exp(-x)); }

}  // namespace longseq::simd
