// The selective scan kernels on a device against the float64 oracle: forward (odd lengths, several
// 64-token chunks, initial and final state, a long sequence cut into segments across blocks), packed
// sequences, decode steps, and every gradient of the backward;
// skips without a CUDA build or device. The same kernel source runs on the CPU in tests/unit/test_kernel_emu.cpp.
#include "core/backend.h"
#include "core/dtype.h"
#include "tests/oracles.h"
#include "tests/testing.h"

#if LONGSEQ_WITH_CUDA
#include "kernels/selective_scan.h"
#include "tests/gpu/device_buffer.h"
#endif

using namespace longseq;
using namespace longseq::testing;

#if LONGSEQ_WITH_CUDA
namespace {

void check_case(int64_t B, int64_t L, int64_t D, int64_t N, uint64_t seed) {
  const ScanOracleIn in = random_scan_inputs(B, L, D, N, true, seed);
  const size_t bld = size_t(B * L * D);
  std::vector<double> y_ref, h_ref;
  scan_oracle(in, y_ref, h_ref);
  DeviceFloats u(in.u), delta(in.delta), A(in.A), Bm(in.Bm), Cm(in.Cm), Dskip(in.Dskip), z(in.z), bias(in.bias), h0(in.h0),
      y(bld), h_last(size_t(B * D * N));
  cuda::selective_scan_forward({.batch = B, .length = L, .channels = D, .states = N, .u = u.ptr, .u_b = L * D, .u_l = D,
                                .delta = delta.ptr, .delta_b = L * D, .delta_l = D, .Bm = Bm.ptr, .B_b = L * N, .B_l = N,
                                .Cm = Cm.ptr, .C_b = L * N, .C_l = N, .z = z.ptr, .z_b = L * D, .z_l = D, .A = A.ptr,
                                .Dskip = Dskip.ptr, .delta_bias = bias.ptr, .softplus = true, .h0 = h0.ptr, .h_last = h_last.ptr,
                                .y = y.ptr, .y_b = L * D, .y_l = D});
  const auto ey = compare(y.host(), y_ref), eh = compare(h_last.host(), h_ref);
  SCOPED_TRACE(::testing::Message() << "B" << B << " L" << L << " D" << D << " N" << N << " y max_abs " << ey.max_abs << " rel_l2 "
                                    << ey.rel_l2 << "; state max_abs " << eh.max_abs);
  EXPECT_LE(ey.max_abs, 1e-4 * std::max(1.0, ey.max_ref));  // device expf/exp2f differ from libm by a few ulp
  EXPECT_LE(ey.rel_l2, 1e-5);
  EXPECT_LE(eh.max_abs, 1e-4 * std::max(1.0, eh.max_ref));
}

// Three sequences packed in one row (one long enough to be cut into segments) against the oracle
// run on each alone.
void check_packed(uint64_t seed) {
  const std::vector<int64_t> lens{3, 20000, 777};
  std::vector<int64_t> cu{0};
  for (int64_t n : lens) cu.push_back(cu.back() + n);
  const int64_t L = cu.back(), D = 40, N = 16, K = int64_t(lens.size());
  ScanOracleIn row = random_scan_inputs(1, L, D, N, true, seed);
  row.h0 = random_vector(size_t(K * D * N), seed + 100);
  std::vector<double> y_ref, h_ref;
  packed_scan_oracle(row, cu, y_ref, h_ref);
  DeviceFloats u(row.u), delta(row.delta), A(row.A), Bm(row.Bm), Cm(row.Cm), Dskip(row.Dskip), z(row.z), bias(row.bias), h0(row.h0),
      y(size_t(L * D)), h_last(size_t(K * D * N));
  DeviceBuffer<int64_t> cu_dev(cu);
  cuda::selective_scan_forward({.batch = 1, .length = L, .channels = D, .states = N, .u = u.ptr, .u_b = L * D, .u_l = D,
                                .delta = delta.ptr, .delta_b = L * D, .delta_l = D, .Bm = Bm.ptr, .B_b = L * N, .B_l = N,
                                .Cm = Cm.ptr, .C_b = L * N, .C_l = N, .z = z.ptr, .z_b = L * D, .z_l = D, .A = A.ptr,
                                .Dskip = Dskip.ptr, .delta_bias = bias.ptr, .softplus = true, .h0 = h0.ptr, .h_last = h_last.ptr,
                                .cu_seqlens = cu_dev.ptr, .n_seqs = K, .y = y.ptr, .y_b = L * D, .y_l = D});
  const auto ey = compare(y.host(), y_ref), eh = compare(h_last.host(), h_ref);
  EXPECT_LE(ey.max_abs, 1e-4 * std::max(1.0, ey.max_ref));
  EXPECT_LE(ey.rel_l2, 1e-5);
  EXPECT_LE(eh.max_abs, 1e-4 * std::max(1.0, eh.max_ref));
}

// Every gradient of the backward against the float64 oracle. fp32 sums over up to B x L terms
// (dA, dDskip over 70,001 tokens): bound 1e-4 of the largest reference value and 1e-4 in L2.
void check_backward(int64_t B, int64_t L, int64_t D, int64_t N, uint64_t seed) {
  const ScanOracleIn in = random_scan_inputs(B, L, D, N, true, seed);
  const std::vector<float> dy_host = random_vector(size_t(B * L * D), seed + 100);
  const ScanOracleGrads ref = scan_backward_oracle(in, dy_host);
  const size_t bld = size_t(B * L * D), bln = size_t(B * L * N);
  DeviceFloats u(in.u), delta(in.delta), A(in.A), Bm(in.Bm), Cm(in.Cm), Dskip(in.Dskip), z(in.z), bias(in.bias), h0(in.h0), dy(dy_host),
      du(bld), ddelta(bld), dz(bld), dB(bln), dC(bln), dA(static_cast<size_t>(D * N)), dD(static_cast<size_t>(D)), dbias(static_cast<size_t>(D)), dh0(static_cast<size_t>(B * D * N));
  const int64_t LD = L * D, LN = L * N;
  cuda::selective_scan_backward({.fwd = {.batch = B, .length = L, .channels = D, .states = N, .u = u.ptr, .u_b = LD, .u_l = D,
                                         .delta = delta.ptr, .delta_b = LD, .delta_l = D, .Bm = Bm.ptr, .B_b = LN, .B_l = N,
                                         .Cm = Cm.ptr, .C_b = LN, .C_l = N, .z = z.ptr, .z_b = LD, .z_l = D, .A = A.ptr,
                                         .Dskip = Dskip.ptr, .delta_bias = bias.ptr, .softplus = true, .h0 = h0.ptr},
                                 .dy = dy.ptr, .dy_b = LD, .dy_l = D, .du = du.ptr, .du_b = LD, .du_l = D, .ddelta = ddelta.ptr,
                                 .ddelta_b = LD, .ddelta_l = D, .dz = dz.ptr, .dz_b = LD, .dz_l = D, .dB = dB.ptr, .dB_b = LN,
                                 .dB_l = N, .dC = dC.ptr, .dC_b = LN, .dC_l = N, .dA = dA.ptr, .dDskip = dD.ptr,
                                 .ddelta_bias = dbias.ptr, .dh0 = dh0.ptr});
  SCOPED_TRACE(::testing::Message() << "B" << B << " L" << L << " D" << D << " N" << N);
  const auto check = [](const DeviceFloats& got, const std::vector<double>& want, const char* what) {
    const auto e = compare(got.host(), want);
    SCOPED_TRACE(::testing::Message() << what << " max_abs " << e.max_abs << " max_ref " << e.max_ref << " rel_l2 " << e.rel_l2);
    EXPECT_LE(e.max_abs, 1e-4 * std::max(1.0, e.max_ref));
    EXPECT_LE(e.rel_l2, 1e-4);
  };
  check(du, ref.du, "du"), check(ddelta, ref.ddelta, "ddelta"), check(dz, ref.dz, "dz"), check(dB, ref.dB, "dB");
  check(dC, ref.dC, "dC"), check(dA, ref.dA, "dA"), check(dD, ref.dD, "dDskip"), check(dbias, ref.dbias, "ddelta_bias");
  check(dh0, ref.dh0, "dh0");
}

// bf16 / fp16 storage: the oracle runs on the rounded inputs, so the error is y's own rounding.
void check_half(cuda::StorageType dtype, uint64_t seed) {
  const bool bf = dtype == cuda::StorageType::bf16;
  const int64_t B = 2, L = 5000, D = 64, N = 16, LD = L * D, LN = L * N;
  ScanOracleIn in = random_scan_inputs(B, L, D, N, true, seed);
  const auto to_bits = [&](std::vector<float>& v) { return round_to_half(v, bf); };
  DeviceBuffer<uint16_t> u(to_bits(in.u)), delta(to_bits(in.delta)), Bm(to_bits(in.Bm)), Cm(to_bits(in.Cm)), z(to_bits(in.z)),
      y(static_cast<size_t>(B * LD));
  std::vector<double> y_ref, h_ref;
  scan_oracle(in, y_ref, h_ref);
  DeviceFloats A(in.A), Dskip(in.Dskip), bias(in.bias), h0(in.h0);
  cuda::selective_scan_forward({.batch = B, .length = L, .channels = D, .states = N, .u = u.ptr, .u_b = LD, .u_l = D, .delta = delta.ptr,
                                .delta_b = LD, .delta_l = D, .Bm = Bm.ptr, .B_b = LN, .B_l = N, .Cm = Cm.ptr, .C_b = LN, .C_l = N, .z = z.ptr,
                                .z_b = LD, .z_l = D, .dtype = dtype, .A = A.ptr, .Dskip = Dskip.ptr, .delta_bias = bias.ptr,
                                .softplus = true, .h0 = h0.ptr, .y = y.ptr, .y_b = LD, .y_l = D});
  const double worst = half_error_units(y.host(), y_ref, bf, 1e-4);
  EXPECT_LE(worst, 1.0) << (bf ? "bf16" : "fp16") << ": worst error in units of the bound";
}

}  // namespace
#endif

TEST(Gpu, SelectiveScanForwardTakesBf16AndFp16) {
  if (!cuda_compiled() || cuda_device_count() == 0) GTEST_SKIP() << cuda_device_summary();
#if LONGSEQ_WITH_CUDA
  check_half(cuda::StorageType::bf16, 21);
  check_half(cuda::StorageType::f16, 22);
#endif
}

TEST(Gpu, SelectiveScanBackwardMatchesFloat64Oracle) {
  if (!cuda_compiled() || cuda_device_count() == 0) GTEST_SKIP() << cuda_device_summary();
#if LONGSEQ_WITH_CUDA
  check_backward(1, 1, 1, 1, 11);
  check_backward(2, 513, 5, 16, 12);
  check_backward(3, 1000, 37, 16, 13);
  check_backward(1, 70001, 40, 16, 14);  // hundreds of pieces: the gradient crosses them through passes 1 and 2
#endif
}

TEST(Gpu, SelectiveScanForwardMatchesFloat64Oracle) {
  if (!cuda_compiled() || cuda_device_count() == 0) GTEST_SKIP() << cuda_device_summary();
#if LONGSEQ_WITH_CUDA
  check_case(1, 1, 1, 1, 1);
  check_case(2, 511, 3, 16, 2);
  check_case(2, 513, 5, 16, 3);
  check_case(1, 4099, 64, 16, 4);
  check_case(3, 1000, 7, 256, 5);
  check_case(1, 70001, 40, 16, 6);  // 2 channel blocks: the host cuts L into 68 segments across blocks
#endif
}

TEST(Gpu, SelectiveScanPackedSequencesMatchFloat64Oracle) {
  if (!cuda_compiled() || cuda_device_count() == 0) GTEST_SKIP() << cuda_device_summary();
#if LONGSEQ_WITH_CUDA
  check_packed(8);
#endif
}
