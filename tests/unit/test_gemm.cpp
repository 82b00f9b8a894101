// linear (core/ops/ops.h) in float against a float64 triple loop, on odd shapes and strided row
// views; bit-identical results for 1 and 2 threads; log_softmax_rows.
#include "core/ops/ops.h"
#include "core/ops/softmax.h"
#include "core/threads.h"
#include "tests/testing.h"

#include <cstring>

using namespace longseq;
using longseq::testing::compare;
using longseq::testing::random_vector;

namespace {
std::vector<double> linear_oracle(Mat<const float> x, const std::vector<float>& w, const std::vector<float>& b, int64_t O) {
  std::vector<double> y(size_t(x.rows * O));
  for (int64_t m = 0; m < x.rows; ++m)
    for (int64_t o = 0; o < O; ++o) {
      double s = b.empty() ? 0.0 : b[size_t(o)];
      for (int64_t k = 0; k < x.cols; ++k) s += double(x.at(m, k)) * w[size_t(o * x.cols + k)];
      y[size_t(m * O + o)] = s;
    }
  return y;
}
std::vector<float> linear(Mat<const float> x, const std::vector<float>& w, const std::vector<float>& b, int64_t O) {
  std::vector<float> y(size_t(x.rows * O));
  ops::linear_forward<float>(x, w.data(), b.empty() ? nullptr : b.data(), mat(y.data(), x.rows, O));
  return y;
}
}  // namespace

TEST(Gemm, LinearMatchesFloat64Oracle) {
  for (auto [M, K, O] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {7, 13, 5}, {33, 64, 129}, {257, 100, 31}, {300, 70, 600}}) {
    const auto x = random_vector(size_t(M * K), 1), w = random_vector(size_t(O * K), 2), b = random_vector(size_t(O), 3);
    const auto s = compare(linear(mat(x.data(), M, K), w, b, O), linear_oracle(mat(x.data(), M, K), w, b, O));
    EXPECT_LT(s.max_abs, 1e-5 * std::sqrt(double(K))) << M << "x" << K << "x" << O;
    EXPECT_LT(s.rel_l2, 1e-6);
  }
}

TEST(Gemm, StridedRowsIntoStridedOutput) {
  const int64_t M = 9, K = 12, O = 6;
  const auto big = random_vector(size_t(M * 20), 4), w = random_vector(size_t(O * K), 5);
  const Mat<const float> xs{big.data() + 3, M, K, 20};  // rows of stride 20
  std::vector<float> out(size_t(M * 10), 0.0f);
  ops::linear_forward<float>(xs, w.data(), nullptr, Mat<float>{out.data() + 2, M, O, 10});
  const auto ref = linear_oracle(xs, w, {}, O);
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t o = 0; o < O; ++o) EXPECT_NEAR(out[size_t(m * 10 + 2 + o)], ref[size_t(m * O + o)], 1e-5);
    EXPECT_EQ(out[size_t(m * 10)], 0.0f);  // untouched columns stay zero
    EXPECT_EQ(out[size_t(m * 10 + 9)], 0.0f);
  }
}

TEST(Gemm, SameResultForAnyThreadCount) {
  const int64_t M = 512, K = 384, O = 320;
  const auto x = random_vector(size_t(M * K), 9), w = random_vector(size_t(O * K), 10);
  set_num_threads(1);
  const auto y1 = linear(mat(x.data(), M, K), w, {}, O);
  set_num_threads(2);
  const auto y2 = linear(mat(x.data(), M, K), w, {}, O);
  set_num_threads(0);
  EXPECT_EQ(std::memcmp(y1.data(), y2.data(), y1.size() * 4), 0);
}

TEST(Gemm, Bf16WeightsGiveTheBitsOfTheirWidenedValues) {
  // linear_forward_bf16 widens w per output tile (a single row: 32 of its rows at a time): the same
  // bits as linear_forward on the widened weights, off the tile sizes (256 rows, 512 outputs), at
  // Evo 2 1b's projection shapes, with a strided x, for 1 and 2 threads; and within float rounding
  // of the float64 oracle on those values.
  for (auto [M, K, O] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {1, 37, 1100}, {1, 1920, 5760}, {1, 5120, 1920}, {1, 129, 45}, {1, 5, 100}, {1, 20, 33}, {1, 24, 65}, {1, 40, 513},
                         {2, 33, 70}, {7, 13, 5}, {300, 70, 600}, {513, 65, 1025}}) {
    SCOPED_TRACE(::testing::Message() << M << "x" << K << "x" << O);
    const auto xs = random_vector(size_t(M * (K + 3)), 11), wf = random_vector(size_t(O * K), 12), b = random_vector(size_t(O), 13);
    const Mat<const float> x{xs.data() + 1, M, K, K + 3};
    std::vector<uint16_t> w16(wf.size());
    std::vector<float> wide(wf.size());
    for (size_t i = 0; i < wf.size(); ++i) wide[i] = bf16_to_f32(w16[i] = f32_to_bf16(wf[i]));
    const auto ref = linear(x, wide, b, O);
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      std::vector<float> y(size_t(M * O));
      ops::linear_forward_bf16(x, w16.data(), b.data(), mat(y.data(), M, O));
      EXPECT_EQ(std::memcmp(y.data(), ref.data(), y.size() * 4), 0) << threads << " threads";
    }
    set_num_threads(0);
    const auto s = compare(ref, linear_oracle(x, wide, b, O));
    EXPECT_LT(s.max_abs, 1e-5 * std::sqrt(double(K)));
  }
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
