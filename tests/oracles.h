// Deliberately naive float64 oracles for the ops, written from the papers' and reference code's
// definitions with no shared code with core/: what the fast and reference paths are checked against.
#pragma once

#include <cmath>
#include <cstdint>
#include <tuple>
#include <vector>

namespace longseq::testing {

// Token-major layouts: u, delta, z (B, L, D); Bm, Cm (B, L, N); A (D, N); state (B, D, N).
struct ScanOracleIn {
  int64_t B, L, D, N;
  std::vector<float> u, delta, A, Bm, Cm, Dskip, z, bias, h0;  // Dskip, z, bias, h0 may be empty
  bool softplus = true;
};

inline void scan_oracle(const ScanOracleIn& in, std::vector<double>& y, std::vector<double>& state) {
  const auto [B, L, D, N] = std::tuple{in.B, in.L, in.D, in.N};
  y.assign(size_t(B * L * D), 0.0);
  state.assign(size_t(B * D * N), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t d = 0; d < D; ++d) {
      std::vector<double> h(size_t(N), 0.0);
      if (!in.h0.empty())
        for (int64_t n = 0; n < N; ++n) h[size_t(n)] = in.h0[size_t((b * D + d) * N + n)];
      for (int64_t t = 0; t < L; ++t) {
        const size_t i = size_t((b * L + t) * D + d);
        double dt = double(in.delta[i]) + (in.bias.empty() ? 0.0 : in.bias[size_t(d)]);
        if (in.softplus) dt = dt > 20 ? dt : std::log1p(std::exp(dt));
        double acc = 0;
        for (int64_t n = 0; n < N; ++n) {
          const size_t bn = size_t((b * L + t) * N + n);
          h[size_t(n)] = std::exp(dt * in.A[size_t(d * N + n)]) * h[size_t(n)] + dt * in.Bm[bn] * in.u[i];
          acc += in.Cm[bn] * h[size_t(n)];
        }
        if (!in.Dskip.empty()) acc += double(in.Dskip[size_t(d)]) * in.u[i];
        if (!in.z.empty()) {
          const double z = in.z[i];
          acc *= z / (1.0 + std::exp(-z));
        }
        y[i] = acc;
      }
      for (int64_t n = 0; n < N; ++n) state[size_t((b * D + d) * N + n)] = h[size_t(n)];
    }
}

// x (B, L, D), w (D, W), bias (D) or empty, prev (B, W-1, D) inputs before t = 0 or empty.
inline std::vector<double> conv_oracle(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& bias,
                                       const std::vector<float>& prev, int64_t B, int64_t L, int64_t D, int64_t W,
                                       bool silu) {
  std::vector<double> out(size_t(B * L * D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < L; ++t)
      for (int64_t d = 0; d < D; ++d) {
        double s = bias.empty() ? 0.0 : bias[size_t(d)];
        for (int64_t k = 0; k < W; ++k) {
          const int64_t src = t - (W - 1) + k;  // absolute input time
          double v = 0;
          if (src >= 0)
            v = x[size_t((b * L + src) * D + d)];
          else if (!prev.empty() && src >= -(W - 1))
            v = prev[size_t((b * (W - 1) + (W - 1) + src) * D + d)];
          s += double(w[size_t(d * W + k)]) * v;
        }
        out[size_t((b * L + t) * D + d)] = silu ? s / (1.0 + std::exp(-s)) : s;
      }
  return out;
}

}  // namespace longseq::testing
