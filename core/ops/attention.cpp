// Causal attention and rotary positions on the CPU (ops.h). A query row's keys are visited in tiles
// of kKeyTile: the tile's scores first, then one rescale of the running output per tile rather than
// per key (FlashAttention-2's order), so the inner loops are dot products and axpys over the head
// width (omp simd). Work is split over (head, query block) pairs, and within a block the key tiles
// are the outer loop: a K/V tile comes from memory once per block of kQueryBlock rows instead of
// once per row (the row-at-a-time schedule read 8 MB per row per head at 8 k tokens).
#include "core/ops/ops.h"

#include "core/error.h"
#include "core/threads.h"

#include <cmath>
#include <limits>
#include <vector>

namespace longseq::ops {

namespace {
constexpr int64_t kKeyTile = 64;     // keys per online-softmax step
constexpr int64_t kQueryBlock = 32;  // query rows per unit of work

// One query row's online-softmax step over keys lo .. hi - 1 (one key tile): scores, the new
// maximum, one rescale of the running output, then the probabilities' weighted values. Scores,
// probabilities and the output accumulate in T (float: the official fp32 compute), the running
// maximum m and sum l in double. Every row runs the same steps on the same tile grid whatever block
// it is in, so results do not depend on how the rows are blocked (or chunked).
template <class T>
void attention_row_step(const AttentionArgs<T>& a, const T* q, int64_t kvh, int64_t lo, int64_t hi, double scale, double& m, double& l, T* o,
                        T* score) {
  const int64_t hd = a.head_dim, n = hi - lo;
  double tile_max = m;
  for (int64_t j = 0; j < n; ++j) {
    const T* k = a.k.row(lo + j) + kvh * hd;
    T dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t e = 0; e < hd; ++e) dot += q[e] * k[e];
    score[j] = T(double(dot) * scale);
    tile_max = std::max(tile_max, double(score[j]));
  }
  const T rescale = T(std::exp(m - tile_max));  // 0 on the first tile (m = -inf)
  l *= double(rescale);
#pragma omp simd
  for (int64_t e = 0; e < hd; ++e) o[e] *= rescale;
  for (int64_t j = 0; j < n; ++j) {
    const T p = std::exp(score[j] - T(tile_max));
    l += double(p);
    const T* v = a.v.row(lo + j) + kvh * hd;
#pragma omp simd
    for (int64_t e = 0; e < hd; ++e) o[e] += p * v[e];
  }
  m = tile_max;
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
  for_blocks(H * blocks, 1, [&](int64_t unit, int64_t, int) {
    const int64_t h = unit / blocks, i0 = (unit % blocks) * kQueryBlock, kvh = h / group, rows = std::min(kQueryBlock, Lq - i0);
    std::vector<T> acc(static_cast<size_t>(rows * hd), T(0)), score(static_cast<size_t>(kKeyTile));
    std::vector<double> m(static_cast<size_t>(rows), -std::numeric_limits<double>::infinity()), l(static_cast<size_t>(rows), 0.0);
    // Key tiles on a grid of absolute positions (multiples of kKeyTile), outer, so each K/V tile is
    // read from memory once per block and reused by its rows from cache; each row takes the part
    // of the tile it sees.
    const int64_t end = a.offset + i0 + rows;
    for (int64_t j0 = attention_first_key(a.offset + i0, a.window) / kKeyTile * kKeyTile; j0 < end; j0 += kKeyTile)
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t pos = a.offset + i0 + r, lo = std::max(j0, attention_first_key(pos, a.window)), hi = std::min(j0 + kKeyTile, pos + 1);
        if (lo < hi)
          attention_row_step(a, a.q.row(i0 + r) + h * hd, kvh, lo, hi, scale, m[size_t(r)], l[size_t(r)], acc.data() + r * hd, score.data());
      }
    for (int64_t r = 0; r < rows; ++r) {
      const T* o = acc.data() + r * hd;
      T* out = y.row(i0 + r) + h * hd;
      for (int64_t e = 0; e < hd; ++e) out[e] = T(double(o[e]) / l[size_t(r)]);
      if (lse) lse[h * Lq + i0 + r] = T(m[size_t(r)] + std::log(l[size_t(r)]));
    }
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
