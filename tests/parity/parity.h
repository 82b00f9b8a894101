// The fixtures' acceptance rule, per tensor: max abs error against the float64 reference X is at
// most 2x the official float32 run's error (X_f32 vs X) plus 1e-6, and relative L2 error <= 1e-5.
// Prints the measured errors so test logs carry the figures.
#pragma once

#include "core/safetensors.h"
#include "tests/testing.h"

#include <cstdio>

namespace longseq::testing {

inline void expect_parity(const Tensor& got, const SafetensorsFile& io, const std::string& name) {
  const auto ref = io.load_f32(name).to_vector();
  const auto f32 = io.load_f32(name + "_f32").to_vector();
  const auto g = got.contiguous().to_vector();
  ASSERT_EQ(g.size(), ref.size()) << name;
  const ErrorStats e = compare(g, ref), official = compare(f32, ref);
  const double bound = 2 * official.max_abs + 1e-6;
  EXPECT_LE(e.max_abs, bound) << name << ": max abs " << e.max_abs << " vs bound " << bound;
  EXPECT_LE(e.rel_l2, 1e-5) << name;
  std::printf("  %-16s max_abs %.3e (official f32 %.3e)  rel_l2 %.3e\n", name.c_str(), e.max_abs, official.max_abs, e.rel_l2);
}

}  // namespace longseq::testing
