// FFT long convolution against the direct O(L^2) float64 sum: odd lengths, L = 1, channel counts
// that are not multiples of the transform batch; cached spectrum == filter path; thread invariance.
#include "core/ops/fft_conv.h"
#include "core/threads.h"
#include "tests/oracles.h"
#include "tests/testing.h"

using namespace longseq;
using namespace longseq::testing;

TEST(FftConv, FastSizes) {
  EXPECT_EQ(fft_fast_size(1), 2);
  EXPECT_EQ(fft_fast_size(13), 14);
  EXPECT_EQ(fft_fast_size(4095), 4096);
  EXPECT_EQ(fft_fast_size(2 * 1000 - 1), 2000);
  EXPECT_EQ(fft_fast_size(2 * 1000000 - 1), 2000000);
  for (int64_t m : {3, 97, 1001, 65537}) {
    const int64_t n = fft_fast_size(m);
    EXPECT_GE(n, m);
    EXPECT_EQ(n % 2, 0);
    int64_t r = n;
    for (int64_t p : {2, 3, 5, 7})
      while (r % p == 0) r /= p;
    EXPECT_EQ(r, 1) << n;
  }
}

TEST(FftConv, MatchesDirectConvolution) {
  for (auto [L, C] : {std::pair<int64_t, int64_t>{1, 1}, {2, 3}, {7, 5}, {100, 17}, {257, 4}, {1000, 9}}) {
    const auto u = random_vector(size_t(L * C), 1), k = random_vector(size_t(L * C), 2), bias = random_vector(size_t(C), 3);
    const auto ref = long_conv_oracle(u, k, bias, L, C);
    Tensor y = Tensor::empty({L, C});
    fft_conv({.u = Tensor::from_vector(u, {L, C}), .y = y, .bias = Tensor::from_vector(bias, {C}), .k = Tensor::from_vector(k, {L, C})});
    const ErrorStats e = compare(y.to_vector(), ref);
    // FFT round-off grows like log(n) * sum|k||u|; the sums here are O(sqrt(L)).
    EXPECT_LE(e.max_abs, 2e-6 * std::sqrt(double(L)) * std::max(1.0, e.max_ref)) << "L" << L << " C" << C;
    EXPECT_LE(e.rel_l2, 1e-6) << "L" << L << " C" << C;
  }
}

TEST(FftConv, SpectrumPathEqualsFilterPathAndThreadsDoNotMatter) {
  const int64_t L = 333, C = 23;
  const Tensor u = Tensor::from_vector(random_vector(size_t(L * C), 4), {L, C});
  const Tensor k = Tensor::from_vector(random_vector(size_t(L * C), 5), {L, C});
  const FilterSpectrum spec = fft_filter_spectrum(k);
  Tensor a = Tensor::empty({L, C}), b = Tensor::empty({L, C}), c = Tensor::empty({L, C});
  set_num_threads(1);
  fft_conv({.u = u, .y = a, .k = k});
  set_num_threads(2);
  fft_conv({.u = u, .y = b, .spectrum = &spec});
  fft_conv({.u = u, .y = c, .k = k});
  set_num_threads(0);
  EXPECT_EQ(a.to_vector(), b.to_vector());
  EXPECT_EQ(a.to_vector(), c.to_vector());
}

TEST(FftConv, StridedViewsAndInPlace) {
  const int64_t L = 50, C = 6;
  const auto uv = random_vector(size_t(L * 10), 6), kv = random_vector(size_t(L * C), 7);
  Tensor wide = Tensor::from_vector(uv, {L, 10});
  Tensor u = wide.slice(1, 2, C);  // rows of stride 10
  const auto ref = long_conv_oracle(u.contiguous().to_vector(), kv, {}, L, C);
  fft_conv({.u = u, .y = u, .k = Tensor::from_vector(kv, {L, C})});  // in place
  EXPECT_LE(compare(u.to_vector(), ref).max_abs, 1e-5);
  EXPECT_EQ(wide.item({3, 0}), uv[30]);  // columns outside the view untouched
  EXPECT_THROW(fft_conv({.u = u, .y = u}), Error);
}
