// The row-wise ops of ops.h: norms, the embedding's backward, the loss and the raw-audio front end.
// Plain scalar code templated on the precision (rows in fixed blocks over threads).
#include "core/ops/ops.h"

#include "core/threads.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <type_traits>
#include <vector>

namespace longseq::ops {

namespace {

constexpr int64_t kRowBlock = 64;      // rows per parallel block (norms, loss)

// Parameter gradients are sums over every position: they are accumulated in double and added once,
// so float rounding does not grow with the length.
template <class T>
void add_sums(const std::vector<double>& sums, T* out) {
  for (size_t i = 0; i < sums.size(); ++i) out[i] += T(sums[i]);
}

}  // namespace

// ---- norms ----------------------------------------------------------------------------------

template <class T>
void rms_norm_forward(Mat<const T> x, const T* w, double eps, bool eps_outside, Mat<T> y, T* rstd) {
  const int64_t d = x.cols;
  for_blocks(x.rows, kRowBlock, [&](int64_t r0, int64_t n, int) {
    for (int64_t r = r0; r < r0 + n; ++r) {
      const T* xr = x.row(r);
      double ss = 0;
      for (int64_t j = 0; j < d; ++j) ss += double(xr[j]) * double(xr[j]);
      const T s = T(eps_outside ? 1.0 / (std::sqrt(ss / double(d)) + eps) : 1.0 / std::sqrt(ss / double(d) + eps));
      rstd[r] = s;
      T* yr = y.row(r);
      for (int64_t j = 0; j < d; ++j) yr[j] = xr[j] * s * w[j];
    }
  });
}

template <class T>
void rms_norm_backward(Mat<const T> x, const T* w, double eps, bool eps_outside, const T* rstd, Mat<const T> dy, Mat<T> dx, T* dw) {
  const int64_t d = x.cols;
  for_blocks(x.rows, kRowBlock, [&](int64_t r0, int64_t n, int) {
    for (int64_t r = r0; r < r0 + n; ++r) {
      const T *xr = x.row(r), *g = dy.row(r);
      const T s = rstd[r];
      double dot = 0;  // mean(dxhat * xhat)
      for (int64_t j = 0; j < d; ++j) dot += double(g[j] * w[j]) * double(xr[j] * s);
      const T m = T(dot / double(d));
      // d rstd / d x_j = -x_j rstd c / d with c = rstd^2 (eps inside) or rstd / rms (eps outside, rms =
      // 1 / rstd - eps; the gradient at an all-zero row, where rms has none, is taken as 0).
      T c = s;
      if (eps_outside) {
        const double rms = 1.0 / double(s) - eps;
        c = rms > 0 ? T(1.0 / rms) : T(0);
      }
      T* o = dx.row(r);
      for (int64_t j = 0; j < d; ++j) o[j] += s * (g[j] * w[j] - xr[j] * c * m);
    }
  });
  if (dw) {
    std::vector<double> sum(static_cast<size_t>(d), 0.0);
    for (int64_t r = 0; r < x.rows; ++r)
      for (int64_t j = 0; j < d; ++j) sum[size_t(j)] += double(dy.at(r, j) * x.at(r, j) * rstd[r]);
    add_sums(sum, dw);
  }
}

template <class T>
void layer_norm_forward(Mat<const T> x, const T* w, const T* b, double eps, Mat<T> y, T* mean, T* rstd) {
  const int64_t d = x.cols;
  for_blocks(x.rows, kRowBlock, [&](int64_t r0, int64_t n, int) {
    for (int64_t r = r0; r < r0 + n; ++r) {
      const T* xr = x.row(r);
      double s = 0;
      for (int64_t j = 0; j < d; ++j) s += double(xr[j]);
      const double mu = s / double(d);
      double v = 0;
      for (int64_t j = 0; j < d; ++j) v += (double(xr[j]) - mu) * (double(xr[j]) - mu);
      const T rs = T(1.0 / std::sqrt(v / double(d) + eps)), m = T(mu);
      mean[r] = m;
      rstd[r] = rs;
      T* yr = y.row(r);
      for (int64_t j = 0; j < d; ++j) yr[j] = (xr[j] - m) * rs * w[j] + (b ? b[j] : T(0));
    }
  });
}

template <class T>
void layer_norm_backward(Mat<const T> x, const T* w, const T* mean, const T* rstd, Mat<const T> dy, Mat<T> dx, T* dw,
                         T* db) {
  const int64_t d = x.cols;
  for_blocks(x.rows, kRowBlock, [&](int64_t r0, int64_t n, int) {
    for (int64_t r = r0; r < r0 + n; ++r) {
      const T *xr = x.row(r), *g = dy.row(r);
      const T m = mean[r], s = rstd[r];
      double sum_g = 0, sum_gx = 0;
      for (int64_t j = 0; j < d; ++j) {
        const double gj = double(g[j] * w[j]);
        sum_g += gj;
        sum_gx += gj * double((xr[j] - m) * s);
      }
      const T mg = T(sum_g / double(d)), mgx = T(sum_gx / double(d));
      T* o = dx.row(r);
      for (int64_t j = 0; j < d; ++j) o[j] += s * (g[j] * w[j] - mg - (xr[j] - m) * s * mgx);
    }
  });
  std::vector<double> sw(static_cast<size_t>(d), 0.0), sb(static_cast<size_t>(d), 0.0);
  for (int64_t r = 0; r < x.rows; ++r)
    for (int64_t j = 0; j < d; ++j) {
      sw[size_t(j)] += double(dy.at(r, j) * (x.at(r, j) - mean[r]) * rstd[r]);
      sb[size_t(j)] += double(dy.at(r, j));
    }
  if (dw) add_sums(sw, dw);
  if (db) add_sums(sb, db);
}

// ---- embedding and loss ----------------------------------------------------------------------

template <class T>
void embedding_backward(std::span<const int64_t> ids, Mat<const T> dout, T* dtable) {
  for (size_t l = 0; l < ids.size(); ++l) {
    T* row = dtable + ids[l] * dout.cols;
    const T* g = dout.row(int64_t(l));
    for (int64_t j = 0; j < dout.cols; ++j) row[j] += g[j];
  }
}

template <class T>
double cross_entropy(Mat<const T> logits, std::span<const int64_t> targets, double scale, Mat<T> dlogits) {
  const int64_t V = logits.cols;
  std::vector<double> losses(size_t(logits.rows), 0.0);
  for_blocks(logits.rows, kRowBlock, [&](int64_t r0, int64_t n, int) {
    for (int64_t r = r0; r < r0 + n; ++r) {
      T* g = dlogits.row(r);
      const int64_t y = targets[size_t(r)];
      if (y < 0) {
        std::fill(g, g + V, T(0));
        continue;
      }
      const T* x = logits.row(r);
      double mx = x[0];
      for (int64_t v = 1; v < V; ++v) mx = std::max(mx, double(x[v]));
      double sum = 0;
      for (int64_t v = 0; v < V; ++v) sum += std::exp(double(x[v]) - mx);
      const double lse = mx + std::log(sum);
      losses[size_t(r)] = lse - double(x[y]);
      for (int64_t v = 0; v < V; ++v) g[v] = T(scale * std::exp(double(x[v]) - lse));
      g[y] -= T(scale);
    }
  });
  double total = 0;
  for (double l : losses) total += l;
  return total;
}

double mu_law_decode(int64_t code) {
  assert(code >= 0 && code < 256);
  const double y = double(code) / 127.5 - 1.0;
  return std::copysign(std::expm1(std::abs(y) * std::log1p(255.0)) / 255.0, y);
}

template <class T>
void audio_frames(std::span<const int64_t> codes, int64_t hop, Mat<T> frames) {
  const int64_t F = frames.cols;
  assert(hop >= 1 && int64_t(codes.size()) == frames.rows * hop);
  std::array<T, 256> table;
  for (int64_t c = 0; c < 256; ++c) table[size_t(c)] = T(mu_law_decode(c));
  for (int64_t t = 0; t < frames.rows; ++t) {
    const int64_t start = (t + 1) * hop - F;
    T* row = frames.row(t);
    for (int64_t k = 0; k < F; ++k) row[k] = start + k >= 0 ? table[size_t(codes[size_t(start + k)])] : T(0);
  }
}

template <class T>
void filterbank_init(int64_t filters, int64_t frame, double sample_rate, T* w) {
  const auto mel = [](double f) { return 2595.0 * std::log10(1.0 + f / 700.0); };
  const auto hz = [](double m) { return 700.0 * (std::pow(10.0, m / 2595.0) - 1.0); };
  const double lo = mel(40.0), hi = mel(0.45 * sample_rate);
  std::vector<double> hann(static_cast<size_t>(frame));
  double sum = 0;
  for (int64_t n = 0; n < frame; ++n) sum += hann[size_t(n)] = 0.5 - 0.5 * std::cos(2.0 * M_PI * double(n) / double(frame));
  for (int64_t k = 0; k < filters; ++k) {
    const double f = hz(filters == 1 ? lo : lo + (hi - lo) * double(k) / double(filters - 1));
    for (int64_t n = 0; n < frame; ++n) {
      const double phase = 2.0 * M_PI * f * (double(n) - 0.5 * double(frame)) / sample_rate, a = 2.0 * hann[size_t(n)] / sum;
      w[(2 * k) * frame + n] = T(a * std::cos(phase));
      w[(2 * k + 1) * frame + n] = T(a * std::sin(phase));
    }
  }
}

template <class T>
void log_power_forward(Mat<const T> y, Mat<T> z) {
  assert(y.cols == 2 * z.cols && y.rows == z.rows);
  for (int64_t t = 0; t < z.rows; ++t)
    for (int64_t k = 0; k < z.cols; ++k) {
      const double a = y.at(t, 2 * k), b = y.at(t, 2 * k + 1);
      z.at(t, k) = T((std::log(kLogPowerEps + a * a + b * b) - kLogPowerShift) / kLogPowerScale);
    }
}

template <class T>
void log_power_backward(Mat<const T> y, Mat<const T> dz, Mat<T> dy) {
  for (int64_t t = 0; t < dz.rows; ++t)
    for (int64_t k = 0; k < dz.cols; ++k) {
      const double a = y.at(t, 2 * k), b = y.at(t, 2 * k + 1);
      const double s = 2.0 * double(dz.at(t, k)) / (kLogPowerScale * (kLogPowerEps + a * a + b * b));
      dy.at(t, 2 * k) += T(s * a);
      dy.at(t, 2 * k + 1) += T(s * b);
    }
}

template <class T>
void center_columns(Mat<T> x) {
  std::vector<double> mean(size_t(x.cols), 0.0);
  for (int64_t t = 0; t < x.rows; ++t)
    for (int64_t k = 0; k < x.cols; ++k) mean[size_t(k)] += double(x.at(t, k));
  for (int64_t t = 0; t < x.rows; ++t)
    for (int64_t k = 0; k < x.cols; ++k) x.at(t, k) = T(double(x.at(t, k)) - mean[size_t(k)] / double(x.rows));
}

template <class T>
void flip(Mat<const T> x, Mat<T> y, bool rows, bool cols) {
  assert(x.rows == y.rows && x.cols == y.cols);
  for (int64_t r = 0; r < y.rows; ++r) {
    const T* src = x.row(rows ? x.rows - 1 - r : r);
    T* dst = y.row(r);
    if (cols)
      std::reverse_copy(src, src + x.cols, dst);
    else
      std::copy(src, src + x.cols, dst);
  }
}

template <class T>
void rc_token_table(const T* E, int64_t V, int64_t h, std::span<const int64_t> comp, T* out) {
  assert(int64_t(comp.size()) == V);
  for (int64_t v = 0; v < V; ++v) {
    assert(comp[size_t(v)] >= 0 && comp[size_t(v)] < V);
    std::copy(E + v * h, E + (v + 1) * h, out + v * 2 * h);
    const T* c = E + comp[size_t(v)] * h;
    std::reverse_copy(c, c + h, out + v * 2 * h + h);
  }
}

template <class T>
void rc_token_table_backward(const T* dout, int64_t V, int64_t h, std::span<const int64_t> comp, T* dE) {
  for (int64_t v = 0; v < V; ++v) {
    const T* row = dout + v * 2 * h;
    T* c = dE + comp[size_t(v)] * h;
    for (int64_t j = 0; j < h; ++j) dE[v * h + j] += row[j], c[j] += row[2 * h - 1 - j];
  }
}

#define LONGSEQ_INSTANTIATE(T)                                                                                    \
  template void rms_norm_forward<T>(Mat<const T>, const T*, double, bool, Mat<T>, T*);                            \
  template void rms_norm_backward<T>(Mat<const T>, const T*, double, bool, const T*, Mat<const T>, Mat<T>, T*);   \
  template void layer_norm_forward<T>(Mat<const T>, const T*, const T*, double, Mat<T>, T*, T*);                  \
  template void layer_norm_backward<T>(Mat<const T>, const T*, const T*, const T*, Mat<const T>, Mat<T>, T*, T*); \
  template void embedding_backward<T>(std::span<const int64_t>, Mat<const T>, T*);                                \
  template double cross_entropy<T>(Mat<const T>, std::span<const int64_t>, double, Mat<T>);                     \
  template void audio_frames<T>(std::span<const int64_t>, int64_t, Mat<T>);                                       \
  template void filterbank_init<T>(int64_t, int64_t, double, T*);                                                 \
  template void log_power_forward<T>(Mat<const T>, Mat<T>);                                                        \
  template void log_power_backward<T>(Mat<const T>, Mat<const T>, Mat<T>);                                           \
  template void center_columns<T>(Mat<T>);                                                                         \
  template void flip<T>(Mat<const T>, Mat<T>, bool, bool);                                                         \
  template void rc_token_table<T>(const T*, int64_t, int64_t, std::span<const int64_t>, T*);                      \
  template void rc_token_table_backward<T>(const T*, int64_t, int64_t, std::span<const int64_t>, T*);
LONGSEQ_INSTANTIATE(float)
LONGSEQ_INSTANTIATE(double)
#undef LONGSEQ_INSTANTIATE

}  // namespace longseq::ops
