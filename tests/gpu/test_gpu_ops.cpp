// Row norms, cross-entropy, activations, the embedding and the cuBLAS GEMM on a device against
// float64 references (sizes of real layers: D = 256..2048, rows in the thousands); skips without a
// CUDA build or device. The kernels' source runs on the CPU in tests/unit/test_kernel_emu.cpp.
#include "core/backend.h"
#include "tests/oracles.h"
#include "tests/testing.h"

#if LONGSEQ_WITH_CUDA
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/norm.h"
#include "tests/gpu/device_buffer.h"
#endif

using namespace longseq;
using namespace longseq::testing;

#if LONGSEQ_WITH_CUDA
namespace {


}  // namespace
#endif

TEST(Gpu, NormsMatchFloat64Oracle) {
  if (!cuda_compiled() || cuda_device_count() == 0) GTEST_SKIP() << cuda_device_summary();
#if LONGSEQ_WITH_CUDA
  for (bool rms : {true, false})
    for (const auto& [R, D] : {std::pair<int64_t, int64_t>{3, 7}, {4099, 256}, {517, 2048}}) {
      SCOPED_TRACE(::testing::Message() << "R" << R << " D" << D << " rms " << rms);
      const auto x = random_vector(size_t(R * D), uint64_t(R + D), -3.0f, 3.0f), w = random_vector(size_t(D), 2);
      const auto b = random_vector(size_t(D), 3), dy = random_vector(size_t(R * D), 4);
      const NormOracle ref = norm_oracle(x, w, rms ? std::vector<float>{} : b, dy, R, D, rms, 1e-5);
      DeviceFloats x_d(x), w_d(w), b_d(b), dy_d(dy), y(x.size()), mean(static_cast<size_t>(R)), rstd(static_cast<size_t>(R)), dx(x.size()),
          dw(w.size()), db(b.size());
      const cuda::NormParams p{.rows = R, .cols = D, .rms = rms, .eps = 1e-5f, .x = x_d.ptr, .x_r = D, .weight = w_d.ptr,
                               .bias = rms ? nullptr : b_d.ptr, .y = y.ptr, .y_r = D, .mean = mean.ptr, .rstd = rstd.ptr};
      cuda::norm_forward(p);
      cuda::norm_backward({.fwd = p, .dy = dy_d.ptr, .dy_r = D, .dx = dx.ptr, .dx_r = D, .dweight = dw.ptr, .dbias = rms ? nullptr : db.ptr});
      expect_within(y.host(), ref.y, 1e-5, "y");
      expect_within(dx.host(), ref.dx, 1e-4, "dx");
      expect_within(dw.host(), ref.dw, 1e-4, "dweight");  // sums over 4,099 rows
      if (!rms) expect_within(db.host(), ref.db, 1e-4, "dbias");
    }
#endif
}

TEST(Gpu, ActivationsEmbeddingMatchFloat64Oracle) {
  if (!cuda_compiled() || cuda_device_count() == 0) GTEST_SKIP() << cuda_device_summary();
#if LONGSEQ_WITH_CUDA
  const auto x = random_vector(100000, 11, -6.0f, 6.0f), dy = random_vector(100000, 12);
  DeviceFloats x_d(x), dy_d(dy), out(x.size());
  cuda::activation_forward({.kind = cuda::Activation::silu, .n = int64_t(x.size()), .x = x_d.ptr, .out = out.ptr});
  std::vector<double> silu_ref(x.size());
  for (size_t i = 0; i < x.size(); ++i) silu_ref[i] = x[i] / (1.0 + std::exp(-double(x[i])));
  expect_within(out.host(), silu_ref, 1e-5, "silu");

  const int64_t T = 5000, D = 128, Vt = 16;
  std::vector<int64_t> ids(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) ids[size_t(t)] = (t * 7 + t / 3) % Vt;
  const auto table = random_vector(size_t(Vt * D), 13), dout = random_vector(size_t(T * D), 14);
  DeviceBuffer<int64_t> ids_d(ids);
  DeviceFloats table_d(table), dout_d(dout), emb(static_cast<size_t>(T * D)), dtable(table.size());
  const cuda::EmbeddingParams p{.tokens = T, .dim = D, .vocab = Vt, .ids = ids_d.ptr, .table = table_d.ptr, .out = emb.ptr, .out_r = D,
                                .dout = dout_d.ptr, .dout_r = D, .dtable = dtable.ptr};
  cuda::embedding_forward(p);
  cuda::embedding_backward(p);
  std::vector<double> emb_ref(size_t(T * D)), dtable_ref(table.size(), 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < D; ++c) {
      emb_ref[size_t(t * D + c)] = table[size_t(ids[size_t(t)] * D + c)];
      dtable_ref[size_t(ids[size_t(t)] * D + c)] += dout[size_t(t * D + c)];
    }
  expect_within(emb.host(), emb_ref, 0.0, "embedding");
  expect_within(dtable.host(), dtable_ref, 1e-5, "embedding grad");
#endif
}

TEST(Gpu, GemmMatchesFloat64Oracle) {
  if (!cuda_compiled() || cuda_device_count() == 0) GTEST_SKIP() << cuda_device_summary();
#if LONGSEQ_WITH_CUDA
  // Every transpose combination, sizes off the tile multiples, strided rows, alpha and beta; and
  // nn.Linear with bias.
  const int64_t M = 333, N = 129, K = 517, pad = 3;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "trans_a " << ta << " trans_b " << tb);
      const int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
      const auto A = random_vector(size_t((ta ? K : M) * lda), 20), B = random_vector(size_t((tb ? N : K) * ldb), 21);
      const auto C0 = random_vector(size_t(M * ldc), 22);
      std::vector<double> ref(size_t(M * N));
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double s = 0;
          for (int64_t k = 0; k < K; ++k) s += double(ta ? A[size_t(k * lda + i)] : A[size_t(i * lda + k)]) * (tb ? B[size_t(j * ldb + k)] : B[size_t(k * ldb + j)]);
          ref[size_t(i * N + j)] = 0.5 * s + 2.0 * C0[size_t(i * ldc + j)];
        }
      DeviceFloats A_d(A), B_d(B), C_d(C0);
      cuda::gemm({.M = M, .N = N, .K = K, .trans_a = ta, .trans_b = tb, .alpha = 0.5f, .beta = 2.0f, .A = A_d.ptr, .lda = lda, .B = B_d.ptr,
                  .ldb = ldb, .C = C_d.ptr, .ldc = ldc});
      const auto C = C_d.host();
      std::vector<float> got(size_t(M * N));
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) got[size_t(i * N + j)] = C[size_t(i * ldc + j)];
      expect_within(got, ref, 1e-5, "C");
    }
  const auto x = random_vector(size_t(100 * 64), 30), w = random_vector(size_t(48 * 64), 31), bias = random_vector(48, 32);
  DeviceFloats x_d(x), w_d(w), b_d(bias), y(size_t(100 * 48));
  cuda::linear(x_d.ptr, 64, w_d.ptr, b_d.ptr, y.ptr, 48, 100, 64, 48);
  std::vector<double> ref(size_t(100 * 48));
  for (int64_t i = 0; i < 100; ++i)
    for (int64_t o = 0; o < 48; ++o) {
      double s = bias[size_t(o)];
      for (int64_t k = 0; k < 64; ++k) s += double(x[size_t(i * 64 + k)]) * w[size_t(o * 64 + k)];
      ref[size_t(i * 48 + o)] = s;
    }
  expect_within(y.host(), ref, 1e-5, "linear");
#endif
}
