// The causal conv of core/ops/ops.h: the float SIMD path and the double path against the float64
// oracle (odd widths and channel counts, L = 1, with and without state and SiLU); chunked with the
// state carried equals one pass, and the state holds the last W inputs.
#include "core/ops/ops.h"
#include "tests/oracles.h"
#include "tests/testing.h"

using namespace longseq;
using namespace longseq::testing;

namespace {
// One pass over x (L, D) from `prev` ((W - 1, D) inputs before t = 0, or empty: zeros).
template <class T>
std::vector<T> conv(const std::vector<float>& x, int64_t L, int64_t D, const std::vector<float>& w, const std::vector<float>& b,
                    const std::vector<float>& prev, int64_t W, bool silu) {
  const std::vector<T> xt(x.begin(), x.end()), wt(w.begin(), w.end()), bt(b.begin(), b.end());
  std::vector<T> state(size_t(W * D)), out(size_t(L * D));
  std::copy(prev.begin(), prev.end(), state.begin() + D);
  ops::causal_conv1d_forward<T>({.x = mat(xt.data(), L, D), .w = wt.data(), .b = bt.data(), .W = W, .silu = silu,
                                 .state = prev.empty() ? nullptr : state.data()},
                                mat(out.data(), L, D));
  return out;
}
}  // namespace

TEST(CausalConv1d, MatchesOracleWithState) {
  for (auto [L, D, W] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {5, 3, 4}, {2, 7, 4}, {70, 33, 3}, {129, 16, 2}, {300, 40, 4}}) {
    const auto x = random_vector(size_t(L * D), 1), w = random_vector(size_t(D * W), 2), b = random_vector(size_t(D), 3);
    const auto prev = random_vector(size_t((W - 1) * D), 4);
    for (bool silu : {false, true})
      for (const auto& p : {prev, std::vector<float>{}}) {
        const auto ref = conv_oracle(x, w, b, p, 1, L, D, W, silu);
        const auto f = compare(conv<float>(x, L, D, w, b, p, W, silu), ref);
        const auto d = conv<double>(x, L, D, w, b, p, W, silu);
        EXPECT_LT(f.max_abs, 1e-6 * std::max(1.0, f.max_ref)) << L << " " << D << " " << W;
        for (size_t i = 0; i < d.size(); ++i) ASSERT_NEAR(d[i], ref[i], 1e-12) << L << " " << D << " " << W;
      }
  }
}

TEST(CausalConv1d, ChunkedEqualsWholeAndStateHoldsLastInputs) {
  const int64_t L = 50, D = 19, W = 4;
  const auto x = random_vector(size_t(L * D), 5), w = random_vector(size_t(D * W), 6), b = random_vector(size_t(D), 7);
  std::vector<float> s_whole(size_t(W * D), 0.0f), whole(size_t(L * D));
  ops::causal_conv1d_forward<float>({.x = mat(x.data(), L, D), .w = w.data(), .b = b.data(), .W = W, .silu = true, .state = s_whole.data()},
                                    mat(whole.data(), L, D));
  for (int64_t chunk : {1, 2, 3, 7, 49}) {
    std::vector<float> state(size_t(W * D), 0.0f), all(size_t(L * D));
    for (int64_t t0 = 0; t0 < L; t0 += chunk) {
      const int64_t n = std::min(chunk, L - t0);
      ops::causal_conv1d_forward<float>({.x = mat(x.data() + t0 * D, n, D), .w = w.data(), .b = b.data(), .W = W, .silu = true,
                                         .state = state.data()},
                                        mat(all.data() + t0 * D, n, D));
    }
    EXPECT_EQ(all, whole) << chunk;
    EXPECT_EQ(state, s_whole) << chunk;
  }
  for (int64_t k = 0; k < W; ++k) EXPECT_EQ(s_whole[size_t(k * D + 5)], x[size_t((L - W + k) * D + 5)]);  // oldest first
}
