// linear (core/ops/ops.h) in float against a float64 triple loop, on odd shapes and strided row
// views; bit-identical results for 1 and 2 threads; the packed GEMM (core/ops/gemm.h) against a
// scalar loop that sums in the order gemm.h defines, bit for bit; log_softmax_rows.
#include "core/ops/gemm.h"
#include "core/ops/ops.h"
#include "core/ops/softmax.h"
#include "core/threads.h"
#include "tests/testing.h"

#include <cmath>
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

namespace {
// gemm.h's definition, one element at a time: an fma chain over each block of kGemmKc k's, the
// blocks' sums added to C in order, then the bias.
template <class TB>
std::vector<float> gemm_definition(ops::GemmOperand<float> a, ops::GemmOperand<TB> b, int64_t M, int64_t N, int64_t K,
                                   const std::vector<float>& c0, bool accumulate, const float* bias) {
  const auto widen = [](TB v) {
    if constexpr (std::is_same_v<TB, uint16_t>) return bf16_to_f32(v);
    else return v;
  };
  std::vector<float> c(size_t(M * N));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float sum = accumulate ? c0[size_t(i * N + j)] : 0.0f;
      for (int64_t k0 = 0; k0 < K; k0 += ops::kGemmKc) {
        float chain = 0.0f;
        for (int64_t k = k0; k < std::min(K, k0 + ops::kGemmKc); ++k)
          chain = std::fma(a.data[i * a.row_stride + k * a.col_stride], widen(b.data[k * b.row_stride + j * b.col_stride]), chain);
        sum = (k0 == 0 && !accumulate) ? chain : sum + chain;
      }
      c[size_t(i * N + j)] = bias ? sum + bias[j] : sum;
    }
  return c;
}
}  // namespace

TEST(Gemm, PackedGemmSumsInItsDefinedOrder) {
  // Shapes off the microkernel (12 x 32 or 6 x 16), the tiles (192 x 512) and the k blocks (256);
  // A and B row-major or transposed views, B float or bf16, assigned or accumulated, with and
  // without a bias; 1 and 2 threads. Any change to the order of a sum changes bits here.
  struct Shape {
    int64_t M, N, K;
  };
  for (const Shape sh : {Shape{1, 1, 1}, {2, 33, 7}, {13, 65, 255}, {37, 31, 257}, {193, 70, 600}, {385, 513, 300}, {5, 1030, 2}, {4, 9, 0}}) {
    for (const bool a_t : {false, true})
      for (const bool b_t : {false, true})
        for (const bool accumulate : {false, true}) {
          SCOPED_TRACE(::testing::Message() << sh.M << "x" << sh.N << "x" << sh.K << " a_t " << a_t << " b_t " << b_t << " acc " << accumulate);
          const auto av = random_vector(size_t(sh.M * sh.K), 21), bv = random_vector(size_t(sh.K * sh.N), 22);
          const auto bias = random_vector(size_t(sh.N), 23), c0 = random_vector(size_t(sh.M * sh.N), 24);
          std::vector<uint16_t> b16(bv.size());
          for (size_t i = 0; i < bv.size(); ++i) b16[i] = f32_to_bf16(bv[i]);
          const ops::GemmOperand<float> a = a_t ? ops::GemmOperand<float>{av.data(), 1, sh.M} : ops::GemmOperand<float>{av.data(), sh.K, 1};
          const int64_t brs = b_t ? 1 : sh.N, bcs = b_t ? sh.K : 1;
          const float* bp = accumulate ? nullptr : bias.data();
          const auto want = gemm_definition(a, ops::GemmOperand<float>{bv.data(), brs, bcs}, sh.M, sh.N, sh.K, c0, accumulate, bp);
          const auto want16 = gemm_definition(a, ops::GemmOperand<uint16_t>{b16.data(), brs, bcs}, sh.M, sh.N, sh.K, c0, accumulate, bp);
          for (int threads : {1, 2}) {
            set_num_threads(threads);
            auto c = c0, c16 = c0;
            ops::gemm(a, ops::GemmOperand<float>{bv.data(), brs, bcs}, sh.K, mat(c.data(), sh.M, sh.N), accumulate, bp);
            ops::gemm(a, ops::GemmOperand<uint16_t>{b16.data(), brs, bcs}, sh.K, mat(c16.data(), sh.M, sh.N), accumulate, bp);
            EXPECT_EQ(std::memcmp(c.data(), want.data(), c.size() * 4), 0) << threads << " threads";
            EXPECT_EQ(std::memcmp(c16.data(), want16.data(), c16.size() * 4), 0) << threads << " threads, bf16";
          }
          set_num_threads(0);
        }
  }
}

TEST(Gemm, ARowsResultDoesNotDependOnTheRowsBesideIt) {
  // What a streamed prefill relies on: the rows of a chunk multiplied alone are the bits of those
  // rows inside the whole window's product.
  const int64_t M = 500, K = 1920, O = 700;
  const auto x = random_vector(size_t(M * K), 31), w = random_vector(size_t(O * K), 32), b = random_vector(size_t(O), 33);
  const auto whole = linear(mat(x.data(), M, K), w, b, O);
  for (auto [r0, n] : {std::pair<int64_t, int64_t>{0, 2}, {37, 50}, {191, 13}, {300, 200}}) {
    const auto part = linear(Mat<const float>{x.data() + r0 * K, n, K, K}, w, b, O);
    EXPECT_EQ(std::memcmp(part.data(), whole.data() + r0 * O, part.size() * 4), 0) << r0 << "+" << n;
  }
}

TEST(Gemm, FloatLinearBackwardMatchesFloat64) {
  // dx and dw through the packed GEMM (transposed views of dy and w), against the float64 op on the
  // same values, accumulating into non-zero gradients.
  for (auto [M, K, O] : {std::tuple<int64_t, int64_t, int64_t>{1, 5, 3}, {17, 300, 45}, {300, 70, 600}}) {
    SCOPED_TRACE(::testing::Message() << M << "x" << K << "x" << O);
    const auto x = random_vector(size_t(M * K), 41), w = random_vector(size_t(O * K), 42), dy = random_vector(size_t(M * O), 43);
    const auto dx0 = random_vector(size_t(M * K), 44), dw0 = random_vector(size_t(O * K), 45);
    auto dx = dx0, dw = dw0;
    std::vector<float> db(size_t(O), 0.0f);
    auto dxm = mat(dx.data(), M, K);
    ops::linear_backward<float>(mat(x.data(), M, K), w.data(), mat(dy.data(), M, O), &dxm, dw.data(), db.data());
    const auto d = [](const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); };
    auto xd = d(x), wd = d(w), dyd = d(dy), dxd = d(dx0), dwd = d(dw0);
    std::vector<double> dbd(size_t(O), 0.0);
    auto dxdm = mat(dxd.data(), M, K);
    ops::linear_backward<double>(mat<const double>(xd.data(), M, K), wd.data(), mat<const double>(dyd.data(), M, O), &dxdm, dwd.data(), dbd.data());
    EXPECT_LT(compare(dx, dxd).max_abs, 1e-5 * std::sqrt(double(O)));
    EXPECT_LT(compare(dw, dwd).max_abs, 1e-5 * std::sqrt(double(M)));
    EXPECT_LT(compare(db, dbd).max_abs, 1e-5 * std::sqrt(double(M)));
  }
}

TEST(Gemm, Bf16ProductsMatchTheirRoundedOperandsInFloat64) {
  // --matmul bf16: both operands rounded to bf16 (nearest even), products summed in fp32. Against
  // a float64 product of the rounded values (so only the fp32 summation differs), off every block
  // size, an odd K (the last pair padded), bf16-stored B, transposed views, accumulation; the bits
  // do not depend on the thread count or on the rows beside a row.
  if (!ops::gemm_bf16_products_supported()) GTEST_SKIP() << "no AVX512_BF16 in this build/CPU";
  const auto round = [](float v) { return bf16_to_f32(f32_to_bf16(v)); };
  struct Shape {
    int64_t M, N, K;
  };
  for (const Shape sh : {Shape{2, 1, 1}, {13, 65, 255}, {37, 31, 257}, {193, 70, 601}, {385, 513, 300}}) {
    for (const bool b_t : {false, true}) {
      SCOPED_TRACE(::testing::Message() << sh.M << "x" << sh.N << "x" << sh.K << " b_t " << b_t);
      const auto av = random_vector(size_t(sh.M * sh.K), 51), bv = random_vector(size_t(sh.K * sh.N), 52);
      const auto c0 = random_vector(size_t(sh.M * sh.N), 53), bias = random_vector(size_t(sh.N), 54);
      std::vector<uint16_t> b16(bv.size());
      for (size_t i = 0; i < bv.size(); ++i) b16[i] = f32_to_bf16(bv[i]);
      const int64_t brs = b_t ? 1 : sh.N, bcs = b_t ? sh.K : 1;
      const ops::GemmOperand<float> a{av.data(), sh.K, 1}, b{bv.data(), brs, bcs};
      const ops::GemmOperand<uint16_t> b16op{b16.data(), brs, bcs};
      for (const bool accumulate : {false, true}) {
        std::vector<float> c = c0, c16 = c0;
        ops::gemm_bf16_products(a, b, sh.K, mat(c.data(), sh.M, sh.N), accumulate, accumulate ? nullptr : bias.data());
        ops::gemm_bf16_products(a, b16op, sh.K, mat(c16.data(), sh.M, sh.N), accumulate, accumulate ? nullptr : bias.data());
        EXPECT_EQ(std::memcmp(c.data(), c16.data(), c.size() * 4), 0);  // stored bf16 = rounded on the fly
        std::vector<double> want(c.size());
        for (int64_t i = 0; i < sh.M; ++i)
          for (int64_t j = 0; j < sh.N; ++j) {
            double sum = accumulate ? c0[size_t(i * sh.N + j)] : double(bias[size_t(j)]);
            for (int64_t k = 0; k < sh.K; ++k) sum += double(round(av[size_t(i * sh.K + k)])) * double(round(bv[size_t(k * brs + j * bcs)]));
            want[size_t(i * sh.N + j)] = sum;
          }
        const auto e = compare(c, want);
        EXPECT_LT(e.max_abs, 2e-6 * std::sqrt(double(sh.K)) + 1e-6) << "acc " << accumulate;
      }
      std::vector<float> one(size_t(sh.M * sh.N)), two(one.size());
      set_num_threads(1);
      ops::gemm_bf16_products(a, b, sh.K, mat(one.data(), sh.M, sh.N), false, nullptr);
      set_num_threads(2);
      ops::gemm_bf16_products(a, b, sh.K, mat(two.data(), sh.M, sh.N), false, nullptr);
      set_num_threads(0);
      EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * 4), 0);
      const int64_t r0 = sh.M / 3, n = sh.M - r0;
      std::vector<float> part(size_t(n * sh.N));
      ops::gemm_bf16_products({av.data() + r0 * sh.K, sh.K, 1}, b, sh.K, mat(part.data(), n, sh.N), false, nullptr);
      EXPECT_EQ(std::memcmp(part.data(), one.data() + r0 * sh.N, part.size() * 4), 0);
    }
  }
}

TEST(Gemm, MatmulBf16IsAnOptInForTheForward) {
  // linear_forward follows --matmul for two or more rows (a single row stays fp32), and goes back.
  if (!ops::gemm_bf16_products_supported()) {
    EXPECT_THROW(ops::set_matmul(ops::Matmul::bf16), Error);
    return;
  }
  const int64_t M = 40, K = 300, O = 70;
  const auto x = random_vector(size_t(M * K), 61), w = random_vector(size_t(O * K), 62);
  const auto fp32 = linear(mat(x.data(), M, K), w, {}, O), row32 = linear(mat(x.data(), 1, K), w, {}, O);
  ops::set_matmul(ops::Matmul::bf16);
  const auto bf16 = linear(mat(x.data(), M, K), w, {}, O);
  const auto row = linear(mat(x.data(), 1, K), w, {}, O);
  ops::set_matmul(ops::Matmul::fp32);
  EXPECT_EQ(linear(mat(x.data(), M, K), w, {}, O), fp32);
  const auto e = compare(bf16, std::vector<double>(fp32.begin(), fp32.end()));
  EXPECT_GT(e.max_abs, 1e-4);  // bf16 rounding shows
  EXPECT_LT(e.rel_l2, 1e-2);
  EXPECT_EQ(row, row32);
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
