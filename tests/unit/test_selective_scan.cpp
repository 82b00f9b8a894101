// Selective scan: both paths against the float64 oracle on odd shapes (L = 1, D not a multiple of
// the SIMD width, N outside the specialised sizes); chunked with carried state equals one pass;
// threads do not change results.
#include "core/ops/selective_scan.h"
#include "core/threads.h"
#include "tests/oracles.h"
#include "tests/testing.h"

using namespace longseq;
using namespace longseq::testing;

namespace {

struct Case {
  int64_t B, L, D, N;
  bool z, dskip, bias, h0;
};

ScanOracleIn make_inputs(const Case& c, uint64_t seed) {
  ScanOracleIn in{c.B, c.L, c.D, c.N};
  const size_t bld = size_t(c.B * c.L * c.D), bln = size_t(c.B * c.L * c.N);
  in.u = random_vector(bld, seed + 1);
  in.delta = random_vector(bld, seed + 2, -4.0f, 1.0f);  // softplus(-4..1): dt in 0.02..1.3
  in.A = random_vector(size_t(c.D * c.N), seed + 3, -2.0f, -0.05f);
  in.Bm = random_vector(bln, seed + 4);
  in.Cm = random_vector(bln, seed + 5);
  if (c.dskip) in.Dskip = random_vector(size_t(c.D), seed + 6);
  if (c.z) in.z = random_vector(bld, seed + 7, -3.0f, 3.0f);
  if (c.bias) in.bias = random_vector(size_t(c.D), seed + 8, -1.0f, 1.0f);
  if (c.h0) in.h0 = random_vector(size_t(c.B * c.D * c.N), seed + 9);
  return in;
}

struct ScanRun {
  Tensor y, state;
};

// Runs tokens [t0, t0 + n) of `in` from `state` (or zeros).
ScanRun run_scan(const ScanOracleIn& in, int64_t t0, int64_t n, const Tensor& state, bool ref) {
  auto btd = [&](const std::vector<float>& v, int64_t last) {
    return Tensor::from_vector(v, {in.B, in.L, last}).slice(1, t0, n);
  };
  ScanRun r{Tensor::empty({in.B, n, in.D}), state.defined() ? state : Tensor::zeros({in.B, in.D, in.N})};
  SelectiveScanArgs a{.u = btd(in.u, in.D),
                      .delta = btd(in.delta, in.D),
                      .A = Tensor::from_vector(in.A, {in.D, in.N}),
                      .B = btd(in.Bm, in.N),
                      .C = btd(in.Cm, in.N),
                      .Dskip = in.Dskip.empty() ? Tensor{} : Tensor::from_vector(in.Dskip, {in.D}),
                      .z = in.z.empty() ? Tensor{} : btd(in.z, in.D),
                      .delta_bias = in.bias.empty() ? Tensor{} : Tensor::from_vector(in.bias, {in.D}),
                      .delta_softplus = in.softplus,
                      .y = r.y,
                      .state = r.state,
                      .use_initial_state = state.defined()};
  ref ? selective_scan_ref(a) : selective_scan(a);
  return r;
}

Tensor initial_state(const ScanOracleIn& in) {
  return in.h0.empty() ? Tensor{} : Tensor::from_vector(in.h0, {in.B, in.D, in.N});
}

}  // namespace

TEST(SelectiveScan, MatchesFloat64Oracle) {
  const Case cases[] = {{1, 1, 1, 1, false, false, false, false}, {2, 7, 5, 3, true, true, true, true},
                        {1, 33, 37, 16, true, true, true, false}, {2, 100, 48, 16, true, true, true, true},
                        {1, 64, 16, 4, false, true, false, false}, {1, 50, 20, 8, true, false, true, true},
                        {1, 41, 32, 12, true, true, true, true},  {3, 9, 17, 16, false, false, true, true}};
  uint64_t seed = 100;
  for (const Case& c : cases) {
    const ScanOracleIn in = make_inputs(c, seed += 10);
    std::vector<double> y_ref, s_ref;
    scan_oracle(in, y_ref, s_ref);
    for (bool ref : {true, false}) {
      const ScanRun r = run_scan(in, 0, c.L, initial_state(in), ref);
      const auto ey = compare(r.y.to_vector(), y_ref), es = compare(r.state.to_vector(), s_ref);
      SCOPED_TRACE(::testing::Message() << (ref ? "ref" : "fast") << " B" << c.B << " L" << c.L << " D" << c.D << " N" << c.N
                                        << " y max_abs " << ey.max_abs << " rel_l2 " << ey.rel_l2);
      EXPECT_LE(ey.max_abs, 2e-6 * std::max(1.0, ey.max_ref));
      EXPECT_LE(ey.rel_l2, 1e-6);
      EXPECT_LE(es.max_abs, 2e-6 * std::max(1.0, es.max_ref));
    }
  }
}

TEST(SelectiveScan, ChunkedEqualsWhole) {
  const Case c{2, 257, 40, 16, true, true, true, true};
  const ScanOracleIn in = make_inputs(c, 7);
  for (bool ref : {true, false}) {
    const ScanRun whole = run_scan(in, 0, c.L, initial_state(in), ref);
    for (int64_t chunk : {1, 2, 7, 64, 100, 256}) {
      Tensor state = initial_state(in).clone();
      std::vector<float> y(size_t(c.B * c.L * c.D));
      for (int64_t t0 = 0; t0 < c.L; t0 += chunk) {
        const int64_t n = std::min(chunk, c.L - t0);
        const ScanRun part = run_scan(in, t0, n, state, ref);
        state = part.state;
        for (int64_t b = 0; b < c.B; ++b)
          for (int64_t t = 0; t < n; ++t)
            for (int64_t d = 0; d < c.D; ++d) y[size_t((b * c.L + t0 + t) * c.D + d)] = part.y.item({b, t, d});
      }
      EXPECT_EQ(y, whole.y.to_vector()) << "chunk " << chunk << (ref ? " ref" : " fast");
      EXPECT_EQ(state.to_vector(), whole.state.to_vector()) << "chunk " << chunk;
    }
  }
}

TEST(SelectiveScan, SameResultForAnyThreadCount) {
  const ScanOracleIn in = make_inputs({2, 300, 96, 16, true, true, true, false}, 11);
  set_num_threads(1);
  const ScanRun a = run_scan(in, 0, in.L, {}, false);
  set_num_threads(2);
  const ScanRun b = run_scan(in, 0, in.L, {}, false);
  set_num_threads(0);
  EXPECT_EQ(a.y.to_vector(), b.y.to_vector());
  EXPECT_EQ(a.state.to_vector(), b.state.to_vector());
}

TEST(SelectiveScan, RejectsBadShapes) {
  const ScanOracleIn in = make_inputs({1, 5, 8, 4, false, false, false, false}, 1);
  SelectiveScanArgs a{.u = Tensor::from_vector(in.u, {1, 5, 8}),
                      .delta = Tensor::from_vector(in.delta, {1, 5, 8}),
                      .A = Tensor::from_vector(in.A, {8, 4}),
                      .B = Tensor::zeros({1, 5, 3}),
                      .C = Tensor::zeros({1, 5, 4}),
                      .y = Tensor::empty({1, 5, 8})};
  EXPECT_THROW(selective_scan(a), Error);
  a.B = Tensor::zeros({1, 5, 4});
  EXPECT_NO_THROW(selective_scan(a));
  a.state = Tensor::zeros({1, 8, 5});
  EXPECT_THROW(selective_scan(a), Error);
}
