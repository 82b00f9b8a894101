// The FFT long convolution of core/ops/ops.h against the direct O(L^2) float64 sum: the per-channel
// path (token-major, training) and the batched inference path (channel-major rows, in place, with
// the filters as k or as a spectrum made once) on odd lengths, L = 1 and row counts that are not
// multiples of the transform batch; the two filter forms give the same bits for any thread count.
#include "core/ops/ops.h"
#include "core/threads.h"
#include "kernels/fft_size.h"
#include "tests/oracles.h"
#include "tests/testing.h"

using namespace longseq;
using namespace longseq::testing;

namespace {
// (L, C) token-major <-> (C, L) channel-major.
std::vector<float> transpose(const std::vector<float>& v, int64_t rows, int64_t cols) {
  std::vector<float> t(v.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[size_t(c * rows + r)] = v[size_t(r * cols + c)];
  return t;
}
// In place on channel-major rows v (C, L), with the filters k (C, L) as given or as their spectrum.
void conv_rows(std::vector<float>& v, const std::vector<float>& k, const std::vector<float>& bias, int64_t C, int64_t L,
               bool spectrum) {
  const ops::FilterSpectrum s = ops::fft_filter_spectrum(mat(k.data(), C, L));
  ops::fft_conv_rows(mat(v.data(), C, L), bias.empty() ? nullptr : bias.data(), spectrum ? s.row(0) : nullptr, mat(k.data(), C, L));
}
}  // namespace

TEST(FftConv, FastSizes) {
  EXPECT_EQ(fft_fast_size(1), 2);
  EXPECT_EQ(fft_fast_size(13), 14);
  EXPECT_EQ(fft_fast_size(4095), 4096);
  EXPECT_EQ(ops::fft_size(1000), 2000);
  EXPECT_EQ(ops::fft_size(1000000), 2000000);
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
    const auto ref = long_conv_oracle(u, k, bias, L, C), ref_nobias = long_conv_oracle(u, k, {}, L, C);
    // FFT round-off grows like log(n) * sum|k||u|; the sums here are O(sqrt(L)).
    const double tol = 2e-6 * std::sqrt(double(L));
    std::vector<float> y(u.size());
    ops::fft_causal_conv_forward<float>(mat(u.data(), L, C), mat(k.data(), L, C), mat(y.data(), L, C));
    const ErrorStats e = compare(y, ref_nobias);
    EXPECT_LE(e.max_abs, tol * std::max(1.0, e.max_ref)) << "L" << L << " C" << C;
    for (bool spectrum : {false, true}) {
      std::vector<float> v = transpose(u, L, C);
      conv_rows(v, transpose(k, L, C), bias, C, L, spectrum);
      const ErrorStats r = compare(transpose(v, C, L), ref);
      EXPECT_LE(r.max_abs, tol * std::max(1.0, r.max_ref)) << "L" << L << " C" << C << " spectrum " << spectrum;
      EXPECT_LE(r.rel_l2, 1e-6) << "L" << L << " C" << C;
    }
  }
}

TEST(FftConv, SpectrumPathEqualsFilterPathAndThreadsDoNotMatter) {
  const int64_t L = 333, C = 23;
  const auto u = random_vector(size_t(L * C), 4), k = random_vector(size_t(L * C), 5), bias = random_vector(size_t(C), 6);
  std::vector<float> a = u, b = u, c = u;
  set_num_threads(1);
  conv_rows(a, k, bias, C, L, false);
  set_num_threads(2);
  conv_rows(b, k, bias, C, L, true);
  conv_rows(c, k, bias, C, L, false);
  set_num_threads(0);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
}
