// The selective scan of core/ops/ops.h in float, both paths (SIMD inference, and the plain
// recurrence that keeps chunk states for a backward) against the float64 oracle on odd shapes
// (L = 1, D not a multiple of the SIMD width, N outside the specialised sizes); chunked with the
// state carried equals one pass; threads do not change results.
#include "core/ops/ops.h"
#include "core/threads.h"
#include "tests/oracles.h"
#include "tests/testing.h"

using namespace longseq;
using namespace longseq::testing;

namespace {

struct Case {
  int64_t B, L, D, N;
  bool extras;
};

struct ScanRun {
  std::vector<float> y, state;  // (B, L, D), (B, D, N)
};

// Tokens [t0, t0 + n) of every sequence of `in`, each from its (D, N) block of `state` (updated).
ScanRun run_scan(const ScanOracleIn& in, int64_t t0, int64_t n, std::vector<float> state, bool plain) {
  const int64_t D = in.D, N = in.N;
  ScanRun r{std::vector<float>(size_t(in.B * n * D)), std::move(state)};
  std::vector<float> saved(size_t(ops::scan_chunks(n, 256) * D * N));
  for (int64_t b = 0; b < in.B; ++b) {
    const auto rows = [&](const std::vector<float>& v, int64_t cols) {
      return v.empty() ? Mat<const float>{} : mat(v.data() + (b * in.L + t0) * cols, n, cols);
    };
    ops::ScanArgs<float> a{.u = rows(in.u, D), .delta = rows(in.delta, D), .B = rows(in.Bm, N), .C = rows(in.Cm, N), .z = rows(in.z, D),
                           .A = in.A.data(), .Dskip = in.Dskip.empty() ? nullptr : in.Dskip.data(),
                           .delta_bias = in.bias.empty() ? nullptr : in.bias.data(), .softplus = in.softplus,
                           .state = r.state.data() + b * D * N};
    ops::selective_scan_forward<float>(a, mat(r.y.data() + b * n * D, n, D), plain ? saved.data() : nullptr);
  }
  return r;
}

std::vector<float> initial_state(const ScanOracleIn& in) {
  return in.h0.empty() ? std::vector<float>(size_t(in.B * in.D * in.N), 0.0f) : in.h0;
}

}  // namespace

TEST(SelectiveScan, MatchesFloat64Oracle) {
  const Case cases[] = {{1, 1, 1, 1, false}, {2, 7, 5, 3, true},    {1, 33, 37, 16, true}, {2, 100, 48, 16, true},
                        {1, 64, 16, 4, false}, {1, 50, 20, 8, true}, {1, 41, 32, 12, true}, {3, 9, 17, 16, true}};
  uint64_t seed = 100;
  for (const Case& c : cases) {
    const ScanOracleIn in = random_scan_inputs(c.B, c.L, c.D, c.N, c.extras, seed += 10);
    std::vector<double> y_ref, s_ref;
    scan_oracle(in, y_ref, s_ref);
    for (bool plain : {true, false}) {
      const ScanRun r = run_scan(in, 0, c.L, initial_state(in), plain);
      const auto ey = compare(r.y, y_ref), es = compare(r.state, s_ref);
      SCOPED_TRACE(::testing::Message() << (plain ? "plain" : "simd") << " B" << c.B << " L" << c.L << " D" << c.D << " N" << c.N
                                        << " y max_abs " << ey.max_abs << " rel_l2 " << ey.rel_l2);
      EXPECT_LE(ey.max_abs, 2e-6 * std::max(1.0, ey.max_ref));
      EXPECT_LE(ey.rel_l2, 1e-6);
      EXPECT_LE(es.max_abs, 2e-6 * std::max(1.0, es.max_ref));
    }
  }
}

TEST(SelectiveScan, ChunkedEqualsWhole) {
  const ScanOracleIn in = random_scan_inputs(2, 257, 40, 16, true, 7);
  for (bool plain : {true, false}) {
    const ScanRun whole = run_scan(in, 0, in.L, initial_state(in), plain);
    for (int64_t chunk : {1, 2, 7, 64, 100, 256}) {
      std::vector<float> state = initial_state(in), y(size_t(in.B * in.L * in.D));
      for (int64_t t0 = 0; t0 < in.L; t0 += chunk) {
        const int64_t n = std::min(chunk, in.L - t0);
        const ScanRun part = run_scan(in, t0, n, state, plain);
        state = part.state;
        for (int64_t b = 0; b < in.B; ++b)
          std::copy_n(part.y.begin() + b * n * in.D, n * in.D, y.begin() + (b * in.L + t0) * in.D);
      }
      EXPECT_EQ(y, whole.y) << "chunk " << chunk << (plain ? " plain" : " simd");
      EXPECT_EQ(state, whole.state) << "chunk " << chunk;
    }
  }
}

TEST(SelectiveScan, SameResultForAnyThreadCount) {
  const ScanOracleIn in = random_scan_inputs(2, 300, 96, 16, true, 11);
  for (bool plain : {true, false}) {
    set_num_threads(1);
    const ScanRun a = run_scan(in, 0, in.L, initial_state(in), plain);
    set_num_threads(2);
    const ScanRun b = run_scan(in, 0, in.L, initial_state(in), plain);
    set_num_threads(0);
    EXPECT_EQ(a.y, b.y);
    EXPECT_EQ(a.state, b.state);
  }
}
