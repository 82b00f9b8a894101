#include "core/ops/causal_conv1d.h"
#include "tests/oracles.h"
#include "tests/testing.h"

using namespace longseq;
using namespace longseq::testing;

namespace {
Tensor conv(const std::vector<float>& x, int64_t B, int64_t L, int64_t D, const Tensor& w, const Tensor& bias, Tensor state,
            bool silu, bool ref) {
  Tensor out = Tensor::empty({B, L, D});
  CausalConv1dArgs a{.x = Tensor::from_vector(x, {B, L, D}), .weight = w, .bias = bias, .out = out, .state = state, .silu = silu};
  ref ? causal_conv1d_ref(a) : causal_conv1d(a);
  return out;
}
}  // namespace

TEST(CausalConv1d, MatchesOracleWithState) {
  for (auto [B, L, D, W] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{1, 1, 1, 1}, {2, 5, 3, 4}, {1, 2, 7, 4},
                            {2, 70, 33, 3}, {1, 129, 16, 2}}) {
    const auto x = random_vector(size_t(B * L * D), 1), w = random_vector(size_t(D * W), 2), b = random_vector(size_t(D), 3);
    const auto prev = random_vector(size_t(B * std::max<int64_t>(W - 1, 0) * D), 4);
    for (bool silu : {false, true})
      for (bool ref : {false, true}) {
        Tensor state = W > 1 ? Tensor::from_vector(prev, {B, W - 1, D}) : Tensor{};
        const Tensor out = conv(x, B, L, D, Tensor::from_vector(w, {D, W}), Tensor::from_vector(b, {D}), state, silu, ref);
        const auto e = compare(out.to_vector(), conv_oracle(x, w, b, W > 1 ? prev : std::vector<float>{}, B, L, D, W, silu));
        EXPECT_LT(e.max_abs, 1e-6 * std::max(1.0, e.max_ref)) << B << " " << L << " " << D << " " << W;
      }
  }
}

TEST(CausalConv1d, ChunkedEqualsWholeAndStateHoldsLastInputs) {
  const int64_t B = 2, L = 50, D = 19, W = 4, S = 4;  // S = W: mamba_ssm's conv_state layout
  const auto x = random_vector(size_t(B * L * D), 5);
  const Tensor w = Tensor::from_vector(random_vector(size_t(D * W), 6), {D, W});
  const Tensor bias = Tensor::from_vector(random_vector(size_t(D), 7), {D});
  Tensor s_whole = Tensor::zeros({B, S, D});
  const Tensor whole = conv(x, B, L, D, w, bias, s_whole, true, false);
  for (int64_t chunk : {1, 2, 3, 7, 49}) {
    Tensor state = Tensor::zeros({B, S, D});
    Tensor all = Tensor::empty({B, L, D});
    const Tensor xt = Tensor::from_vector(x, {B, L, D});
    for (int64_t t0 = 0; t0 < L; t0 += chunk) {
      const int64_t n = std::min(chunk, L - t0);
      Tensor part = all.slice(1, t0, n);
      causal_conv1d({.x = xt.slice(1, t0, n), .weight = w, .bias = bias, .out = part, .state = state, .silu = true});
    }
    EXPECT_EQ(all.to_vector(), whole.to_vector()) << chunk;
    EXPECT_EQ(state.to_vector(), s_whole.to_vector()) << chunk;
  }
  // The state is the last S inputs, oldest first.
  for (int64_t k = 0; k < S; ++k) EXPECT_EQ(s_whole.item({1, k, 5}), x[size_t((1 * L + L - S + k) * D + 5)]);
}
