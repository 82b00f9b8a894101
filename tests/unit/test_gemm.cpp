// linear/gemm against a float64 triple loop, on odd shapes and strided row views; and bit-identical
// results for 1 and 2 threads.
#include "core/error.h"
#include "core/ops/softmax.h"
#include "core/ops/gemm.h"
#include "core/threads.h"
#include "tests/testing.h"

using namespace longseq;
using longseq::testing::compare;
using longseq::testing::random_vector;

namespace {
std::vector<double> linear_oracle(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b,
                                  int64_t M, int64_t K, int64_t O) {
  std::vector<double> y(size_t(M * O));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t o = 0; o < O; ++o) {
      double s = b.empty() ? 0.0 : b[size_t(o)];
      for (int64_t k = 0; k < K; ++k) s += double(x[size_t(m * K + k)]) * w[size_t(o * K + k)];
      y[size_t(m * O + o)] = s;
    }
  return y;
}
}  // namespace

TEST(Gemm, LinearMatchesFloat64Oracle) {
  for (auto [M, K, O] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {7, 13, 5}, {33, 64, 129}, {257, 100, 31}}) {
    const auto x = random_vector(size_t(M * K), 1), w = random_vector(size_t(O * K), 2), b = random_vector(size_t(O), 3);
    const Tensor y = linear(Tensor::from_vector(x, {M, K}), Tensor::from_vector(w, {O, K}), Tensor::from_vector(b, {O}));
    const auto s = compare(y.to_vector(), linear_oracle(x, w, b, M, K, O));
    EXPECT_LT(s.max_abs, 1e-5 * std::sqrt(double(K))) << M << "x" << K << "x" << O;
    EXPECT_LT(s.rel_l2, 1e-6);
  }
}

TEST(Gemm, StridedRowsIntoStridedOutput) {
  const int64_t M = 9, K = 12, O = 6;
  const auto big = random_vector(size_t(M * 20), 4), w = random_vector(size_t(O * K), 5);
  Tensor xs = Tensor::from_vector(big, {M, 20}).slice(1, 3, K);  // rows of stride 20
  Tensor out = Tensor::zeros({M, 10});
  Tensor ys = out.slice(1, 2, O);
  linear(xs, Tensor::from_vector(w, {O, K}), {}, ys);
  const auto ref = linear_oracle(xs.contiguous().to_vector(), w, {}, M, K, O);
  EXPECT_LT(compare(ys.to_vector(), ref).max_abs, 1e-5);
  EXPECT_EQ(out.item({4, 0}), 0.0f);  // untouched columns stay zero
  EXPECT_EQ(out.item({4, 9}), 0.0f);
}

TEST(Gemm, GemmAlphaBeta) {
  const auto a = random_vector(6 * 4, 6), b = random_vector(4 * 3, 7), c0 = random_vector(6 * 3, 8);
  Tensor c = Tensor::from_vector(c0, {6, 3});
  gemm(Tensor::from_vector(a, {6, 4}), Tensor::from_vector(b, {4, 3}), c, 2.0f, 0.5f);
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 3; ++j) {
      double s = 0;
      for (int k = 0; k < 4; ++k) s += double(a[size_t(i * 4 + k)]) * b[size_t(k * 3 + j)];
      EXPECT_NEAR(c.item({i, j}), 2 * s + 0.5 * c0[size_t(i * 3 + j)], 1e-5);
    }
  Tensor bad = Tensor::zeros({5, 3});
  EXPECT_THROW(gemm(Tensor::zeros({6, 4}), Tensor::zeros({4, 3}), bad), Error);
}

TEST(Gemm, SameResultForAnyThreadCount) {
  const int64_t M = 512, K = 384, O = 320;
  Tensor x = Tensor::from_vector(random_vector(size_t(M * K), 9), {M, K});
  Tensor w = Tensor::from_vector(random_vector(size_t(O * K), 10), {O, K});
  set_num_threads(1);
  const auto y1 = linear(x, w).to_vector();
  set_num_threads(2);
  const auto y2 = linear(x, w).to_vector();
  set_num_threads(0);
  EXPECT_EQ(std::memcmp(y1.data(), y2.data(), y1.size() * 4), 0);
}

TEST(Ops, LogSoftmaxRowsNormalise) {
  const auto v = random_vector(5 * 17, 12, -30.0f, 30.0f);
  Tensor x = Tensor::from_vector(v, {5, 17});
  log_softmax_rows(x);
  for (int64_t r = 0; r < 5; ++r) {
    double total = 0, mx = -1e300;
    for (int64_t c = 0; c < 17; ++c) mx = std::max(mx, double(v[size_t(r * 17 + c)]));
    double z = 0;
    for (int64_t c = 0; c < 17; ++c) z += std::exp(double(v[size_t(r * 17 + c)]) - mx);
    for (int64_t c = 0; c < 17; ++c) {
      total += std::exp(double(x.item({r, c})));
      EXPECT_NEAR(x.item({r, c}), v[size_t(r * 17 + c)] - mx - std::log(z), 1e-5);
    }
    EXPECT_NEAR(total, 1.0, 1e-5);
  }
}
