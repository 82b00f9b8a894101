// This machine's ceilings, measured at bench start so every figure is quoted against the hardware it
// ran on: streaming copy bandwidth and the fp32 FMA peak.
#pragma once

namespace longseq::bench {

struct Ceilings {
  double copy_gbs = 0;      // bytes read + written per second, /1e9
  double fma_gflops = 0;    // fp32 FLOP/s from a register-only FMA loop, /1e9
};

Ceilings measure_ceilings(int threads);

// Median wall time in seconds of `reps` calls after one warm-up call.
template <class Fn>
double median_seconds(int reps, Fn&& fn);

}  // namespace longseq::bench

#include <algorithm>
#include <chrono>
#include <vector>

template <class Fn>
double longseq::bench::median_seconds(int reps, Fn&& fn) {
  fn();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto a = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}
