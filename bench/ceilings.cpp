#include "bench/ceilings.h"

#include "core/memory.h"
#include "core/ops/simd.h"

#include <omp.h>

#include <cstring>

namespace longseq::bench {

namespace {

double copy_bandwidth(int threads) {
  const size_t n = size_t(64) << 20;  // 256 MiB of floats per buffer: far beyond the 32 MiB L3
  auto* a = static_cast<float*>(tracked_alloc(n * 4));
  auto* b = static_cast<float*>(tracked_alloc(n * 4));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (size_t i = 0; i < n; ++i) a[i] = float(i & 1023), b[i] = 0;
  const double s = median_seconds(5, [&] {
#pragma omp parallel num_threads(threads)
    {
      const size_t t = size_t(omp_get_thread_num()), nt = size_t(omp_get_num_threads());
      const size_t lo = n * t / nt, hi = n * (t + 1) / nt;
      std::memcpy(b + lo, a + lo, (hi - lo) * 4);
    }
  });
  tracked_free(a, n * 4);
  tracked_free(b, n * 4);
  return 2.0 * double(n) * 4 / s / 1e9;
}

volatile float g_sink = 0;

// The widest vector the build targets: Intel cores with two 512-bit FMA units peak at twice the
// 256-bit rate; on Zen 4 both widths reach the same peak.
using v8 = float __attribute__((vector_size(simd::kLanes * 4)));

double fma_peak(int threads) {
  constexpr int kAcc = 12;
  const long iters = 20'000'000;
  double flops = 0;
  const double s = median_seconds(3, [&] {
    float sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
      v8 acc[kAcc];
      const v8 m = v8{} + 1.0000001f;
      const v8 c = v8{} + 1e-7f;
      for (int k = 0; k < kAcc; ++k) acc[k] = c * float(k + omp_get_thread_num());
      for (long i = 0; i < iters; ++i)
        for (int k = 0; k < kAcc; ++k) acc[k] = acc[k] * m + c;
      for (int k = 0; k < kAcc; ++k)
        for (int j = 0; j < simd::kLanes; ++j) sink += acc[k][j];
    }
    g_sink = sink;  // keeps the loop from being optimized away
  });
  flops = double(threads) * double(iters) * kAcc * simd::kLanes * 2;
  return flops / s / 1e9;
}

}  // namespace

Ceilings measure_ceilings(int threads) { return {copy_bandwidth(threads), fma_peak(threads)}; }

}  // namespace longseq::bench
