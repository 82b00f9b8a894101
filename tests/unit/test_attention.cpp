// Causal attention and rotary positions (core/ops/attention.cpp) against a deliberately naive float64
// oracle (the whole score matrix, a two-pass softmax): odd lengths, L = 1, lengths off the key tile
// (64) and query block (48), grouped-query heads, queries at an offset into a KV cache (decode and
// chunked prefill equal the whole pass, bit for bit), thread counts; rotary against its formula,
// its inverse, interpolated positions, and the relative-position property.
#include "core/ops/ops.h"
#include "core/threads.h"
#include "tests/oracles.h"
#include "tests/testing.h"

#include <cstring>

#include <cmath>

using namespace longseq;
using namespace longseq::testing;

namespace {

struct Case {
  int64_t L, H, Hkv, hd;
};

}  // namespace

TEST(Attention, MatchesTheFloat64Oracle) {
  for (const Case c : {Case{1, 2, 2, 8}, Case{37, 4, 4, 16}, Case{64, 2, 1, 16}, Case{65, 6, 2, 8}, Case{130, 3, 3, 32}, Case{97, 4, 2, 6}}) {
    const auto q = random_vector(size_t(c.L * c.H * c.hd), 1, -2, 2), k = random_vector(size_t(c.L * c.Hkv * c.hd), 2, -2, 2),
               v = random_vector(size_t(c.L * c.Hkv * c.hd), 3);
    std::vector<float> y(q.size()), lse(size_t(c.H * c.L));
    const ops::AttentionArgs<float> a{.q = mat(q.data(), c.L, c.H * c.hd), .k = mat(k.data(), c.L, c.Hkv * c.hd),
                                      .v = mat(v.data(), c.L, c.Hkv * c.hd), .heads = c.H, .kv_heads = c.Hkv, .head_dim = c.hd};
    ops::causal_attention_forward(a, mat(y.data(), c.L, c.H * c.hd), lse.data());
    std::vector<double> want_y, want_lse;
    attention_oracle(q, k, v, c.L, c.L, c.H, c.Hkv, c.hd, 0, want_y, want_lse);
    const ErrorStats e = compare(y, want_y), el = compare(lse, want_lse);
    EXPECT_LE(e.max_abs, 2e-6 * std::max(1.0, e.max_ref)) << "L " << c.L << " H " << c.H << "/" << c.Hkv;
    EXPECT_LE(el.max_abs, 2e-6 * std::max(1.0, el.max_ref)) << "L " << c.L;
    // double instantiation: to rounding
    std::vector<double> qd(q.begin(), q.end()), kd(k.begin(), k.end()), vd(v.begin(), v.end()), yd(q.size());
    ops::causal_attention_forward<double>({.q = mat<const double>(qd.data(), c.L, c.H * c.hd), .k = mat<const double>(kd.data(), c.L, c.Hkv * c.hd),
                                           .v = mat<const double>(vd.data(), c.L, c.Hkv * c.hd), .heads = c.H, .kv_heads = c.Hkv, .head_dim = c.hd},
                                          mat(yd.data(), c.L, c.H * c.hd), nullptr);
    for (size_t n = 0; n < yd.size(); ++n) EXPECT_NEAR(yd[n], want_y[n], 1e-12) << n;
  }
}

TEST(Attention, CachedQueriesEqualTheWholePassAndThreadsDoNotMatter) {
  // Pieces of 37 and 64 queries run the packed (GEMM microkernel) schedule and single decode steps
  // the row-at-a-time one: both must give the whole pass's bits, at head widths on and off the
  // kernel's slivers, with and without a sliding window.
  const int64_t L = 150, H = 4, Hkv = 2;
  for (const int64_t hd : {16, 20, 128})
    for (const int64_t window : {0, 45}) {
      SCOPED_TRACE(::testing::Message() << "hd " << hd << " window " << window);
      const auto q = random_vector(size_t(L * H * hd), 4, -2, 2), k = random_vector(size_t(L * Hkv * hd), 5, -2, 2),
                 v = random_vector(size_t(L * Hkv * hd), 6);
      const auto run = [&](int64_t i0, int64_t n) {  // queries [i0, i0 + n) against keys [0, i0 + n)
        std::vector<float> y(size_t(n * H * hd));
        ops::causal_attention_forward<float>({.q = mat(q.data() + i0 * H * hd, n, H * hd), .k = mat(k.data(), i0 + n, Hkv * hd),
                                              .v = mat(v.data(), i0 + n, Hkv * hd), .heads = H, .kv_heads = Hkv, .head_dim = hd,
                                              .offset = i0, .window = window},
                                             mat(y.data(), n, H * hd), nullptr);
        return y;
      };
      const auto whole = run(0, L);
      std::vector<float> pieces;
      for (int64_t i0 = 0, n = 37; i0 < L; i0 += n, n = n == 37 ? 64 : 1) {  // chunked prefill, then single decode steps
        n = std::min(n, L - i0);
        const auto part = run(i0, n);
        pieces.insert(pieces.end(), part.begin(), part.end());
      }
      EXPECT_EQ(std::memcmp(pieces.data(), whole.data(), whole.size() * 4), 0);
      const int before = num_threads();
      set_num_threads(1);
      EXPECT_EQ(run(0, L), whole);
      set_num_threads(before);
    }
  const int64_t hd = 16;
  const auto q = random_vector(size_t(10 * H * hd), 4), k = random_vector(size_t(5 * Hkv * hd), 5);
  std::vector<float> y(size_t(10 * H * hd));
  EXPECT_THROW(ops::causal_attention_forward<float>({.q = mat(q.data(), 10, H * hd), .k = mat(k.data(), 5, Hkv * hd), .v = mat(k.data(), 5, Hkv * hd),
                                                     .heads = H, .kv_heads = Hkv, .head_dim = hd},
                                                    mat(y.data(), 10, H * hd), nullptr),
               Error);
}

TEST(Rotary, TurnsHalvesByPositionTimesFrequency) {
  const int64_t L = 23, H = 3, hd = 8, half = hd / 2;
  std::vector<float> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) inv_freq[size_t(i)] = float(1.0 / std::pow(10000.0, double(2 * i) / double(hd)));
  const auto x0 = random_vector(size_t(L * H * hd), 8);
  for (double scale : {1.0, 1.0 / 128}) {
    std::vector<float> x = x0;
    ops::rotary(mat(x.data(), L, H * hd), H, hd, inv_freq.data(), 5, scale, false);
    for (int64_t t = 0; t < L; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < half; ++i) {
          const double a = double(5 + t) * scale * double(inv_freq[size_t(i)]);
          const size_t p = size_t(t * H * hd + h * hd + i);
          EXPECT_NEAR(x[p], x0[p] * std::cos(a) - x0[p + size_t(half)] * std::sin(a), 1e-6);
          EXPECT_NEAR(x[p + size_t(half)], x0[p] * std::sin(a) + x0[p + size_t(half)] * std::cos(a), 1e-6);
        }
    ops::rotary(mat(x.data(), L, H * hd), H, hd, inv_freq.data(), 5, scale, true);
    EXPECT_LE(compare(x, std::vector<double>(x0.begin(), x0.end())).max_abs, 1e-6);
  }
  // q . k after rotary depends on the distance of their positions only.
  std::vector<float> q = random_vector(size_t(hd), 9), k = random_vector(size_t(hd), 10);
  const auto dot_at = [&](int64_t pq, int64_t pk) {
    std::vector<float> a = q, b = k;
    ops::rotary(mat(a.data(), 1, hd), 1, hd, inv_freq.data(), pq, 1.0, false);
    ops::rotary(mat(b.data(), 1, hd), 1, hd, inv_freq.data(), pk, 1.0, false);
    double d = 0;
    for (int64_t e = 0; e < hd; ++e) d += double(a[size_t(e)]) * double(b[size_t(e)]);
    return d;
  };
  EXPECT_NEAR(dot_at(7, 3), dot_at(107, 103), 1e-5);
  EXPECT_GT(std::abs(dot_at(7, 3) - dot_at(7, 6)), 1e-3);
}

TEST(Attention, BackwardMatchesFiniteDifferences) {
  // sum(dy * y) differentiated by central differences in double, for every element of q, k and v:
  // grouped heads, queries at an offset (a cache of earlier keys that receive gradients too), L = 1.
  // A sliding window (3 keys) too: keys out of a query's window get no gradient from it.
  struct Shape {
    int64_t Lq, S, H, Hkv, hd, window = 0;
  };
  for (const Shape c : {Shape{1, 1, 2, 2, 4}, Shape{9, 9, 4, 2, 6}, Shape{5, 23, 3, 1, 4}, Shape{9, 12, 2, 1, 4, 3}}) {
    const int64_t offset = c.S - c.Lq;
    const auto f = [](const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); };
    std::vector<double> q = f(random_vector(size_t(c.Lq * c.H * c.hd), 11, -1.5, 1.5)), k = f(random_vector(size_t(c.S * c.Hkv * c.hd), 12, -1.5, 1.5)),
                        v = f(random_vector(size_t(c.S * c.Hkv * c.hd), 13)), dy = f(random_vector(size_t(c.Lq * c.H * c.hd), 14));
    const auto args = [&] {
      return ops::AttentionArgs<double>{.q = mat<const double>(q.data(), c.Lq, c.H * c.hd), .k = mat<const double>(k.data(), c.S, c.Hkv * c.hd),
                                        .v = mat<const double>(v.data(), c.S, c.Hkv * c.hd), .heads = c.H, .kv_heads = c.Hkv, .head_dim = c.hd,
                                        .offset = offset, .window = c.window};
    };
    const auto loss = [&] {
      std::vector<double> y(q.size());
      ops::causal_attention_forward<double>(args(), mat(y.data(), c.Lq, c.H * c.hd), nullptr);
      double s = 0;
      for (size_t n = 0; n < y.size(); ++n) s += y[n] * dy[n];
      return s;
    };
    std::vector<double> y(q.size()), lse(size_t(c.H * c.Lq)), dq(q.size()), dk(k.size()), dv(v.size());
    ops::causal_attention_forward<double>(args(), mat(y.data(), c.Lq, c.H * c.hd), lse.data());
    ops::causal_attention_backward<double>(args(), mat<const double>(y.data(), c.Lq, c.H * c.hd), lse.data(),
                                           mat<const double>(dy.data(), c.Lq, c.H * c.hd), mat(dq.data(), c.Lq, c.H * c.hd),
                                           mat(dk.data(), c.S, c.Hkv * c.hd), mat(dv.data(), c.S, c.Hkv * c.hd));
    for (auto [x, g, name] : {std::tuple{&q, &dq, "q"}, std::tuple{&k, &dk, "k"}, std::tuple{&v, &dv, "v"}})
      for (size_t n = 0; n < x->size(); ++n) {
        const double keep = (*x)[n], eps = 1e-6;
        (*x)[n] = keep + eps;
        const double up = loss();
        (*x)[n] = keep - eps;
        const double down = loss();
        (*x)[n] = keep;
        EXPECT_NEAR((*g)[n], (up - down) / (2 * eps), 1e-7) << name << " " << n << " Lq " << c.Lq;
      }
  }
}

TEST(Attention, SlidingWindowMatchesTheOracleAndStreams) {
  // A query sees only its last `window` keys: against the oracle with the window (1: each query its
  // own key; a window past the length: exact attention, the same bits), and queries at an offset
  // into a cache (the layer's streaming) equal the whole pass.
  const int64_t L = 70, H = 4, Hkv = 2, hd = 8;
  const auto q = random_vector(size_t(L * H * hd), 21, -2, 2), k = random_vector(size_t(L * Hkv * hd), 22, -2, 2),
             v = random_vector(size_t(L * Hkv * hd), 23);
  const auto run = [&](int64_t window, int64_t r0, int64_t n) {
    std::vector<float> y(size_t(n * H * hd));
    const ops::AttentionArgs<float> a{.q = mat(q.data() + r0 * H * hd, n, H * hd), .k = mat(k.data(), r0 + n, Hkv * hd),
                                      .v = mat(v.data(), r0 + n, Hkv * hd), .heads = H, .kv_heads = Hkv, .head_dim = hd, .offset = r0,
                                      .window = window};
    ops::causal_attention_forward<float>(a, mat(y.data(), n, H * hd), nullptr);
    return y;
  };
  for (const int64_t window : {int64_t(1), int64_t(5), int64_t(33)}) {
    std::vector<double> want(size_t(L * H * hd), 0.0), lse;
    for (int64_t i = 0; i < L; ++i) {  // the oracle on each query's window alone, a cache of its visible keys
      const int64_t first = std::max<int64_t>(0, i - window + 1), n = i - first + 1;
      std::vector<double> yi;
      attention_oracle(std::vector<float>(q.begin() + i * H * hd, q.begin() + (i + 1) * H * hd),
                       std::vector<float>(k.begin() + first * Hkv * hd, k.begin() + (i + 1) * Hkv * hd),
                       std::vector<float>(v.begin() + first * Hkv * hd, v.begin() + (i + 1) * Hkv * hd), 1, n, H, Hkv, hd, n - 1, yi, lse);
      std::copy(yi.begin(), yi.end(), want.begin() + i * H * hd);
    }
    const auto whole = run(window, 0, L);
    expect_within(whole, want, 2e-6, "windowed attention");
    std::vector<float> pieces;
    for (int64_t r0 = 0; r0 < L; r0 += 9) {
      const auto y = run(window, r0, std::min<int64_t>(9, L - r0));
      pieces.insert(pieces.end(), y.begin(), y.end());
    }
    EXPECT_EQ(pieces, whole) << "window " << window;
  }
  EXPECT_EQ(run(L, 0, L), run(0, 0, L));
}
