// The causal conv1d kernels (every width, initial and final state, bias, SiLU, forward and every
// gradient, a long sequence whose backward is cut into many tiles) and the cuFFT long convolution
// on a device against the float64 oracles; skips without a CUDA build or device. The same kernel source runs on the CPU in
// tests/unit/test_kernel_emu.cpp.
#include "core/backend.h"
#include "tests/oracles.h"
#include "tests/testing.h"

#if LONGSEQ_WITH_CUDA
#include "kernels/causal_conv1d.h"
#include "kernels/fft_conv.h"
#include "tests/gpu/device_buffer.h"
#endif

using namespace longseq;
using namespace longseq::testing;

#if LONGSEQ_WITH_CUDA
namespace {

// Bound 1e-5 relative to the largest reference value (forward: W + 1 terms; device expf within a
// few ulp) and 1e-4 for the gradients (dweight, dbias sum over B x L = 200,000 terms in fp32).

void check_conv(int64_t B, int64_t L, int64_t D, int64_t W, uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << "B" << B << " L" << L << " D" << D << " W" << W);
  const auto x = random_vector(size_t(B * L * D), seed), w = random_vector(size_t(D * W), seed + 1), bias = random_vector(size_t(D), seed + 2);
  const auto init = random_vector(size_t(B * (W - 1) * D), seed + 3), dy = random_vector(size_t(B * L * D), seed + 4);
  DeviceFloats x_d(x), w_d(w), bias_d(bias), init_d(init), dy_d(dy), out(x.size()), final_state(std::max<size_t>(init.size(), 1)),
      dx(x.size()), dw(w.size()), db(bias.size()), dinit(std::max<size_t>(init.size(), 1));
  const cuda::CausalConv1dParams p{.batch = B, .length = L, .channels = D, .width = W, .x = x_d.ptr, .x_b = L * D, .x_l = D,
                                   .weight = w_d.ptr, .bias = bias_d.ptr, .init = W > 1 ? init_d.ptr : nullptr,
                                   .final_state = W > 1 ? final_state.ptr : nullptr, .silu = true, .out = out.ptr,
                                   .out_b = L * D, .out_l = D};
  cuda::causal_conv1d_forward(p);
  expect_within(out.host(), conv_oracle(x, w, bias, init, B, L, D, W, true), 1e-5, "out");
  cuda::causal_conv1d_backward({.fwd = p, .dout = dy_d.ptr, .dout_b = L * D, .dout_l = D, .dx = dx.ptr, .dx_b = L * D, .dx_l = D,
                                .dweight = dw.ptr, .dbias = db.ptr, .dinit = W > 1 ? dinit.ptr : nullptr});
  const ConvOracleGrads ref = conv_backward_oracle(x, w, bias, init, dy, B, L, D, W, true);
  expect_within(dx.host(), ref.dx, 1e-4, "dx");
  expect_within(dw.host(), ref.dw, 1e-4, "dweight");
  expect_within(db.host(), ref.dbias, 1e-4, "dbias");
  if (W > 1) {
    auto got = dinit.host();
    got.resize(ref.dprev.size());
    expect_within(got, ref.dprev, 1e-4, "dinit");
  }
}

// The FFT long convolution through cuFFT: filter spectrum, forward with gate and D skip, every
// gradient, against the O(L^2) float64 oracle (fp32 FFT round trip: error ~ log2(n) eps |k| |u|
// sqrt(L); bound 1e-4 of the largest reference value).
void check_fft_conv(int64_t B, int64_t L, int64_t D, uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << "fft conv B" << B << " L" << L << " D" << D);
  const auto u = random_vector(size_t(B * L * D), seed), k = random_vector(size_t(L * D), seed + 1), gate = random_vector(u.size(), seed + 2);
  const auto bias = random_vector(size_t(D), seed + 3), dy = random_vector(u.size(), seed + 4);
  const LongConvOracle ref = long_conv_oracle(u, k, gate, bias, dy, B, L, D);
  const int64_t n = cuda::fft_conv_size(L);
  DeviceFloats u_d(u), k_d(k), gate_d(gate), bias_d(bias), dy_d(dy), y(u.size()), du(u.size()), dk(k.size()), dgate(u.size()), db(bias.size());
  DeviceBuffer<cuda::CFloat> spec(size_t(D * (n / 2 + 1)));
  cuda::fft_conv_filter_spectrum(k_d.ptr, D, L, D, spec.ptr);
  const cuda::FftConvParams p{.batch = B, .length = L, .channels = D, .u = {u_d.ptr, L * D, D}, .gate = {gate_d.ptr, L * D, D},
                              .bias = bias_d.ptr, .filter = {L, D, n, spec.ptr}, .y = y.ptr, .y_b = L * D, .y_l = D};
  cuda::fft_conv_forward(p);
  expect_within(y.host(), ref.y, 1e-4, "y");
  cuda::fft_conv_backward({.fwd = p, .dy = {dy_d.ptr, L * D, D}, .du = du.ptr, .du_b = L * D, .du_l = D, .dk = dk.ptr, .dk_l = D,
                           .dgate = dgate.ptr, .dgate_b = L * D, .dgate_l = D, .dbias = db.ptr});
  expect_within(du.host(), ref.du, 1e-4, "du");
  expect_within(dk.host(), ref.dk, 1e-4, "dk");
  expect_within(dgate.host(), ref.dgate, 1e-4, "dgate");
  expect_within(db.host(), ref.dbias, 1e-4, "dbias");
}

}  // namespace
#endif

TEST(Gpu, FftConvMatchesFloat64Oracle) {
  if (!cuda_compiled() || cuda_device_count() == 0) GTEST_SKIP() << cuda_device_summary();
#if LONGSEQ_WITH_CUDA
  check_fft_conv(1, 1, 1, 11);
  check_fft_conv(2, 1000, 33, 12);
  check_fft_conv(1, 3001, 40, 13);  // 2L - 1 = 6001: the next even 7-smooth size is 6048
#endif
}

TEST(Gpu, CausalConv1dMatchesFloat64Oracle) {
  if (!cuda_compiled() || cuda_device_count() == 0) GTEST_SKIP() << cuda_device_summary();
#if LONGSEQ_WITH_CUDA
  check_conv(1, 1, 1, 4, 1);
  check_conv(2, 67, 33, 4, 2);
  check_conv(3, 1001, 70, 3, 3);
  check_conv(1, 513, 5, 2, 4);
  check_conv(2, 100, 64, 1, 5);
  check_conv(1, 200000, 48, 4, 6);
#endif
}
