// The kernels StripedHyena 2 adds (kernels/attention.cuh, kernels/modal.cuh), their CUDA source run
// on the CPU through kernels/emu/cuda_emu.h: causal attention forward against the naive float64
// oracle (odd lengths, L = 1, lengths off the 16-row tiles, grouped-query heads, head widths up to
// the kernel's 128 and off its 8 column slices, queries at an offset into a KV cache, a batch,
// bf16/fp16 storage; sliding windows against the float64 op), its backward against the float64 CPU
// op (itself checked against finite differences in test_attention.cpp), rotary positions, and the
// modal recurrence, filter and filter backward against their definitions, including a state
// carried across calls.
#include "kernels/emu/cuda_emu.h"
#include "core/ops/ops.h"
#include "kernels/attention.cuh"
#include "kernels/modal.cuh"
#include "tests/oracles.h"
#include "tests/testing.h"

#include <cmath>

using namespace longseq;
using namespace longseq::testing;

namespace {

struct AttnCase {
  int64_t B, Lq, H, Hkv, hd, offset, window = 0;
  int64_t S() const { return offset + Lq; }
};

// Copies of q, k, v rounded to the storage type (what the kernel reads), and the raw storage.
template <class E>
std::vector<E> to_storage(const std::vector<float>& x) {
  std::vector<E> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) cuda::store_f32(&out[i], x[i]);
  return out;
}
template <class E>
std::vector<float> from_storage(const std::vector<E>& x) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = cuda::to_f32(x[i]);
  return out;
}

template <class E>
void check_attention_forward(const AttnCase& c, cuda::StorageType dtype, double tol, uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << "B" << c.B << " Lq " << c.Lq << " H " << c.H << "/" << c.Hkv << " hd " << c.hd << " offset " << c.offset
                                    << " window " << c.window << " dtype " << int(dtype));
  const int64_t S = c.S(), dq = c.H * c.hd, dkv = c.Hkv * c.hd;
  const auto q = from_storage(to_storage<E>(random_vector(size_t(c.B * c.Lq * dq), seed, -2, 2)));
  const auto k = from_storage(to_storage<E>(random_vector(size_t(c.B * S * dkv), seed + 1, -2, 2)));
  const auto v = from_storage(to_storage<E>(random_vector(size_t(c.B * S * dkv), seed + 2)));
  const auto qs = to_storage<E>(q), ks = to_storage<E>(k), vs = to_storage<E>(v);
  std::vector<E> y(q.size());
  std::vector<float> lse(size_t(c.B * c.H * c.Lq), 1e30f);
  const cuda::AttentionParams p{.batch = c.B, .queries = c.Lq, .keys = S, .heads = c.H, .kv_heads = c.Hkv, .head_dim = c.hd, .offset = c.offset,
                                .window = c.window, .dtype = dtype, .q = qs.data(), .q_b = c.Lq * dq, .q_l = dq, .k = ks.data(), .k_b = S * dkv, .k_l = dkv,
                                .v = vs.data(), .v_b = S * dkv, .v_l = dkv, .y = y.data(), .y_b = c.Lq * dq, .y_l = dq, .lse = lse.data()};
  cuda::attention_forward_run(p, emu::launcher);
  std::vector<double> want_y, want_lse;
  for (int64_t b = 0; b < c.B; ++b) {
    const auto slice = [&](const std::vector<float>& x, int64_t rows, int64_t cols) {
      return std::vector<float>(x.begin() + b * rows * cols, x.begin() + (b + 1) * rows * cols);
    };
    std::vector<double> yb, lb;
    if (c.window == 0) {
      attention_oracle(slice(q, c.Lq, dq), slice(k, S, dkv), slice(v, S, dkv), c.Lq, S, c.H, c.Hkv, c.hd, c.offset, yb, lb);
    } else {  // the float64 CPU op, which test_attention.cpp checks against the oracle with windows
      const auto qb = slice(q, c.Lq, dq), kb = slice(k, S, dkv), vb = slice(v, S, dkv);
      const std::vector<double> q64(qb.begin(), qb.end()), k64(kb.begin(), kb.end()), v64(vb.begin(), vb.end());
      yb.assign(q64.size(), 0.0), lb.assign(size_t(c.H * c.Lq), 0.0);
      ops::causal_attention_forward<double>({.q = mat<const double>(q64.data(), c.Lq, dq), .k = mat<const double>(k64.data(), S, dkv),
                                             .v = mat<const double>(v64.data(), S, dkv), .heads = c.H, .kv_heads = c.Hkv, .head_dim = c.hd,
                                             .offset = c.offset, .window = c.window},
                                            mat(yb.data(), c.Lq, dq), lb.data());
    }
    want_y.insert(want_y.end(), yb.begin(), yb.end());
    want_lse.insert(want_lse.end(), lb.begin(), lb.end());
  }
  expect_within(from_storage(y), want_y, tol, "y");
  expect_within(lse, want_lse, 1e-5, "lse");
}

}  // namespace

TEST(KernelEmu, AttentionForwardMatchesFloat64Oracle) {
  for (const AttnCase& c : {AttnCase{1, 1, 2, 2, 8, 0}, AttnCase{1, 37, 4, 2, 16, 0}, AttnCase{2, 33, 3, 1, 128, 0}, AttnCase{1, 16, 2, 2, 20, 0},
                            AttnCase{1, 17, 6, 3, 100, 0}, AttnCase{1, 5, 4, 4, 24, 40}, AttnCase{2, 1, 2, 1, 16, 49},
                            AttnCase{1, 45, 2, 1, 16, 0, 20}, AttnCase{1, 9, 2, 2, 8, 30, 7}, AttnCase{1, 40, 2, 2, 8, 0, 1}})
    check_attention_forward<float>(c, cuda::StorageType::f32, 1e-5, 700 + uint64_t(c.Lq));
  // Half storage: the oracle sees the same rounded inputs; y is rounded once on the way out.
  check_attention_forward<cuda::Bf16>(AttnCase{1, 21, 4, 2, 32, 3}, cuda::StorageType::bf16, 8e-3, 720);
  check_attention_forward<cuda::F16>(AttnCase{1, 21, 4, 2, 32, 3}, cuda::StorageType::f16, 1e-3, 730);
}

TEST(KernelEmu, AttentionBackwardMatchesTheFloat64Op) {
  for (const AttnCase& c : {AttnCase{1, 1, 2, 2, 8, 0}, AttnCase{1, 37, 4, 2, 16, 0}, AttnCase{1, 19, 3, 1, 128, 0}, AttnCase{1, 18, 6, 3, 12, 0},
                            AttnCase{1, 7, 2, 1, 16, 12}, AttnCase{2, 17, 2, 2, 8, 0}, AttnCase{1, 40, 2, 1, 8, 0, 18},
                            AttnCase{1, 9, 2, 2, 8, 30, 7}}) {
    SCOPED_TRACE(::testing::Message() << "B" << c.B << " Lq " << c.Lq << " H " << c.H << "/" << c.Hkv << " hd " << c.hd << " offset " << c.offset
                                      << " window " << c.window);
    const int64_t S = c.S(), dq = c.H * c.hd, dkv = c.Hkv * c.hd;
    const auto q = random_vector(size_t(c.B * c.Lq * dq), 800, -2, 2), k = random_vector(size_t(c.B * S * dkv), 801, -2, 2),
               v = random_vector(size_t(c.B * S * dkv), 802), dy = random_vector(q.size(), 803);
    std::vector<float> y(q.size()), lse(size_t(c.B * c.H * c.Lq));
    cuda::AttentionParams p{.batch = c.B, .queries = c.Lq, .keys = S, .heads = c.H, .kv_heads = c.Hkv, .head_dim = c.hd, .offset = c.offset,
                            .window = c.window, .q = q.data(), .q_b = c.Lq * dq, .q_l = dq, .k = k.data(), .k_b = S * dkv, .k_l = dkv, .v = v.data(),
                            .v_b = S * dkv, .v_l = dkv, .y = y.data(), .y_b = c.Lq * dq, .y_l = dq, .lse = lse.data()};
    cuda::attention_forward_run(p, emu::launcher);
    constexpr float kUnwritten = 1e30f;
    std::vector<float> dqv(q.size(), kUnwritten), dkv_(k.size(), kUnwritten), dvv(v.size(), kUnwritten), rowdot(size_t(cuda::attention_bwd_scratch(p)));
    cuda::attention_backward_run({.fwd = p, .dy = dy.data(), .dy_b = c.Lq * dq, .dy_l = dq, .dq = dqv.data(), .dq_b = c.Lq * dq, .dq_l = dq,
                                  .dk = dkv_.data(), .dk_b = S * dkv, .dk_l = dkv, .dv = dvv.data(), .dv_b = S * dkv, .dv_l = dkv},
                                 rowdot.data(), emu::launcher);
    std::vector<double> want_dq, want_dk, want_dv;
    for (int64_t b = 0; b < c.B; ++b) {  // the double op from double inputs (its own forward's y and lse)
      const auto d = [&](const std::vector<float>& x, int64_t rows, int64_t cols) {
        return std::vector<double>(x.begin() + b * rows * cols, x.begin() + (b + 1) * rows * cols);
      };
      const auto q64 = d(q, c.Lq, dq), k64 = d(k, S, dkv), v64 = d(v, S, dkv), dy64 = d(dy, c.Lq, dq);
      std::vector<double> y64(q64.size()), lse64(size_t(c.H * c.Lq)), gq(q64.size()), gk(k64.size()), gv(v64.size());
      const ops::AttentionArgs<double> a{.q = mat<const double>(q64.data(), c.Lq, dq), .k = mat<const double>(k64.data(), S, dkv),
                                         .v = mat<const double>(v64.data(), S, dkv), .heads = c.H, .kv_heads = c.Hkv, .head_dim = c.hd,
                                         .offset = c.offset, .window = c.window};
      ops::causal_attention_forward(a, mat(y64.data(), c.Lq, dq), lse64.data());
      ops::causal_attention_backward(a, mat<const double>(y64.data(), c.Lq, dq), lse64.data(), mat<const double>(dy64.data(), c.Lq, dq),
                                     mat(gq.data(), c.Lq, dq), mat(gk.data(), S, dkv), mat(gv.data(), S, dkv));
      want_dq.insert(want_dq.end(), gq.begin(), gq.end());
      want_dk.insert(want_dk.end(), gk.begin(), gk.end());
      want_dv.insert(want_dv.end(), gv.begin(), gv.end());
    }
    expect_within(dqv, want_dq, 1e-5, "dq");
    expect_within(dkv_, want_dk, 1e-5, "dk");
    expect_within(dvv, want_dv, 1e-5, "dv");
  }
}

TEST(KernelEmu, RotaryMatchesTheFloat64Op) {
  // Interpolated positions far into a sequence (angles computed in double on both sides), the
  // inverse turn undoing the forward, a strided slice of a wider row.
  const int64_t rows = 9, heads = 3, hd = 16, ld = heads * hd + 5;
  const auto x = random_vector(size_t(rows * ld), 900), inv = random_vector(size_t(hd / 2), 901, 0.0f, 1.0f);
  for (const int64_t offset : {int64_t(0), int64_t(1000003)}) {
    std::vector<float> got = x;
    std::vector<double> want(x.begin(), x.end()), inv64(inv.begin(), inv.end());
    cuda::rotary_run({.rows = rows, .heads = heads, .head_dim = hd, .x = got.data(), .x_l = ld, .inv_freq = inv.data(), .offset = offset,
                      .pos_scale = 1.0 / 128},
                     emu::launcher);
    ops::rotary(Mat<double>{want.data(), rows, heads * hd, ld}, heads, hd, inv64.data(), offset, 1.0 / 128, false);
    expect_within(got, want, 1e-6, "rotary");
    cuda::rotary_run({.rows = rows, .heads = heads, .head_dim = hd, .x = got.data(), .x_l = ld, .inv_freq = inv.data(), .offset = offset,
                      .pos_scale = 1.0 / 128, .inverse = true},
                     emu::launcher);
    expect_within(got, std::vector<double>(x.begin(), x.end()), 1e-6, "rotary then its inverse");
  }
}

namespace {

struct ModalCase {
  int64_t L, D, N;
  bool gate, skip;
};

// Log-poles with time constants from 2 to 2,000 tokens (as the family initialises them).
std::vector<float> test_log_poles(int64_t n, uint64_t seed) {
  auto x = random_vector(size_t(n), seed, float(std::log(5e-4)), float(std::log(0.5)));
  for (float& v : x) v = -std::exp(v);
  return x;
}

}  // namespace

TEST(KernelEmu, ModalScanMatchesFloat64OracleAndStreams) {
  // N dividing the block (16, 128: one channel per block) or not (5, 48: idle threads), the last
  // block partly empty, L = 1, lengths off the 16-token chunk; then the same sequence in two calls
  // with the state carried equals one call.
  for (const ModalCase& c : {ModalCase{1, 3, 16, true, true}, ModalCase{37, 11, 16, true, false}, ModalCase{20, 6, 5, false, true},
                             ModalCase{33, 3, 48, true, true}, ModalCase{17, 2, 128, false, false}}) {
    SCOPED_TRACE(::testing::Message() << "L " << c.L << " D " << c.D << " N " << c.N);
    const int64_t L = c.L, D = c.D, N = c.N;
    const auto u = random_vector(size_t(L * D), 1000), lp = test_log_poles(D * N, 1001), R = random_vector(size_t(D * N), 1002);
    const auto gate = c.gate ? random_vector(size_t(L * D), 1003) : std::vector<float>{};
    const auto skip = c.skip ? random_vector(size_t(D), 1004) : std::vector<float>{};
    const auto S0 = random_vector(size_t(D * N), 1005);
    std::vector<double> want_y, want_state;
    modal_oracle(u, gate, lp, R, skip, S0, L, D, N, want_y, want_state);
    const auto run = [&](int64_t t0, int64_t n, std::vector<float>& state, std::vector<float>& y) {
      cuda::modal_scan_run({.batch = 1, .length = n, .channels = D, .states = N, .u = u.data() + t0 * D, .u_l = D,
                            .gate = c.gate ? gate.data() + t0 * D : nullptr, .gate_l = D, .log_poles = lp.data(), .residues = R.data(),
                            .Dskip = c.skip ? skip.data() : nullptr, .state = state.data(), .y = y.data() + t0 * D, .y_l = D},
                           emu::launcher);
    };
    std::vector<float> y(size_t(L * D), 1e30f), state = S0;
    run(0, L, state, y);
    expect_within(y, want_y, 2e-6, "y");
    expect_within(state, want_state, 2e-6, "state");
    std::vector<float> y2(y.size(), 1e30f), state2 = S0;
    const int64_t cut = L / 2;
    run(0, cut, state2, y2);
    run(cut, L - cut, state2, y2);
    expect_within(y2, want_y, 2e-6, "y in two calls");
    expect_within(state2, want_state, 2e-6, "state after two calls");
  }
}

TEST(KernelEmu, ModalFilterAndItsBackwardMatchFloat64) {
  for (const ModalCase& c : {ModalCase{1, 3, 16, false, false}, ModalCase{300, 5, 7, false, false}}) {
    SCOPED_TRACE(::testing::Message() << "L " << c.L << " D " << c.D << " N " << c.N);
    const int64_t L = c.L, D = c.D, N = c.N, ld = D + 2;
    const auto lp = test_log_poles(D * N, 1100), R = random_vector(size_t(D * N), 1101), dk = random_vector(size_t(L * ld), 1102);
    std::vector<float> k(size_t(L * ld), 1e30f), dlp(size_t(D * N), 1e30f), dR(size_t(D * N), 1e30f);
    cuda::ModalFilterParams p{.length = L, .channels = D, .states = N, .log_poles = lp.data(), .residues = R.data(), .k = k.data(),
                              .dk = dk.data(), .k_l = ld, .dlog_poles = dlp.data(), .dresidues = dR.data()};
    cuda::modal_filter_run(p, false, emu::launcher);
    cuda::modal_filter_run(p, true, emu::launcher);
    std::vector<float> got_k;
    std::vector<double> want_k, want_dlp(size_t(D * N)), want_dR(size_t(D * N));
    for (int64_t t = 0; t < L; ++t)
      for (int64_t ch = 0; ch < D; ++ch) {
        double s = 0;
        for (int64_t n = 0; n < N; ++n) {
          const size_t i = size_t(ch * N + n);
          const double pw = std::exp(double(lp[i]) * double(t)), g = double(dk[size_t(t * ld + ch)]);
          s += double(R[i]) * pw;
          want_dR[i] += g * pw;
          want_dlp[i] += g * double(R[i]) * double(t) * pw;
        }
        want_k.push_back(s);
        got_k.push_back(k[size_t(t * ld + ch)]);
      }
    expect_within(got_k, want_k, 1e-6, "k");
    expect_within(dR, want_dR, 1e-6, "dresidues");
    expect_within(dlp, want_dlp, 1e-6, "dlog_poles");
  }
}
