// f16/bf16 conversions checked exhaustively against the compiler's own _Float16 and a bit-level
// bf16 oracle: these functions are shared with the CUDA kernels.
#include "core/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

using namespace longseq;

TEST(DType, NamesRoundTrip) {
  for (DType t : {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64, DType::I32, DType::I16, DType::I8, DType::U8,
                  DType::Bool}) {
    auto back = dtype_from_name(dtype_name(t));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, t);
  }
  EXPECT_FALSE(dtype_from_name("F8_E4M3").has_value());
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::I64), 8u);
}

// The references are the compiler's _Float16 conversions: GCC has them on x86-64; clang 14 (the
// sanitizer build) has not, and skips these two (the release build runs them).
#ifdef __FLT16_MAX__
TEST(DType, F16ToF32AllValues) {
  for (uint32_t h = 0; h < 65536; ++h) {
    _Float16 ref;
    const uint16_t bits = uint16_t(h);
    std::memcpy(&ref, &bits, 2);
    const float want = float(ref);
    const float got = f16_to_f32(bits);
    if (std::isnan(want))
      EXPECT_TRUE(std::isnan(got)) << h;
    else
      EXPECT_EQ(f32_bits(got), f32_bits(want)) << "half bits " << h;
  }
}

TEST(DType, F32ToF16MatchesCompiler) {
  std::mt19937 rng(7);
  auto check = [](float f) {
    const _Float16 ref = static_cast<_Float16>(f);
    uint16_t want;
    std::memcpy(&want, &ref, 2);
    const uint16_t got = f32_to_f16(f);
    if (std::isnan(f))
      EXPECT_TRUE(std::isnan(f16_to_f32(got)));
    else
      EXPECT_EQ(got, want) << "f32 " << f << " bits " << f32_bits(f);
  };
  // Every half value, its neighbours and exact midpoints (the ties-to-even cases).
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const float a = f16_to_f32(uint16_t(h)), b = f16_to_f32(uint16_t(h + 1));
    for (float f : {a, b, 0.5f * (a + b), std::nextafter(0.5f * (a + b), a), std::nextafter(0.5f * (a + b), b)}) {
      check(f);
      check(-f);
    }
  }
  for (int i = 0; i < 200000; ++i) check(f32_from_bits(rng()));
  check(INFINITY);
  check(-INFINITY);
  check(NAN);
  check(65519.0f);
  check(65520.0f);
  check(1e-8f);
}
#endif  // __FLT16_MAX__

TEST(DType, BF16RoundTrip) {
  std::mt19937 rng(11);
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_f32(uint16_t(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f))));
      continue;
    }
    EXPECT_EQ(f32_to_bf16(f), uint16_t(h)) << h;  // bf16 -> f32 is exact, so it must come back
  }
  for (int i = 0; i < 200000; ++i) {
    const float f = f32_from_bits(rng());
    if (std::isnan(f)) continue;
    // Oracle: the nearest of the two bf16 neighbours, ties to even, computed in double.
    const uint32_t u = f32_bits(f);
    const uint16_t lo = uint16_t(u >> 16), hi = uint16_t(lo + 1);
    const double dl = std::abs(double(bf16_to_f32(lo)) - f), dh = std::abs(double(bf16_to_f32(hi)) - f);
    const uint16_t want = (u & 0xffff) == 0 ? lo : dl < dh ? lo : dh < dl ? hi : (lo & 1 ? hi : lo);
    if (std::isinf(bf16_to_f32(hi))) continue;  // rounding into infinity: not a neighbour-distance question
    EXPECT_EQ(f32_to_bf16(f), want) << f;
  }
}
