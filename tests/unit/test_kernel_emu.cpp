// The CUDA kernel source itself, executed on the CPU through kernels/emu/cuda_emu.h (threads of a
// block as std::threads, __syncthreads as a barrier, __shared__ as block-shared static storage):
// the warp scan primitive against a sequential scan, and the selective scan forward kernel against
// the float64 oracle on odd lengths, L = 1, lengths around the chunk size, several chunks, initial
// state in and final state out, a streamed run (final state fed back as initial state), the
// segmented multi-block scan, and the one-token decode step.
#include "kernels/emu/cuda_emu.h"
#include "core/ops/ops.h"
#include "kernels/causal_conv1d.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/fft_conv.cuh"
#include "kernels/norm.cuh"
#include "kernels/selective_scan_bwd.cuh"
#include "tests/oracles.h"
#include "tests/testing.h"
#include "tests/unit/emu_ops.h"

#include <fftw3.h>

#include <mutex>
#include <type_traits>

using namespace longseq;
using namespace longseq::testing;

namespace {

// kWarps x 32 threads; lane l scans the sequence in[0..kWarps)[l] over warps.
template <int kWarps>
__global__ void scan_kernel(const cuda::ScanPair* in, cuda::ScanPair* out, cuda::ScanPair* total) {
  __shared__ cuda::ScanPair smem[kWarps][cuda::kLanes];
  cuda::ScanPair t;
  const int i = int(threadIdx.x);
  out[i] = cuda::warp_exclusive_scan<kWarps>(in[i], cuda::scan_combine, cuda::ScanPair{1, 0}, smem, &t);
  if (i < cuda::kLanes) total[i] = t;
}

struct KernelRun {
  std::vector<float> y, h_last;
};

// Runs the kernels (kWarps x kItems-token chunks, `segments` pieces) over tokens [t0, t0 + n) of `in`.
template <int kWarps, int kItems>
KernelRun run_kernel(const ScanOracleIn& in, int64_t t0, int64_t n, const std::vector<float>& h0, int64_t segments = 1) {
  KernelRun r{std::vector<float>(size_t(in.B * n * in.D), -1.0f), std::vector<float>(size_t(in.B * in.D * in.N), -1.0f)};
  const int64_t LD = in.L * in.D, LN = in.L * in.N;
  cuda::SelectiveScanParams p{.batch = in.B, .length = n, .channels = in.D, .states = in.N,
                              .u = in.u.data() + t0 * in.D, .u_b = LD, .u_l = in.D,
                              .delta = in.delta.data() + t0 * in.D, .delta_b = LD, .delta_l = in.D,
                              .Bm = in.Bm.data() + t0 * in.N, .B_b = LN, .B_l = in.N,
                              .Cm = in.Cm.data() + t0 * in.N, .C_b = LN, .C_l = in.N,
                              .z = in.z.empty() ? nullptr : in.z.data() + t0 * in.D, .z_b = LD, .z_l = in.D,
                              .A = in.A.data(),
                              .Dskip = in.Dskip.empty() ? nullptr : in.Dskip.data(),
                              .delta_bias = in.bias.empty() ? nullptr : in.bias.data(),
                              .softplus = in.softplus,
                              .h0 = h0.empty() ? nullptr : h0.data(),
                              .h_last = r.h_last.data(),
                              .y = r.y.data(), .y_b = n * in.D, .y_l = in.D};
  std::vector<float> scratch(size_t(cuda::selective_scan_scratch(p, segments)));
  cuda::selective_scan_segmented<kWarps, kItems>(p, segments, scratch.data(), emu::launcher);
  return r;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& ref, const char* what) { expect_within(got, ref, 1e-5, what); }

}  // namespace

TEST(KernelEmu, WarpScanComposesInWarpOrderPerLane) {
  constexpr int kWarps = 5, kThreads = kWarps * cuda::kLanes;
  std::vector<cuda::ScanPair> in(kThreads), out(kThreads), total(cuda::kLanes);
  const auto a = random_vector(kThreads, 1, 0.5f, 1.5f), b = random_vector(kThreads, 2);
  for (int i = 0; i < kThreads; ++i) in[size_t(i)] = {a[size_t(i)], b[size_t(i)]};
  emu::launch(dim3(1), dim3(kThreads), scan_kernel<kWarps>, in.data(), out.data(), total.data());
  for (int lane = 0; lane < cuda::kLanes; ++lane) {
    double A = 1, Bv = 0;  // sequential composition in double
    for (int w = 0; w < kWarps; ++w) {
      const size_t i = size_t(w * cuda::kLanes + lane);
      EXPECT_NEAR(out[i].a, A, 1e-5 * std::abs(A)) << lane << " " << w;
      EXPECT_NEAR(out[i].b, Bv, 1e-5 * std::max(1.0, std::abs(Bv))) << lane << " " << w;
      Bv = a[i] * Bv + b[i];
      A *= a[i];
    }
    EXPECT_NEAR(total[size_t(lane)].a, A, 1e-5 * std::abs(A)) << lane;
    EXPECT_NEAR(total[size_t(lane)].b, Bv, 1e-5 * std::max(1.0, std::abs(Bv))) << lane;
  }
}

TEST(KernelEmu, SelectiveScanForwardMatchesFloat64Oracle) {
  struct Case {
    int64_t B, L, D, N;
    bool extras;
  };
  // Chunk = 2 warps x 8 tokens = 16: lengths below, at, just past and many chunks; D = 33 and 40
  // give a second block of channels with idle lanes.
  const Case cases[] = {{1, 1, 1, 1, false}, {2, 7, 3, 5, true},   {1, 16, 2, 4, true},
                        {2, 17, 33, 16, true}, {1, 100, 2, 8, false}, {1, 131, 40, 3, true}};
  uint64_t seed = 40;
  for (const Case& c : cases) {
    const ScanOracleIn in = random_scan_inputs(c.B, c.L, c.D, c.N, c.extras, seed += 10);
    std::vector<double> y_ref, h_ref;
    scan_oracle(in, y_ref, h_ref);
    SCOPED_TRACE(::testing::Message() << "B" << c.B << " L" << c.L << " D" << c.D << " N" << c.N);
    const KernelRun r = run_kernel<2, 8>(in, 0, c.L, in.h0);
    expect_close(r.y, y_ref, "y");
    expect_close(r.h_last, h_ref, "final state");
  }
  // One warp, one token per thread: the carried state crosses 99 chunk boundaries.
  const ScanOracleIn in = random_scan_inputs(2, 99, 2, 6, true, 7);
  std::vector<double> y_ref, h_ref;
  scan_oracle(in, y_ref, h_ref);
  const KernelRun r = run_kernel<1, 1>(in, 0, in.L, in.h0);
  expect_close(r.y, y_ref, "y, chunk 1");
  expect_close(r.h_last, h_ref, "final state, chunk 1");
  // The launch configuration of kernels/selective_scan.cu (8 warps x 8 tokens).
  const ScanOracleIn big = random_scan_inputs(1, 150, 5, 16, true, 9);
  scan_oracle(big, y_ref, h_ref);
  const KernelRun rb = run_kernel<8, 8>(big, 0, big.L, big.h0);
  expect_close(rb.y, y_ref, "y, 8 x 8");
  expect_close(rb.h_last, h_ref, "final state, 8 x 8");
}

TEST(KernelEmu, SegmentedScanEqualsTheOracle) {
  // The sequence cut into pieces run by separate blocks (pass 1: each piece from zero; pass 2: the
  // pieces' true initial states; pass 3: the outputs): 2..13 pieces of 16-token chunks, the last
  // piece short, with and without an initial state, and more pieces asked than chunks exist.
  for (const auto& [L, segments, extras] : {std::tuple{209, 2, true}, std::tuple{209, 5, false}, std::tuple{200, 13, true},
                                            std::tuple{33, 40, true}}) {
    const ScanOracleIn in = random_scan_inputs(1, L, 35, 6, extras, uint64_t(L + segments));
    std::vector<double> y_ref, h_ref;
    scan_oracle(in, y_ref, h_ref);
    SCOPED_TRACE(::testing::Message() << "L" << L << " segments " << segments);
    const KernelRun r = run_kernel<2, 8>(in, 0, L, in.h0, segments);
    expect_close(r.y, y_ref, "y");
    expect_close(r.h_last, h_ref, "final state");
  }
}

TEST(KernelEmu, PackedSequencesRestartTheirState) {
  // Five sequences (5, 1, 40, 17, 33 tokens) packed in one row: each must equal the oracle run on
  // it alone, from its own initial state, with its own final state, whether the row runs in one
  // piece or in segments (boundaries inside chunks and segments).
  const std::vector<int64_t> lens{5, 1, 40, 17, 33};
  std::vector<int64_t> cu{0};
  for (int64_t n : lens) cu.push_back(cu.back() + n);
  const int64_t L = cu.back(), D = 35, N = 6, K = int64_t(lens.size());
  for (bool with_h0 : {true, false}) {
    ScanOracleIn row = random_scan_inputs(1, L, D, N, true, with_h0 ? 61 : 62);
    row.h0 = with_h0 ? random_vector(size_t(K * D * N), 63) : std::vector<float>{};
    std::vector<double> y_ref, h_ref;
    packed_scan_oracle(row, cu, y_ref, h_ref);
    for (int64_t segments : {1, 4}) {
      SCOPED_TRACE(::testing::Message() << "h0 " << with_h0 << " segments " << segments);
      std::vector<float> y(size_t(L * D), -1.0f), h_last(size_t(K * D * N), -1.0f);
      cuda::SelectiveScanParams p{.batch = 1, .length = L, .channels = D, .states = N, .u = row.u.data(), .u_b = L * D, .u_l = D,
                                  .delta = row.delta.data(), .delta_b = L * D, .delta_l = D, .Bm = row.Bm.data(), .B_b = L * N,
                                  .B_l = N, .Cm = row.Cm.data(), .C_b = L * N, .C_l = N, .z = row.z.data(), .z_b = L * D,
                                  .z_l = D, .A = row.A.data(), .Dskip = row.Dskip.data(), .delta_bias = row.bias.data(),
                                  .softplus = true, .h0 = with_h0 ? row.h0.data() : nullptr, .h_last = h_last.data(),
                                  .cu_seqlens = cu.data(), .n_seqs = K, .y = y.data(), .y_b = L * D, .y_l = D};
      std::vector<float> scratch(size_t(cuda::selective_scan_scratch(p, segments)));
      cuda::selective_scan_segmented<2, 8>(p, segments, scratch.data(),
                                           emu::launcher);
      expect_close(y, y_ref, "y packed");
      expect_close(h_last, h_ref, "final states packed");
    }
  }
}

TEST(KernelEmu, SelectiveScanStreamsThroughItsState) {
  // Tokens 0..37 then 37..100, the first call's final state the second's initial state, equal the
  // oracle over all 100 (streaming decode and chunked prefill rely on this).
  const ScanOracleIn in = random_scan_inputs(1, 100, 3, 8, true, 11);
  std::vector<double> y_ref, h_ref;
  scan_oracle(in, y_ref, h_ref);
  const KernelRun first = run_kernel<2, 8>(in, 0, 37, in.h0);
  const KernelRun second = run_kernel<2, 8>(in, 37, 63, first.h_last);
  std::vector<float> y = first.y;
  y.insert(y.end(), second.y.begin(), second.y.end());
  expect_close(y, y_ref, "y streamed");
  expect_close(second.h_last, h_ref, "final state streamed");
}

namespace {

// Gradients from the backward kernels (fwd chunk kFW x kFI, backward chunk kW x kI, `segments` pieces).
struct KernelGrads {
  std::vector<float> du, ddelta, dz, dB, dC, dA, dD, dbias, dh0;
};

template <int kFW, int kFI, int kW, int kI>
KernelGrads run_backward(const ScanOracleIn& in, const std::vector<float>& dy, int64_t segments) {
  const int64_t B = in.B, L = in.L, D = in.D, N = in.N, LD = L * D, LN = L * N;
  constexpr float kUnwritten = 1e30f;  // any gradient the kernels fail to write stands out
  KernelGrads r;
  r.du.assign(size_t(B * LD), kUnwritten), r.ddelta = r.du, r.dz = r.du;
  r.dB.assign(size_t(B * LN), kUnwritten), r.dC = r.dB;
  r.dA.assign(size_t(D * N), kUnwritten), r.dh0.assign(size_t(B * D * N), kUnwritten);
  r.dD.assign(size_t(D), kUnwritten), r.dbias = r.dD;
  const bool extras = !in.z.empty();
  cuda::SelectiveScanBwdParams g{
      .fwd = {.batch = B, .length = L, .channels = D, .states = N, .u = in.u.data(), .u_b = LD, .u_l = D, .delta = in.delta.data(),
              .delta_b = LD, .delta_l = D, .Bm = in.Bm.data(), .B_b = LN, .B_l = N, .Cm = in.Cm.data(), .C_b = LN, .C_l = N,
              .z = extras ? in.z.data() : nullptr, .z_b = LD, .z_l = D, .A = in.A.data(), .Dskip = extras ? in.Dskip.data() : nullptr,
              .delta_bias = extras ? in.bias.data() : nullptr, .softplus = in.softplus, .h0 = in.h0.empty() ? nullptr : in.h0.data()},
      .dy = dy.data(), .dy_b = LD, .dy_l = D, .du = r.du.data(), .du_b = LD, .du_l = D, .ddelta = r.ddelta.data(), .ddelta_b = LD,
      .ddelta_l = D, .dz = r.dz.data(), .dz_b = LD, .dz_l = D, .dB = r.dB.data(), .dB_b = LN, .dB_l = N, .dC = r.dC.data(),
      .dC_b = LN, .dC_l = N, .dA = r.dA.data(), .dDskip = r.dD.data(), .ddelta_bias = r.dbias.data(), .dh0 = r.dh0.data()};
  std::vector<float> scratch(size_t(cuda::selective_scan_bwd_scratch<kFW, kFI, kW, kI>(g.fwd, segments)), kUnwritten);
  cuda::selective_scan_backward_run<kFW, kFI, kW, kI>(g, segments, scratch.data(), emu::launcher);
  return r;
}

// fp32 gradients are sums over up to L x D terms; measured errors are below 4e-7 of the largest
// reference value and 4e-7 relative in L2, a mutation (a wrong piece decay, a 0.1% carry error)
// gives 2e-4 and more. Bound: 1e-5 on both, as for the forward.
void expect_grad_close(const std::vector<float>& got, const std::vector<double>& ref, const char* what) { expect_within(got, ref, 1e-5, what); }

template <int kFW, int kFI, int kW, int kI>
void check_backward(int64_t B, int64_t L, int64_t D, int64_t N, bool extras, int64_t segments, uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << "B" << B << " L" << L << " D" << D << " N" << N << " extras " << extras << " segments " << segments
                                    << " chunk " << kW * kI);
  const ScanOracleIn in = random_scan_inputs(B, L, D, N, extras, seed);
  const std::vector<float> dy = random_vector(size_t(B * L * D), seed + 100);
  const ScanOracleGrads ref = scan_backward_oracle(in, dy);
  const KernelGrads r = run_backward<kFW, kFI, kW, kI>(in, dy, segments);
  expect_grad_close(r.du, ref.du, "du");
  expect_grad_close(r.ddelta, ref.ddelta, "ddelta");
  expect_grad_close(r.dB, ref.dB, "dB");
  expect_grad_close(r.dC, ref.dC, "dC");
  expect_grad_close(r.dA, ref.dA, "dA");
  expect_grad_close(r.dh0, ref.dh0, "dh0");
  if (extras) {
    expect_grad_close(r.dz, ref.dz, "dz");
    expect_grad_close(r.dD, ref.dD, "dDskip");
    expect_grad_close(r.dbias, ref.dbias, "ddelta_bias");
  }
}

}  // namespace

TEST(KernelEmu, SelectiveScanBackwardMatchesFloat64Oracle) {
  // Backward chunk = 2 warps x 4 tokens = 8 (forward pieces of 16-token chunks): L = 1, below,
  // at and past a chunk, many chunks; D = 33 and 35 add a channel group with idle lanes; with and
  // without z, D skip, delta bias and the initial state.
  check_backward<2, 8, 2, 4>(1, 1, 1, 1, false, 1, 300);
  check_backward<2, 8, 2, 4>(2, 7, 3, 5, true, 1, 310);
  check_backward<2, 8, 2, 4>(1, 8, 2, 4, true, 1, 320);
  check_backward<2, 8, 2, 4>(2, 17, 33, 16, true, 1, 330);
  check_backward<2, 8, 2, 4>(1, 131, 35, 3, true, 1, 340);
  check_backward<2, 8, 2, 4>(1, 100, 2, 8, false, 1, 350);
  // One token per thread in one warp: the reverse carry crosses every token.
  check_backward<1, 1, 1, 1>(2, 45, 3, 6, true, 1, 360);
}

TEST(KernelEmu, SegmentedScanBackwardEqualsTheOracle) {
  // The row cut into pieces (the gradient entering each from the later ones via passes 1 and 2):
  // 2..13 pieces, the last short, more asked than chunks exist, and the host's configuration.
  check_backward<2, 8, 2, 4>(1, 209, 35, 6, true, 2, 400);
  check_backward<2, 8, 2, 4>(2, 209, 5, 4, false, 5, 410);
  check_backward<2, 8, 2, 4>(1, 200, 3, 6, true, 13, 420);
  check_backward<2, 8, 2, 4>(1, 33, 2, 3, true, 40, 430);
  check_backward<8, 8, 8, 4>(1, 300, 5, 16, true, 3, 440);
}

namespace {

// The conv kernels (kItems tokens per thread, kWarps warps, backward cut into `tiles`; the register
// kernels up to 4 taps, the shared-memory ones past it) against the float64 oracles: output, final
// state, and every gradient.
template <int kItems, int kWarps>
void check_conv(int64_t W, int64_t B, int64_t L, int64_t D, bool with_init, bool with_bias, bool silu, int64_t tiles, uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << "B" << B << " L" << L << " D" << D << " W" << W << " init " << with_init << " bias " << with_bias
                                    << " silu " << silu << " tiles " << tiles);
  const auto x = random_vector(size_t(B * L * D), seed), w = random_vector(size_t(D * W), seed + 1);
  const auto bias = with_bias ? random_vector(size_t(D), seed + 2) : std::vector<float>{};
  const auto init = with_init ? random_vector(size_t(B * (W - 1) * D), seed + 3) : std::vector<float>{};
  const auto dy = random_vector(size_t(B * L * D), seed + 4);
  const auto& launch = emu::launcher;
  constexpr float kUnwritten = 1e30f;
  std::vector<float> out(x.size(), kUnwritten), final_state(size_t(B * (W - 1) * D), kUnwritten);
  const cuda::CausalConv1dParams p{.batch = B, .length = L, .channels = D, .width = W, .x = x.data(), .x_b = L * D, .x_l = D,
                                   .weight = w.data(), .bias = with_bias ? bias.data() : nullptr,
                                   .init = with_init ? init.data() : nullptr, .final_state = final_state.data(), .silu = silu,
                                   .out = out.data(), .out_b = L * D, .out_l = D};
  cuda::causal_conv1d_forward_any<kItems, kWarps>(p, launch);
  expect_close(out, conv_oracle(x, w, bias, init, B, L, D, W, silu), "out");
  std::vector<double> final_ref;  // the last W - 1 inputs of [init, x]
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < W - 1; ++j)
      for (int64_t d = 0; d < D; ++d) {
        const int64_t t = L - (W - 1) + j;
        final_ref.push_back(t >= 0 ? x[size_t((b * L + t) * D + d)] : with_init ? init[size_t((b * (W - 1) + W - 1 + t) * D + d)] : 0.0);
      }
  expect_close(final_state, final_ref, "final state");

  const ConvOracleGrads ref = conv_backward_oracle(x, w, bias, init, dy, B, L, D, W, silu);
  std::vector<float> dx(x.size(), kUnwritten), dw(w.size(), kUnwritten), db(size_t(D), kUnwritten), dinit(ref.dprev.size(), kUnwritten);
  cuda::CausalConv1dBwdParams g{.fwd = p, .dout = dy.data(), .dout_b = L * D, .dout_l = D, .dx = dx.data(), .dx_b = L * D, .dx_l = D,
                                .dweight = dw.data(), .dbias = db.data(), .dinit = dinit.data()};
  std::vector<float> scratch(size_t(cuda::causal_conv1d_bwd_scratch(p, tiles)), kUnwritten);
  cuda::causal_conv1d_backward_any<kItems, kWarps>(g, tiles, scratch.data(), launch);
  expect_grad_close(dx, ref.dx, "dx");
  expect_grad_close(dw, ref.dw, "dweight");
  expect_grad_close(db, ref.dbias, "dbias");
  if (W > 1) expect_grad_close(dinit, ref.dprev, "dinit");
}

}  // namespace

TEST(KernelEmu, CausalConv1dMatchesFloat64Oracle) {
  // Widths 1..4, L = 1 (shorter than the window: the final state mixes init and x), runs of 4 tokens
  // in 2 warps with lengths off the run size, channel groups with idle lanes, with and without the
  // initial state, bias and SiLU, the backward in 1..5 tiles (more asked than runs exist too).
  check_conv<4, 2>(4, 2, 1, 3, true, true, true, 1, 500);
  check_conv<4, 2>(4, 1, 2, 33, true, false, true, 3, 510);
  check_conv<4, 2>(4, 2, 37, 35, true, true, true, 5, 520);
  check_conv<4, 2>(4, 1, 37, 5, false, true, false, 2, 530);
  check_conv<4, 2>(3, 2, 19, 7, true, true, true, 3, 540);
  check_conv<4, 2>(2, 1, 9, 4, true, false, false, 1, 550);
  check_conv<4, 2>(1, 1, 9, 4, false, true, true, 2, 560);
  check_conv<8, 8>(4, 1, 300, 40, true, true, true, 3, 570);  // the host's configuration
}

TEST(KernelEmu, WideCausalConv1dMatchesFloat64Oracle) {
  // Filters past the register kernels (StripedHyena 2's hcs, 7 taps, and hcm, 128 = the limit):
  // L = 1 (the window is mostly the initial state), lengths off the 64-token tile, L shorter than
  // the filter, idle lanes, one or several tiles of the tap sums, with and without init and bias.
  check_conv<4, 2>(5, 1, 1, 3, true, true, false, 1, 600);
  check_conv<4, 2>(7, 2, 70, 33, true, true, false, 3, 610);
  check_conv<4, 2>(7, 1, 64, 8, false, false, false, 2, 620);
  check_conv<4, 2>(128, 1, 130, 5, true, false, false, 3, 630);
  check_conv<4, 2>(128, 2, 40, 3, true, true, false, 1, 640);
  check_conv<8, 8>(128, 1, 200, 40, true, true, false, 8, 650);  // the host's configuration
}

namespace {

// The FFT conv kernels (pack / spectral products / unpack) and drivers against the O(L^2) float64
// oracle, channel blocks of cb.
void check_fft_conv(int64_t B, int64_t L, int64_t D, bool with_gate, bool with_bias, int64_t cb, uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << "B" << B << " L" << L << " D" << D << " gate " << with_gate << " bias " << with_bias << " cb " << cb);
  const auto u = random_vector(size_t(B * L * D), seed), k = random_vector(size_t(L * D), seed + 1);
  const auto gate = with_gate ? random_vector(u.size(), seed + 2) : std::vector<float>{};
  const auto bias = with_bias ? random_vector(size_t(D), seed + 3) : std::vector<float>{};
  const auto dy = random_vector(u.size(), seed + 4);
  const LongConvOracle ref = long_conv_oracle(u, k, gate, bias, dy, B, L, D);
  const auto& launch = emu::launcher;
  const int64_t n = 2 * L;  // any even n >= 2L - 1; fft_conv_size's choice is tested on the device
  FftwRunner fft{n};
  std::vector<cuda::CFloat> spec(size_t(D * (n / 2 + 1)));
  std::vector<float> scratch(size_t(cuda::fft_conv_scratch(B, cb, n)));
  cuda::fft_filter_spectrum_run(k.data(), D, L, D, n, cb, spec.data(), scratch.data(), launch, fft);
  constexpr float kUnwritten = 1e30f;
  std::vector<float> y(u.size(), kUnwritten);
  const cuda::FftConvParams p{.batch = B, .length = L, .channels = D, .u = {u.data(), L * D, D},
                              .gate = {with_gate ? gate.data() : nullptr, L * D, D}, .bias = with_bias ? bias.data() : nullptr,
                              .filter = {L, D, n, spec.data()}, .y = y.data(), .y_b = L * D, .y_l = D};
  cuda::fft_conv_forward_run(p, cb, scratch.data(), launch, fft);
  expect_close(y, ref.y, "y");
  std::vector<float> du(u.size(), kUnwritten), dk(k.size(), kUnwritten), dgate(u.size(), kUnwritten), dbias(size_t(D), kUnwritten);
  constexpr int64_t kTiles = 3;
  std::vector<float> dbias_scratch(size_t(cuda::fft_conv_dbias_scratch(L, D, kTiles)));
  cuda::fft_conv_backward_run({.fwd = p, .dy = {dy.data(), L * D, D}, .du = du.data(), .du_b = L * D, .du_l = D, .dk = dk.data(), .dk_l = D,
                               .dgate = dgate.data(), .dgate_b = L * D, .dgate_l = D, .dbias = dbias.data()},
                              cb, kTiles, scratch.data(), dbias_scratch.data(), launch, fft);
  expect_grad_close(du, ref.du, "du");
  expect_grad_close(dk, ref.dk, "dk");
  if (with_gate) expect_grad_close(dgate, ref.dgate, "dgate");
  if (with_bias) expect_grad_close(dbias, ref.dbias, "dbias");
}

}  // namespace

TEST(KernelEmu, FftConvMatchesFloat64Oracle) {
  // L = 1, odd lengths and lengths past a 32-token tile, channel blocks that do and do not divide
  // D (33 channels: a second tile of channels), with and without gate and D skip, B = 1 and 3.
  check_fft_conv(1, 1, 1, true, true, 1, 600);
  check_fft_conv(2, 7, 3, true, true, 2, 610);
  check_fft_conv(3, 45, 33, true, true, 33, 620);
  check_fft_conv(1, 70, 5, false, true, 4, 630);
  check_fft_conv(2, 33, 6, true, false, 6, 640);
  check_fft_conv(1, 64, 2, false, false, 1, 650);
}

namespace {

const auto& emu_launch = emu::launcher;

void check_norm(int64_t R, int64_t D, bool rms, int64_t tiles, uint64_t seed, bool eps_outside = false) {
  SCOPED_TRACE(::testing::Message() << "R" << R << " D" << D << " rms " << rms << " eps outside " << eps_outside << " tiles " << tiles);
  const auto x = random_vector(size_t(R * D), seed, -3.0f, 3.0f), w = random_vector(size_t(D), seed + 1);
  const auto b = rms ? std::vector<float>{} : random_vector(size_t(D), seed + 2), dy = random_vector(size_t(R * D), seed + 3);
  const double eps = eps_outside ? 1e-2 : 1e-5;
  const NormOracle ref = norm_oracle(x, w, b, dy, R, D, rms, eps, eps_outside);
  constexpr float kUnwritten = 1e30f;
  std::vector<float> y(x.size(), kUnwritten), mean(static_cast<size_t>(R)), rstd(static_cast<size_t>(R)), dx(x.size(), kUnwritten), dw(size_t(D), kUnwritten),
      db(size_t(D), kUnwritten);
  const cuda::NormParams p{.rows = R, .cols = D, .rms = rms, .eps_outside = eps_outside, .eps = float(eps), .x = x.data(), .x_r = D, .weight = w.data(),
                           .bias = rms ? nullptr : b.data(), .y = y.data(), .y_r = D, .mean = mean.data(), .rstd = rstd.data()};
  cuda::norm_forward_run<4>(p, emu_launch);
  expect_close(y, ref.y, "y");
  std::vector<float> scratch(size_t(cuda::norm_bwd_scratch(p, tiles)));
  cuda::norm_backward_run<4>({.fwd = p, .dy = dy.data(), .dy_r = D, .dx = dx.data(), .dx_r = D, .dweight = dw.data(),
                              .dbias = rms ? nullptr : db.data()},
                             tiles, scratch.data(), emu_launch);
  if (D == 1) {  // dx is the cancellation of two O(rstd |dy|) terms down to ~eps / x^2: an absolute bound only
    const auto e = compare(dx, ref.dx);
    EXPECT_LE(e.max_abs, 1e-6) << "dx, D = 1";
  } else {
    expect_grad_close(dx, ref.dx, "dx");
  }
  expect_grad_close(dw, ref.dw, "dweight");
  if (!rms) expect_grad_close(db, ref.db, "dbias");
}

}  // namespace

TEST(KernelEmu, NormsMatchFloat64Oracle) {
  // Rows not a multiple of the 4 warps of a block, widths below, at and past 32 lanes, one row,
  // column sums in 1..7 tiles.
  for (bool rms : {true, false}) {
    check_norm(1, 1, rms, 1, 700);
    check_norm(5, 31, rms, 2, 710);
    check_norm(9, 32, rms, 7, 720);
    check_norm(13, 100, rms, 3, 730);
  }
  check_norm(5, 31, true, 2, 740, true);  // StripedHyena's RMSNorm: eps added to the root
  check_norm(13, 100, true, 3, 750, true);
}

TEST(KernelEmu, ActivationsAndEmbeddingMatchFloat64Oracle) {  // and Hyena's per-column Sin
  const auto x = random_vector(1000, 900, -6.0f, 6.0f), dy = random_vector(1000, 901);
  for (const auto kind : {cuda::Activation::silu, cuda::Activation::gelu_tanh, cuda::Activation::gelu_erf}) {
    std::vector<double> y_ref(x.size()), dx_ref(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const double v = x[i];
      if (kind == cuda::Activation::silu) {
        const double s = 1.0 / (1.0 + std::exp(-v));
        y_ref[i] = v * s, dx_ref[i] = dy[i] * s * (1.0 + v * (1.0 - s));
      } else if (kind == cuda::Activation::gelu_erf) {  // x Phi(x), Phi'(x) = exp(-x^2/2) / sqrt(2 pi)
        const double Phi = 0.5 * std::erfc(-v / std::sqrt(2.0));
        y_ref[i] = v * Phi, dx_ref[i] = dy[i] * (Phi + v * std::exp(-0.5 * v * v) / std::sqrt(2 * M_PI));
      } else {
        const double k = std::sqrt(2.0 / M_PI), u = k * (v + 0.044715 * v * v * v), th = std::tanh(u);
        y_ref[i] = 0.5 * v * (1.0 + th);
        dx_ref[i] = dy[i] * (0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * k * (1.0 + 3.0 * 0.044715 * v * v));
      }
    }
    std::vector<float> y(x.size()), dx(x.size());
    cuda::activation_run({.kind = kind, .n = int64_t(x.size()), .x = x.data(), .out = y.data()}, false, 2, emu_launch);  // 2 blocks: grid-stride
    cuda::activation_run({.kind = kind, .n = int64_t(x.size()), .x = x.data(), .dy = dy.data(), .out = dx.data()}, true, 3, emu_launch);
    expect_close(y, y_ref, "activation");
    expect_close(dx, dx_ref, "activation grad");
  }
  // Hyena's Sin with one frequency per column (rows x cols = 37 x 7, so the column index wraps
  // inside blocks); the backward's cos(f x) dy too.
  const int64_t R = 37, C = 7;
  const auto freq = random_vector(size_t(C), 904, 0.5f, 12.0f), xs = random_vector(size_t(R * C), 905, -2.0f, 2.0f),
             dys = random_vector(size_t(R * C), 906);
  std::vector<double> sin_ref(xs.size()), sdx_ref(xs.size()), cos_ref(xs.size());
  for (int64_t i = 0; i < R * C; ++i) {
    const double f = freq[size_t(i % C)], v = xs[size_t(i)];
    sin_ref[size_t(i)] = std::sin(f * v), cos_ref[size_t(i)] = std::cos(f * v) * dys[size_t(i)], sdx_ref[size_t(i)] = f * cos_ref[size_t(i)];
  }
  std::vector<float> sy(xs.size()), sdx(xs.size()), scos(xs.size());
  cuda::sin_columns_run({.rows = R, .cols = C, .x = xs.data(), .freq = freq.data(), .y = sy.data()}, false, 2, emu_launch);
  cuda::sin_columns_run({.rows = R, .cols = C, .x = xs.data(), .freq = freq.data(), .dy = dys.data(), .dx = sdx.data(), .cos_dy = scos.data()},
                        true, 3, emu_launch);
  expect_close(sy, sin_ref, "sin_columns");
  expect_close(sdx, sdx_ref, "sin_columns grad");
  expect_close(scos, cos_ref, "sin_columns cos dy");

  // Embedding: gather, then the scatter-add backward with repeated ids, in token order.
  const int64_t T = 11, D = 37, V = 5;
  const std::vector<int64_t> ids{0, 3, 3, 4, 1, 0, 3, 2, 2, 4, 3};
  const auto table = random_vector(size_t(V * D), 902), dout = random_vector(size_t(T * D), 903);
  std::vector<float> out(size_t(T * D)), dtable(size_t(V * D), 1e30f);
  int bad = 0;
  const cuda::EmbeddingParams p{.tokens = T, .dim = D, .vocab = V, .ids = ids.data(), .table = table.data(), .out = out.data(), .out_r = D,
                                .dout = dout.data(), .dout_r = D, .dtable = dtable.data(), .bad_id = &bad};
  cuda::embedding_forward_run(p, emu_launch);
  cuda::embedding_backward_run(p, emu_launch);
  std::vector<double> out_ref(out.size()), dtable_ref(dtable.size(), 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < D; ++c) {
      out_ref[size_t(t * D + c)] = table[size_t(ids[size_t(t)] * D + c)];
      dtable_ref[size_t(ids[size_t(t)] * D + c)] += dout[size_t(t * D + c)];
    }
  EXPECT_EQ(bad, 0);
  expect_close(out, out_ref, "embedding");
  expect_close(dtable, dtable_ref, "embedding grad");
  std::vector<int64_t> wrong = ids;
  wrong[6] = V;
  cuda::embedding_forward_run(cuda::EmbeddingParams{.tokens = T, .dim = D, .vocab = V, .ids = wrong.data(), .table = table.data(),
                                                    .out = out.data(), .out_r = D, .bad_id = &bad},
                              emu_launch);
  EXPECT_EQ(bad, 7);  // 1 + the token
}

TEST(KernelEmu, SelectiveScanForwardTakesBf16AndFp16) {
  // u, delta, B, C, z stored in bf16 / fp16 (y too), arithmetic in fp32: against the float64 oracle
  // on the same rounded inputs, the error is y's own rounding: |got - ref| <= 2^-8 |ref| (bf16) or
  // 2^-11 |ref| (fp16), plus the fp32 bound; in 1 and 3 segments.
  for (const cuda::StorageType dtype : {cuda::StorageType::bf16, cuda::StorageType::f16}) {
    const bool bf = dtype == cuda::StorageType::bf16;
    ScanOracleIn in = random_scan_inputs(2, 131, 35, 8, true, bf ? 970 : 980);
    const auto to_bits = [&](std::vector<float>& v) { return round_to_half(v, bf); };  // in place; the 16-bit storage
    const auto u = to_bits(in.u), delta = to_bits(in.delta), Bm = to_bits(in.Bm), Cm = to_bits(in.Cm), z = to_bits(in.z);
    std::vector<double> y_ref, h_ref;
    scan_oracle(in, y_ref, h_ref);
    const int64_t B = in.B, L = in.L, D = in.D, N = in.N, LD = L * D, LN = L * N;
    for (int64_t segments : {1, 3}) {
      SCOPED_TRACE(::testing::Message() << (bf ? "bf16" : "fp16") << " segments " << segments);
      std::vector<uint16_t> y(size_t(B * LD), 0xffff);
      std::vector<float> h_last(size_t(B * D * N));
      cuda::SelectiveScanParams p{.batch = B, .length = L, .channels = D, .states = N, .u = u.data(), .u_b = LD, .u_l = D,
                                  .delta = delta.data(), .delta_b = LD, .delta_l = D, .Bm = Bm.data(), .B_b = LN, .B_l = N, .Cm = Cm.data(),
                                  .C_b = LN, .C_l = N, .z = z.data(), .z_b = LD, .z_l = D, .dtype = dtype, .A = in.A.data(),
                                  .Dskip = in.Dskip.data(), .delta_bias = in.bias.data(), .softplus = true, .h0 = in.h0.data(),
                                  .h_last = h_last.data(), .y = y.data(), .y_b = LD, .y_l = D};
      std::vector<float> scratch(size_t(cuda::selective_scan_scratch(p, segments)));
      cuda::selective_scan_segmented<2, 8>(p, segments, scratch.data(), emu_launch);
      const double worst = half_error_units(y, y_ref, bf, 1e-5);
      EXPECT_LE(worst, 1.0) << "worst error in units of the bound";
      expect_close(h_last, h_ref, "final state (fp32)");
    }
  }
}

TEST(KernelEmu, FlipReversesRowsAndColumnsOfStridedWindows) {
  // A 37 x 11 window inside rows of 16 floats into a window of rows of 13: every combination of row
  // and column reversal equals the CPU op (core/ops: flip) element for element, and what lies
  // outside the destination window is left alone.
  const int64_t R = 37, C = 11, ldx = 16, ldo = 13;
  const auto src = random_vector(size_t(R * ldx), 990);
  for (const bool rows : {false, true})
    for (const bool cols : {false, true}) {
      std::vector<float> got(size_t(R * ldo), -7.0f), want = got;
      cuda::flip_run({.rows = R, .cols = C, .x = src.data(), .ldx = ldx, .out = got.data(), .ldo = ldo, .flip_rows = rows, .flip_cols = cols},
                     3, emu_launch);
      ops::flip<float>({src.data(), R, C, ldx}, {want.data(), R, C, ldo}, rows, cols);
      EXPECT_EQ(got, want) << "rows " << rows << " cols " << cols;
      EXPECT_EQ(want[size_t(ldo - 1)], -7.0f);
      EXPECT_EQ(want[0], src[size_t((rows ? R - 1 : 0) * ldx + (cols ? C - 1 : 0))]);
    }
}
