// Causal attention and rotary positions on the CPU (ops.h). A query row's keys are visited in tiles
// of kKeyTile on a grid of absolute positions: the tile's scores first, then one rescale of the
// running output per tile (FlashAttention-2's order). float runs on the GEMM's microkernel
// (gemm.h): a head's keys and values are packed once, and for each block of kQueryBlock rows and
// key tile, scores = Q K^T and output += P V are register-blocked products (6x the row-at-a-time
// dot products here). Each dot product is one fma chain over the head width and each tile's
// weighted values one chain per channel over its keys, so a row's bits do not depend on its block,
// and a decode step (too few rows to pay for packing) runs the same sums row at a time. Work is
// split over (head, query block) pairs, in an order fixed by the sizes: any thread count, chunking
// or blocking gives the same bits.
#include "core/ops/ops.h"

#include "core/error.h"
#include "core/ops/gemm.h"
#include "core/ops/simd.h"
#include "core/threads.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

namespace longseq::ops {

namespace {
constexpr int64_t kKeyTile = 64;     // keys per online-softmax step, on a grid of absolute positions
constexpr int64_t kQueryBlock = 48;  // query rows per unit of work (a multiple of every GEMM sliver)

// One query row's online-softmax step over a key tile, from the dot products of its n keys in s
// (keys outside [lo, hi) masked: their entries become 0): the scaled scores, the new maximum m, the
// probabilities in place, the running sum l (in double), and the factor the running output is
// multiplied by before the tile's weighted values are added. A row that sees none of the tile's
// keys gets probabilities 0 and factor 1, so a block may run every row over every tile.
template <class T>
T softmax_step(T* s, int64_t n, int64_t lo, int64_t hi, double scale, double& m, double& l) {
  if (lo >= hi) {
    std::fill(s, s + n, T(0));
    return T(1);
  }
  double tile_max = m;
  for (int64_t j = lo; j < hi; ++j) {
    s[j] = T(double(s[j]) * scale);
    tile_max = std::max(tile_max, double(s[j]));
  }
  T sum = 0;
  if constexpr (std::is_same_v<T, float>) {  // the exps are the step's cost: 16 or 8 at a time
    using simd::vf, simd::vi;
    vf lanes{};
    vi index{};
    for (int i = 0; i < simd::kLanes; ++i) index[i] = i;
    for (int64_t j = 0; j < n; j += simd::kLanes) {
      const vi at = index + int32_t(j);
      const vi seen = (at >= int32_t(lo)) & (at < int32_t(hi));
      const vf p = simd::select(seen, simd::exp(simd::load(s + j) - float(tile_max)), vf{});
      simd::store(s + j, p);
      lanes += p;
    }
    sum = simd::hsum(lanes);
  } else {
    for (int64_t j = 0; j < n; ++j) {
      s[j] = j >= lo && j < hi ? std::exp(s[j] - T(tile_max)) : T(0);
      sum += s[j];
    }
  }
  const T rescale = T(std::exp(m - tile_max));  // 0 on a row's first tile (m = -inf)
  l = l * double(rescale) + double(sum);
  m = tile_max;
  return rescale;
}

// What both schedules share: a block of query rows with their running outputs (rows x hd), maxima
// and sums, and the row end: y and lse from them.
template <class T>
struct RowState {
  std::vector<T> o, s;
  std::vector<double> m, l;
  RowState(int64_t rows, int64_t hd)
      : o(size_t(rows * hd), T(0)), s(size_t(rows * kKeyTile), T(0)), m(size_t(rows), -std::numeric_limits<double>::infinity()),
        l(size_t(rows), 0.0) {}
  void write(int64_t rows, int64_t hd, T* y, int64_t ldy, T* lse) const {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t e = 0; e < hd; ++e) y[r * ldy + e] = T(double(o[size_t(r * hd + e)]) / l[size_t(r)]);
      if (lse) lse[r] = T(m[size_t(r)] + std::log(l[size_t(r)]));
    }
  }
};

// s[j] = q . k_j for keys j in [lo, hi) of a tile (k_j at k + j ldk), each one fma chain over the
// head width in order; kChains keys at a time, since one chain alone waits on each fma's latency.
template <class T>
void dot_products(const T* q, const T* k, int64_t ldk, int64_t lo, int64_t hi, int64_t hd, T* s) {
  constexpr int64_t kChains = 16;
  for (int64_t j0 = lo; j0 < hi; j0 += kChains) {
    const int64_t n = std::min(kChains, hi - j0);
    T acc[kChains] = {};
    for (int64_t e = 0; e < hd; ++e)
      for (int64_t j = 0; j < n; ++j) acc[j] = std::fma(q[e], k[(j0 + j) * ldk + e], acc[j]);
    std::copy(acc, acc + n, s + j0);
  }
}

// The row-at-a-time schedule (any T; float where a block is too small to pay for packing): each dot
// product is one fma chain over the head width, each tile's weighted values one fma chain per
// channel over the tile's keys, added to the rescaled output: the packed schedule's sums exactly.
template <class T>
void attention_rows(const AttentionArgs<T>& a, int64_t h, int64_t i0, int64_t rows, double scale, T* y, int64_t ldy, T* lse) {
  const int64_t hd = a.head_dim, kvh = h / (a.heads / a.kv_heads);
  RowState<T> st(rows, hd);
  std::vector<T> pv(static_cast<size_t>(hd));
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t pos = a.offset + i0 + r, first = attention_first_key(pos, a.window);
    const T* q = a.q.row(i0 + r) + h * hd;
    T *o = st.o.data() + r * hd, *s = st.s.data();
    for (int64_t j0 = first / kKeyTile * kKeyTile; j0 <= pos; j0 += kKeyTile) {
      const int64_t lo = std::max(j0, first) - j0, hi = std::min(j0 + kKeyTile, pos + 1) - j0;
      dot_products(q, a.k.row(j0) + kvh * hd, a.k.ld, lo, hi, hd, s);
      const T rescale = softmax_step(s, hi, lo, hi, scale, st.m[size_t(r)], st.l[size_t(r)]);
      std::fill(pv.begin(), pv.end(), T(0));
      for (int64_t j = lo; j < hi; ++j) {
        const T* v = a.v.row(j0 + j) + kvh * hd;
#pragma omp simd
        for (int64_t e = 0; e < hd; ++e) pv[size_t(e)] = std::fma(s[j], v[e], pv[size_t(e)]);
      }
      // Two roundings, as the packed schedule's two steps (kept apart so that no fma fuses them).
      for (int64_t e = 0; e < hd; ++e) o[e] *= rescale;
      for (int64_t e = 0; e < hd; ++e) o[e] += pv[size_t(e)];
    }
  }
  st.write(rows, hd, y, ldy, lse);
}

// A head's keys (as columns of B) and values (as B of each tile's product), packed once for all of
// its query blocks: tile t holds keys first + t kKeyTile ...
struct PackedKv {
  int64_t first = 0, tiles = 0, k_tile = 0, v_tile = 0;
  std::vector<float> k, v;
};

void pack_kv(const AttentionArgs<float>& a, int64_t kvh, PackedKv& p) {
  const int64_t hd = a.head_dim, S = a.offset + a.q.rows;
  for_blocks(p.tiles, 1, [&](int64_t t, int64_t, int) {
    const int64_t j0 = p.first + t * kKeyTile, n = std::min(kKeyTile, S - j0);
    gemm_pack_b({a.k.row(j0) + kvh * hd, 1, a.k.ld}, n, hd, p.k.data() + t * p.k_tile);
    gemm_pack_b({a.v.row(j0) + kvh * hd, a.v.ld, 1}, hd, n, p.v.data() + t * p.v_tile);
  });
}

// The packed schedule for a block of query rows: per key tile, scores = Q K^T and output += P V on
// the GEMM's microkernel, the softmax step per row between them.
void attention_block(const AttentionArgs<float>& a, const PackedKv& p, int64_t h, int64_t i0, int64_t rows, double scale, float* y,
                     int64_t ldy, float* lse) {
  const int64_t hd = a.head_dim;
  RowState<float> st(rows, hd);
  std::vector<float> qp(size_t(gemm_packed_floats(true, rows, hd))), pp(size_t(gemm_packed_floats(true, rows, kKeyTile)));
  gemm_pack_a({a.q.row(i0) + h * hd, a.q.ld, 1}, rows, hd, qp.data());
  const int64_t end = a.offset + i0 + rows, S = a.offset + a.q.rows;
  for (int64_t j0 = attention_first_key(a.offset + i0, a.window) / kKeyTile * kKeyTile; j0 < end; j0 += kKeyTile) {
    const int64_t t = (j0 - p.first) / kKeyTile, n = std::min(kKeyTile, S - j0);
    const Mat<float> s{st.s.data(), rows, n, kKeyTile}, o{st.o.data(), rows, hd, hd};
    gemm_packed(qp.data(), p.k.data() + t * p.k_tile, hd, s, false);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t pos = a.offset + i0 + r;
      const int64_t lo = std::clamp(attention_first_key(pos, a.window) - j0, int64_t(0), n), hi = std::clamp(pos + 1 - j0, int64_t(0), n);
      const float rescale = softmax_step(s.row(r), n, lo, hi, scale, st.m[size_t(r)], st.l[size_t(r)]);
      for (int64_t e = 0; e < hd; ++e) o.at(r, e) *= rescale;
    }
    gemm_pack_a({s.data, s.ld, 1}, rows, n, pp.data());
    gemm_packed(pp.data(), p.v.data() + t * p.v_tile, n, o, true);
  }
  st.write(rows, hd, y, ldy, lse);
}

}  // namespace

template <class T>
void causal_attention_forward(const AttentionArgs<T>& a, Mat<T> y, T* lse) {
  const int64_t H = a.heads, Hkv = a.kv_heads, hd = a.head_dim, Lq = a.q.rows, S = a.k.rows;
  LS_CHECK(H > 0 && Hkv > 0 && H % Hkv == 0 && hd > 0, "attention: {} heads over {} key/value heads of width {}", H, Hkv, hd);
  LS_CHECK(a.q.cols == H * hd && a.k.cols == Hkv * hd && a.v.cols == Hkv * hd && a.v.rows == S && y.rows == Lq && y.cols == H * hd,
           "attention: shapes q ({}, {}), k ({}, {}), v ({}, {}), y ({}, {}) for {} heads of {}", a.q.rows, a.q.cols, a.k.rows, a.k.cols,
           a.v.rows, a.v.cols, y.rows, y.cols, H, hd);
  LS_CHECK(a.offset >= 0 && a.offset + Lq <= S && a.window >= 0, "attention: {} queries at offset {} need {} keys, got {} (window {})", Lq,
           a.offset, a.offset + Lq, S, a.window);
  const double scale = a.scale > 0 ? a.scale : 1.0 / std::sqrt(double(hd));
  const int64_t blocks = (Lq + kQueryBlock - 1) / kQueryBlock, group = H / Hkv;
  const auto out = [&](int64_t h, int64_t i0) { return std::pair{y.row(i0) + h * hd, lse ? lse + h * Lq + i0 : nullptr}; };
  // Packing a head's keys and values pays for itself once a block has a few rows; both schedules
  // give the same bits, so this choice (like the thread count) changes only the speed.
  if constexpr (std::is_same_v<T, float>) {
    if (Lq >= 16 && hd <= kGemmKc) {
      PackedKv p;
      p.first = attention_first_key(a.offset, a.window) / kKeyTile * kKeyTile;
      p.tiles = (a.offset + Lq - p.first + kKeyTile - 1) / kKeyTile;
      p.k_tile = gemm_packed_floats(false, kKeyTile, hd), p.v_tile = gemm_packed_floats(false, hd, kKeyTile);
      p.k.resize(size_t(p.tiles * p.k_tile)), p.v.resize(size_t(p.tiles * p.v_tile));
      for (int64_t kvh = 0; kvh < Hkv; ++kvh) {
        pack_kv(a, kvh, p);
        for_blocks(group * blocks, 1, [&](int64_t unit, int64_t, int) {
          const int64_t h = kvh * group + unit / blocks, i0 = (unit % blocks) * kQueryBlock;
          const auto [yp, lp] = out(h, i0);
          attention_block(a, p, h, i0, std::min(kQueryBlock, Lq - i0), scale, yp, y.ld, lp);
        });
      }
      return;
    }
  }
  for_blocks(H * blocks, 1, [&](int64_t unit, int64_t, int) {
    const int64_t h = unit / blocks, i0 = (unit % blocks) * kQueryBlock;
    const auto [yp, lp] = out(h, i0);
    attention_rows(a, h, i0, std::min(kQueryBlock, Lq - i0), scale, yp, y.ld, lp);
  });
}

template <class T>
void causal_attention_backward(const AttentionArgs<T>& a, Mat<const T> y, const T* lse, Mat<const T> dy, Mat<T> dq, Mat<T> dk,
                               Mat<T> dv) {
  const int64_t H = a.heads, Hkv = a.kv_heads, hd = a.head_dim, Lq = a.q.rows, S = a.k.rows, group = H / std::max<int64_t>(Hkv, 1);
  LS_CHECK(H > 0 && Hkv > 0 && H % Hkv == 0 && a.offset >= 0 && a.offset + Lq <= S && y.rows == Lq && dy.rows == Lq && dq.rows == Lq &&
               dk.rows == S && dv.rows == S,
           "attention backward: {} queries at offset {} over {} keys, {} heads over {}", Lq, a.offset, S, H, Hkv);
  const double scale = a.scale > 0 ? a.scale : 1.0 / std::sqrt(double(hd));
  for_blocks(Hkv, 1, [&](int64_t kvh, int64_t, int) {
    for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h)
      for (int64_t i = 0; i < Lq; ++i) {
        const T *q = a.q.row(i) + h * hd, *g = dy.row(i) + h * hd, *o = y.row(i) + h * hd;
        T* gq = dq.row(i) + h * hd;
        double rowdot = 0;  // D_i = dy_i . y_i
        for (int64_t e = 0; e < hd; ++e) rowdot += double(g[e]) * double(o[e]);
        const double l = double(lse[h * Lq + i]);
        for (int64_t j = attention_first_key(a.offset + i, a.window); j <= a.offset + i; ++j) {
          const T *k = a.k.row(j) + kvh * hd, *v = a.v.row(j) + kvh * hd;
          double s = 0, dp = 0;
          for (int64_t e = 0; e < hd; ++e) s += double(q[e]) * double(k[e]), dp += double(g[e]) * double(v[e]);
          const double p = std::exp(s * scale - l), ds = p * (dp - rowdot) * scale;
          T *gk = dk.row(j) + kvh * hd, *gv = dv.row(j) + kvh * hd;
          for (int64_t e = 0; e < hd; ++e) {
            gv[e] += T(p * double(g[e]));
            gq[e] += T(ds * double(k[e]));
            gk[e] += T(ds * double(q[e]));
          }
        }
      }
  });
}

template <class T>
void rotary(Mat<T> x, int64_t heads, int64_t head_dim, const T* inv_freq, int64_t offset, double pos_scale, bool inverse) {
  LS_CHECK(head_dim % 2 == 0 && x.cols == heads * head_dim, "rotary: {} columns for {} heads of width {} (even)", x.cols, heads, head_dim);
  const int64_t half = head_dim / 2;
  for_blocks(x.rows, 64, [&](int64_t r0, int64_t rows, int) {
    for (int64_t t = r0; t < r0 + rows; ++t) {
      const double p = double(offset + t) * pos_scale;
      for (int64_t i = 0; i < half; ++i) {
        const double angle = p * double(inv_freq[i]), c = std::cos(angle), s = inverse ? -std::sin(angle) : std::sin(angle);
        for (int64_t h = 0; h < heads; ++h) {
          T* row = x.row(t) + h * head_dim;
          const double x0 = double(row[i]), x1 = double(row[i + half]);
          row[i] = T(x0 * c - x1 * s);
          row[i + half] = T(x0 * s + x1 * c);
        }
      }
    }
  });
}

#define LONGSEQ_INSTANTIATE(T)                                                                                           \
  template void causal_attention_forward<T>(const AttentionArgs<T>&, Mat<T>, T*);                                        \
  template void causal_attention_backward<T>(const AttentionArgs<T>&, Mat<const T>, const T*, Mat<const T>, Mat<T>, Mat<T>, \
                                             Mat<T>);                                                                    \
  template void rotary<T>(Mat<T>, int64_t, int64_t, const T*, int64_t, double, bool);
LONGSEQ_INSTANTIATE(float)
LONGSEQ_INSTANTIATE(double)
#undef LONGSEQ_INSTANTIATE

}  // namespace longseq::ops
