// Every training op: forward against a naive float64 definition, backward against central finite
// differences in float64 (odd sizes, length 1, lengths not divisible by the scan chunk, strided
// inputs), and the scan's gradients independent of its recomputation chunk.
#include "core/ops/ops.h"
#include "tests/oracles.h"
#include "tests/unit/grad_check.h"

#include <cmath>

using namespace longseq;
using namespace longseq::ops;
using namespace longseq::testing;

namespace {

template <class V>
Mat<const double> cm(const V& v, int64_t rows, int64_t cols) {
  return mat<const double>(v.data(), rows, cols);
}

double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

}  // namespace

TEST(TrainOps, LinearOnStridedRows) {
  const int64_t M = 5, K = 7, O = 3, ld = K + 3;
  auto xbuf = random_doubles(size_t(M * ld), 1), w = random_doubles(size_t(O * K), 2), b = random_doubles(size_t(O), 3),
       r = random_doubles(size_t(M * O), 4);
  const Mat<const double> x{xbuf.data() + 2, M, K, ld};
  auto forward = [&] {
    std::vector<double> y(size_t(M * O));
    linear_forward<double>(x, w.data(), b.data(), mat(y.data(), M, O));
    return y;
  };
  const auto y = forward();
  for (int64_t m = 0; m < M; ++m)
    for (int64_t o = 0; o < O; ++o) {
      double s = b[size_t(o)];
      for (int64_t k = 0; k < K; ++k) s += x.at(m, k) * w[size_t(o * K + k)];
      EXPECT_NEAR(y[size_t(m * O + o)], s, 1e-13);
    }
  std::vector<double> dxbuf(xbuf.size(), 0.0), dw(w.size(), 0.0), db(b.size(), 0.0);
  Mat<double> dx{dxbuf.data() + 2, M, K, ld};
  linear_backward<double>(x, w.data(), cm(r, M, O), &dx, dw.data(), db.data());
  auto f = [&] { return dot(forward(), r); };
  expect_gradients("linear", {{"x", &xbuf, dxbuf}, {"w", &w, dw}, {"b", &b, db}}, f);
}

TEST(TrainOps, NormGradients) {
  for (const int64_t rows : {1, 4})
    for (const bool eps_outside : {false, true}) {
      const int64_t d = 9;
      const double eps = eps_outside ? 0.05 : 1e-5;  // a visible eps: its place in the formula matters
      auto x = random_doubles(size_t(rows * d), 5, -2, 3), w = random_doubles(size_t(d), 6, 0.5, 1.5),
           b = random_doubles(size_t(d), 7), r = random_doubles(size_t(rows * d), 8);
      std::vector<double> y(x.size()), mean(static_cast<size_t>(rows)), rstd(static_cast<size_t>(rows));
      auto rms = [&] {
        rms_norm_forward<double>(cm(x, rows, d), w.data(), eps, eps_outside, mat(y.data(), rows, d), rstd.data());
        return dot(y, r);
      };
      auto ln = [&] {
        layer_norm_forward<double>(cm(x, rows, d), w.data(), b.data(), 1e-5, mat(y.data(), rows, d), mean.data(), rstd.data());
        return dot(y, r);
      };
      rms();
      for (int64_t i = 0; i < rows; ++i) {  // forward against the definition
        double ss = 0;
        for (int64_t j = 0; j < d; ++j) ss += x[size_t(i * d + j)] * x[size_t(i * d + j)];
        const double root = eps_outside ? std::sqrt(ss / double(d)) + eps : std::sqrt(ss / double(d) + eps);
        EXPECT_NEAR(y[size_t(i * d)], x[size_t(i * d)] / root * w[0], 1e-12);
      }
      std::vector<double> dx(x.size(), 0.0), dw(w.size(), 0.0), db(b.size(), 0.0);
      rms_norm_backward<double>(cm(x, rows, d), w.data(), eps, eps_outside, rstd.data(), cm(r, rows, d), mat(dx.data(), rows, d), dw.data());
      expect_gradients(eps_outside ? "rms_norm eps outside" : "rms_norm", {{"x", &x, dx}, {"w", &w, dw}}, rms);
      if (eps_outside) continue;
      ln();
      std::fill(dx.begin(), dx.end(), 0.0);
      std::fill(dw.begin(), dw.end(), 0.0);
      layer_norm_backward<double>(cm(x, rows, d), w.data(), mean.data(), rstd.data(), cm(r, rows, d), mat(dx.data(), rows, d), dw.data(),
                                  db.data());
      expect_gradients("layer_norm", {{"x", &x, dx}, {"w", &w, dw}, {"b", &b, db}}, ln);
    }
}

TEST(TrainOps, CausalConvGradientsWithState) {
  for (const int64_t L : {1, 2, 7})
    for (const bool silu : {false, true}) {
      const int64_t D = 5, W = 4;
      auto x = random_doubles(size_t(L * D), 9), w = random_doubles(size_t(D * W), 10), b = random_doubles(size_t(D), 11),
           init = random_doubles(size_t((W - 1) * D), 12), r = random_doubles(size_t(L * D), 13);
      std::vector<double> out(x.size());
      std::vector<double> state;  // (W, D): a row the conv does not read, then init; the forward advances it
      auto args = [&] {
        state.assign(size_t(D), 0.0);
        state.insert(state.end(), init.begin(), init.end());
        return ConvArgs<double>{.x = cm(x, L, D), .w = w.data(), .b = b.data(), .W = W, .silu = silu, .state = state.data()};
      };
      auto f = [&] {
        causal_conv1d_forward<double>(args(), mat(out.data(), L, D));
        return dot(out, r);
      };
      f();
      std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end()), bf(b.begin(), b.end()), pf(init.begin(), init.end());
      const auto ref = conv_oracle(xf, wf, bf, pf, 1, L, D, W, silu);
      // The oracle runs on float-rounded inputs: compare within float rounding of the inputs.
      EXPECT_LT(max_diff(out, ref), 1e-6) << "L " << L;
      std::vector<double> dx(x.size(), 0.0), dw(w.size(), 0.0), db(b.size(), 0.0), dstate(size_t(W * D), 0.0);
      causal_conv1d_backward<double>(args(), cm(r, L, D), mat(dx.data(), L, D), dw.data(), db.data(), dstate.data());
      const std::vector<double> dinit(dstate.begin() + D, dstate.end());
      expect_gradients("conv L=" + std::to_string(L) + (silu ? " silu" : ""),
                       {{"x", &x, dx}, {"w", &w, dw}, {"b", &b, db}, {"init", &init, dinit}}, f);
    }
}

namespace {

struct ScanCase {
  int64_t L, D, N, chunk;
  std::vector<double> u, delta, A, B, C, Dskip, z, bias, h0, r;
  ScanCase(int64_t L_, int64_t D_, int64_t N_, int64_t chunk_, uint64_t seed) : L(L_), D(D_), N(N_), chunk(chunk_) {
    u = random_doubles(size_t(L * D), seed);
    delta = random_doubles(size_t(L * D), seed + 1, -2, 1);
    A = random_doubles(size_t(D * N), seed + 2, -1.5, 0.5);
    for (auto& a : A) a = -std::exp(a);
    B = random_doubles(size_t(L * N), seed + 3);
    C = random_doubles(size_t(L * N), seed + 4);
    Dskip = random_doubles(size_t(D), seed + 5);
    z = random_doubles(size_t(L * D), seed + 6, -2, 2);
    bias = random_doubles(size_t(D), seed + 7, -1, 1);
    h0 = random_doubles(size_t(D * N), seed + 8);
    r = random_doubles(size_t(L * D), seed + 9);
  }
  // A fresh copy of h0 as the state (the forward leaves the final state in it; the backward reads h0).
  ScanArgs<double> args() const {
    state = h0;
    return {.u = cm(u, L, D), .delta = cm(delta, L, D), .B = cm(B, L, N), .C = cm(C, L, N), .z = cm(z, L, D), .A = A.data(),
            .Dskip = Dskip.data(), .delta_bias = bias.data(), .state = state.data(), .chunk = chunk};
  }
  mutable std::vector<double> state;
};

}  // namespace

TEST(TrainOps, SelectiveScanForwardMatchesOracle) {
  for (const int64_t L : {1, 13}) {
    ScanCase s(L, 3, 4, 4, 20);
    std::vector<double> out(size_t(L * 3)), states(size_t(scan_chunks(L, 4) * 3 * 4)), last(12);
    ScanOracleIn in{1, L, 3, 4};
    auto f = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
    // Round the inputs to float first so the oracle sees exactly what the double path sees.
    for (auto* v : {&s.u, &s.delta, &s.A, &s.B, &s.C, &s.Dskip, &s.z, &s.bias, &s.h0})
      for (auto& x : *v) x = double(float(x));
    selective_scan_forward<double>(s.args(), mat(out.data(), L, 3), states.data());
    last = s.state;
    in.u = f(s.u), in.delta = f(s.delta), in.A = f(s.A), in.Bm = f(s.B), in.Cm = f(s.C), in.Dskip = f(s.Dskip), in.z = f(s.z),
    in.bias = f(s.bias), in.h0 = f(s.h0);
    std::vector<double> y, state;
    scan_oracle(in, y, state);
    EXPECT_LT(max_diff(out, y), 1e-12) << "L " << L;
    EXPECT_LT(max_diff(last, state), 1e-12) << "L " << L;
  }
}

TEST(TrainOps, SelectiveScanGradients) {
  for (const auto& [L_, chunk] : std::vector<std::pair<int64_t, int64_t>>{{1, 4}, {13, 4}, {13, 5}, {9, 100}}) {
    const int64_t L = L_;  // a copy: clang 14 cannot capture a structured binding in a lambda
    ScanCase s(L, 3, 4, chunk, 30 + uint64_t(L));
    const int64_t D = 3, N = 4;
    std::vector<double> out(size_t(L * D)), states(size_t(scan_chunks(L, chunk) * D * N));
    auto f = [&] {
      selective_scan_forward<double>(s.args(), mat(out.data(), L, D), states.data());
      return dot(out, s.r);
    };
    f();
    std::vector<double> du(s.u.size(), 0.0), dd(s.delta.size(), 0.0), dA(s.A.size(), 0.0), dB(s.B.size(), 0.0), dC(s.C.size(), 0.0),
        dD(s.Dskip.size(), 0.0), dz(s.z.size(), 0.0), dbias(s.bias.size(), 0.0), dh0(s.h0.size(), 0.0);
    selective_scan_backward<double>(s.args(), states.data(), cm(s.r, L, D),
                                    {mat(du.data(), L, D), mat(dd.data(), L, D), mat(dB.data(), L, N), mat(dC.data(), L, N),
                                     mat(dz.data(), L, D), dA.data(), dD.data(), dbias.data(), dh0.data()});
    expect_gradients("scan L=" + std::to_string(L) + " chunk=" + std::to_string(chunk),
                     {{"u", &s.u, du}, {"delta", &s.delta, dd}, {"A", &s.A, dA}, {"B", &s.B, dB}, {"C", &s.C, dC},
                      {"D", &s.Dskip, dD}, {"z", &s.z, dz}, {"delta_bias", &s.bias, dbias}, {"h0", &s.h0, dh0}},
                     f);
  }
}

TEST(TrainOps, SelectiveScanGradientIndependentOfChunk) {
  std::vector<std::vector<double>> grads;
  for (const int64_t chunk : {1, 7, 64, 1000}) {
    ScanCase s(61, 5, 3, chunk, 77);
    std::vector<double> out(61 * 5), states(size_t(scan_chunks(61, chunk) * 15));
    selective_scan_forward<double>(s.args(), mat(out.data(), 61, 5), states.data());
    std::vector<double> du(s.u.size(), 0.0), dd(s.delta.size(), 0.0), dA(15, 0.0), dB(s.B.size(), 0.0), dC(s.C.size(), 0.0),
        dD(5, 0.0), dz(s.z.size(), 0.0), dbias(5, 0.0);
    selective_scan_backward<double>(s.args(), states.data(), cm(s.r, 61, 5),
                                    {mat(du.data(), 61, 5), mat(dd.data(), 61, 5), mat(dB.data(), 61, 3), mat(dC.data(), 61, 3),
                                     mat(dz.data(), 61, 5), dA.data(), dD.data(), dbias.data(), nullptr});
    std::vector<double> all;
    for (const auto* v : {&du, &dd, &dA, &dB, &dC, &dD, &dz, &dbias}) all.insert(all.end(), v->begin(), v->end());
    grads.push_back(all);
  }
  for (size_t i = 1; i < grads.size(); ++i) EXPECT_LT(max_diff(grads[0], grads[i]), 1e-12);
}

TEST(TrainOps, FftConvGradients) {
  for (const int64_t L : {1, 9, 16}) {
    const int64_t D = 3;
    auto u = random_doubles(size_t(L * D), 40), k = random_doubles(size_t(L * D), 41), r = random_doubles(size_t(L * D), 42);
    std::vector<double> y(u.size());
    auto f = [&] {
      fft_causal_conv_forward<double>(cm(u, L, D), cm(k, L, D), mat(y.data(), L, D));
      return dot(y, r);
    };
    f();
    for (int64_t t = 0; t < L; ++t)
      for (int64_t c = 0; c < D; ++c) {
        double s = 0;
        for (int64_t j = 0; j <= t; ++j) s += k[size_t(j * D + c)] * u[size_t((t - j) * D + c)];
        EXPECT_NEAR(y[size_t(t * D + c)], s, 1e-12);
      }
    std::vector<double> du(u.size(), 0.0), dk(k.size(), 0.0);
    Mat<double> dum = mat(du.data(), L, D), dkm = mat(dk.data(), L, D);
    fft_causal_conv_backward<double>(cm(u, L, D), cm(k, L, D), cm(r, L, D), &dum, &dkm);
    expect_gradients("fft_conv L=" + std::to_string(L), {{"u", &u, du}, {"k", &k, dk}}, f);
  }
}

TEST(TrainOps, CrossEntropyWithIgnoredRows) {
  const int64_t R = 4, V = 6;
  auto x = random_doubles(size_t(R * V), 50, -3, 3);
  const std::vector<int64_t> targets = {2, -1, 5, 0};
  std::vector<double> g(x.size());
  auto f = [&] { return cross_entropy<double>(cm(x, R, V), targets, 0.25, mat(g.data(), R, V)) * 0.25; };
  const double loss = f();
  double ref = 0;
  for (int64_t r = 0; r < R; ++r) {
    if (targets[size_t(r)] < 0) continue;
    double s = 0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(x[size_t(r * V + v)]);
    ref += std::log(s) - x[size_t(r * V + targets[size_t(r)])];
  }
  EXPECT_NEAR(loss, ref * 0.25, 1e-12);
  f();
  const std::vector<double> an = g;
  for (int64_t v = 0; v < V; ++v) EXPECT_EQ(an[size_t(V + v)], 0.0);
  expect_gradients("cross_entropy", {{"logits", &x, an}}, f);
}
