// Element-wise, norm, conv, scan, embedding and loss ops of training (GEMMs are in grad_linear.cpp,
// FFTs in grad_fft.cpp). Scalar code templated on the precision: the float instantiation trains,
// the double one is what the finite-difference tests differentiate.
#include "core/train/grad_ops.h"

#include "core/ops/simd.h"
#include "core/threads.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <type_traits>
#include <vector>

namespace longseq::train {

namespace {

constexpr int64_t kRowBlock = 64;      // rows per parallel block (norms, loss)
constexpr int64_t kChannelBlock = 16;  // channels per parallel block (conv, scan)

template <class T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}
// torch softplus (beta 1, threshold 20) and its derivative.
template <class T>
T softplus(T x) {
  return x > T(20) ? x : std::log1p(std::exp(x));
}
template <class T>
T softplus_grad(T x) {
  return x > T(20) ? T(1) : sigmoid(x);
}

// Parameter gradients are sums over every position: they are accumulated in double and added once,
// so float rounding does not grow with the length.
template <class T>
void add_sums(const std::vector<double>& sums, T* out) {
  for (size_t i = 0; i < sums.size(); ++i) out[i] += T(sums[i]);
}

// out[n] = exp(dt * A[n]): the scan is exp-bound, so float uses the SIMD polynomial exp of the
// inference scan (relative error ~2e-7); double keeps libm for the finite-difference checks.
template <class T>
void decay_row(T dt, const T* A, int64_t N, T* out) {
  int64_t n = 0;
  if constexpr (std::is_same_v<T, float>)
    for (; n + simd::kLanes <= N; n += simd::kLanes) simd::store(out + n, simd::exp(simd::load(A + n) * dt));
  for (; n < N; ++n) out[n] = std::exp(dt * A[n]);
}

}  // namespace

// ---- norms ----------------------------------------------------------------------------------

template <class T>
void rms_norm_forward(Mat<const T> x, const T* w, double eps, Mat<T> y, T* rstd) {
  const int64_t d = x.cols;
  for_blocks(x.rows, kRowBlock, [&](int64_t r0, int64_t n, int) {
    for (int64_t r = r0; r < r0 + n; ++r) {
      const T* xr = x.row(r);
      double ss = 0;
      for (int64_t j = 0; j < d; ++j) ss += double(xr[j]) * double(xr[j]);
      const T s = T(1.0 / std::sqrt(ss / double(d) + eps));
      rstd[r] = s;
      T* yr = y.row(r);
      for (int64_t j = 0; j < d; ++j) yr[j] = xr[j] * s * w[j];
    }
  });
}

template <class T>
void rms_norm_backward(Mat<const T> x, const T* w, const T* rstd, Mat<const T> dy, Mat<T> dx, T* dw) {
  const int64_t d = x.cols;
  for_blocks(x.rows, kRowBlock, [&](int64_t r0, int64_t n, int) {
    for (int64_t r = r0; r < r0 + n; ++r) {
      const T *xr = x.row(r), *g = dy.row(r);
      const T s = rstd[r];
      double dot = 0;  // mean(dxhat * xhat)
      for (int64_t j = 0; j < d; ++j) dot += double(g[j] * w[j]) * double(xr[j] * s);
      const T m = T(dot / double(d));
      T* o = dx.row(r);
      for (int64_t j = 0; j < d; ++j) o[j] += s * (g[j] * w[j] - xr[j] * s * m);
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

// ---- causal depthwise conv --------------------------------------------------------------------

namespace {

// Input at position p (p < 0: the initial state rows, or zero).
template <class T>
T conv_input(const ConvGrad<T>& a, int64_t p, int64_t c) {
  if (p >= 0) return a.x.at(p, c);
  return a.init ? a.init[(a.W - 1 + p) * a.x.cols + c] : T(0);
}

template <class T>
T conv_pre(const ConvGrad<T>& a, int64_t t, int64_t c) {
  T acc = a.b ? a.b[c] : T(0);
  for (int64_t k = 0; k < a.W; ++k) acc += a.w[c * a.W + k] * conv_input(a, t - (a.W - 1) + k, c);
  return acc;
}

}  // namespace

template <class T>
void causal_conv1d_forward(const ConvGrad<T>& a, Mat<T> out) {
  for_blocks(a.x.cols, kChannelBlock, [&](int64_t c0, int64_t n, int) {
    for (int64_t t = 0; t < a.x.rows; ++t)
      for (int64_t c = c0; c < c0 + n; ++c) {
        const T p = conv_pre(a, t, c);
        out.at(t, c) = a.silu ? p * sigmoid(p) : p;
      }
  });
}

template <class T>
void causal_conv1d_backward(const ConvGrad<T>& a, Mat<const T> dout, Mat<T> dx, T* dw, T* db, T* dinit) {
  const int64_t D = a.x.cols, W = a.W;
  for_blocks(D, kChannelBlock, [&](int64_t c0, int64_t n, int) {
    std::vector<double> sw(static_cast<size_t>(W));
    for (int64_t c = c0; c < c0 + n; ++c) {
      double sb = 0;
      std::fill(sw.begin(), sw.end(), 0.0);
      for (int64_t t = 0; t < a.x.rows; ++t) {
        T g = dout.at(t, c);
        if (a.silu) {
          const T p = conv_pre(a, t, c), s = sigmoid(p);
          g *= s * (T(1) + p * (T(1) - s));
        }
        sb += double(g);
        for (int64_t k = 0; k < W; ++k) {
          const int64_t p = t - (W - 1) + k;
          sw[size_t(k)] += double(g * conv_input(a, p, c));
          if (p >= 0)
            dx.at(p, c) += g * a.w[c * W + k];
          else if (dinit)
            dinit[(W - 1 + p) * D + c] += g * a.w[c * W + k];
        }
      }
      if (db) db[c] += T(sb);
      if (dw) add_sums(sw, dw + c * W);
    }
  });
}

// ---- selective scan ---------------------------------------------------------------------------

int64_t scan_chunks(int64_t L, int64_t chunk) { return std::max<int64_t>(1, (L + chunk - 1) / chunk); }

template <class T>
void selective_scan_forward(const ScanGrad<T>& a, Mat<T> out, T* chunk_states, T* h_last) {
  const int64_t L = a.u.rows, D = a.u.cols, N = a.B.cols;
  for_blocks(D, kChannelBlock, [&](int64_t c0, int64_t nc, int) {
    std::vector<T> h(static_cast<size_t>(N)), decay(static_cast<size_t>(N));
    for (int64_t d = c0; d < c0 + nc; ++d) {
      for (int64_t n = 0; n < N; ++n) h[size_t(n)] = a.h0 ? a.h0[d * N + n] : T(0);
      const T* A = a.A + d * N;
      for (int64_t t = 0; t < L; ++t) {
        if (t % a.chunk == 0) std::copy(h.begin(), h.end(), chunk_states + ((t / a.chunk) * D + d) * N);
        T dt = a.delta.at(t, d) + (a.delta_bias ? a.delta_bias[d] : T(0));
        if (a.softplus) dt = softplus(dt);
        const T u = a.u.at(t, d);
        const T *Bt = a.B.row(t), *Ct = a.C.row(t);
        T y = 0;
        decay_row(dt, A, N, decay.data());
        for (int64_t n = 0; n < N; ++n) {
          h[size_t(n)] = decay[size_t(n)] * h[size_t(n)] + dt * Bt[n] * u;
          y += Ct[n] * h[size_t(n)];
        }
        if (a.Dskip) y += a.Dskip[d] * u;
        if (a.z.data) {
          const T z = a.z.at(t, d);
          y *= z * sigmoid(z);
        }
        out.at(t, d) = y;
      }
      if (L == 0)
        for (int64_t n = 0; n < N; ++n) chunk_states[d * N + n] = h[size_t(n)];
      if (h_last) std::copy(h.begin(), h.end(), h_last + d * N);
    }
  });
}

template <class T>
void selective_scan_backward(const ScanGrad<T>& a, const T* chunk_states, Mat<const T> dout, const ScanGrads<T>& g) {
  const int64_t L = a.u.rows, D = a.u.cols, N = a.B.cols, chunk = a.chunk;
  const int64_t nchunks = scan_chunks(L, chunk), nblocks = (D + kChannelBlock - 1) / kChannelBlock;
  // Per channel: the gradient flowing into the state before the current chunk, and parameter sums.
  std::vector<T> carry(size_t(D * N), T(0)), dA(size_t(D * N), T(0)), dD(size_t(D), T(0)), dbias(size_t(D), T(0));
  // dB and dC rows are sums over channels: each channel block writes its own partial, reduced in order.
  std::vector<T> partial(size_t(nblocks * std::min(chunk, std::max<int64_t>(L, 1)) * 2 * N));
  for (int64_t c = nchunks - 1; c >= 0 && L > 0; --c) {
    const int64_t t0 = c * chunk, nt = std::min(chunk, L - t0);
    for_blocks(D, kChannelBlock, [&](int64_t c0, int64_t nc, int) {
      T* part = partial.data() + (c0 / kChannelBlock) * nt * 2 * N;
      std::fill(part, part + nt * 2 * N, T(0));
      std::vector<T> hs(static_cast<size_t>((nt + 1) * N)), as(static_cast<size_t>(nt * N)), dts(static_cast<size_t>(nt));
      for (int64_t d = c0; d < c0 + nc; ++d) {
        const T* A = a.A + d * N;
        const T bias = a.delta_bias ? a.delta_bias[d] : T(0), Dd = a.Dskip ? a.Dskip[d] : T(0);
        std::copy(chunk_states + (c * D + d) * N, chunk_states + (c * D + d + 1) * N, hs.begin());
        for (int64_t i = 0; i < nt; ++i) {  // recompute the chunk's states and decays
          const int64_t t = t0 + i;
          const T raw = a.delta.at(t, d) + bias, dt = a.softplus ? softplus(raw) : raw, u = a.u.at(t, d);
          dts[size_t(i)] = dt;
          decay_row(dt, A, N, as.data() + i * N);
          for (int64_t n = 0; n < N; ++n)
            hs[size_t((i + 1) * N + n)] = as[size_t(i * N + n)] * hs[size_t(i * N + n)] + dt * a.B.at(t, n) * u;
        }
        T* gh = carry.data() + d * N;
        for (int64_t i = nt - 1; i >= 0; --i) {
          const int64_t t = t0 + i;
          const T raw = a.delta.at(t, d) + bias, dt = dts[size_t(i)], u = a.u.at(t, d);
          const T *Bt = a.B.row(t), *Ct = a.C.row(t), *h = hs.data() + (i + 1) * N, *hp = hs.data() + i * N;
          const T* decay = as.data() + i * N;
          T gy = dout.at(t, d);
          if (a.z.data) {
            T ypre = Dd * u;
            for (int64_t n = 0; n < N; ++n) ypre += Ct[n] * h[n];
            const T z = a.z.at(t, d), s = sigmoid(z);
            g.dz.at(t, d) += gy * ypre * s * (T(1) + z * (T(1) - s));
            gy *= z * s;
          }
          dD[size_t(d)] += double(gy * u);
          T du = gy * Dd, ddt = 0;
          T *pB = part + i * 2 * N, *pC = pB + N;
          for (int64_t n = 0; n < N; ++n) {
            gh[n] += gy * Ct[n];
            pC[n] += gy * h[n];
            const T ga = gh[n] * hp[n];
            ddt += ga * decay[n] * A[n] + gh[n] * Bt[n] * u;
            dA[size_t(d * N + n)] += double(ga * decay[n] * dt);
            pB[n] += gh[n] * dt * u;
            du += gh[n] * dt * Bt[n];
            gh[n] *= decay[n];
          }
          g.du.at(t, d) += du;
          const T draw = a.softplus ? ddt * softplus_grad(raw) : ddt;
          g.ddelta.at(t, d) += draw;
          dbias[size_t(d)] += double(draw);
        }
      }
    });
    for (int64_t b = 0; b < nblocks; ++b) {
      const T* part = partial.data() + b * nt * 2 * N;
      for (int64_t i = 0; i < nt; ++i)
        for (int64_t n = 0; n < N; ++n) {
          g.dB.at(t0 + i, n) += part[i * 2 * N + n];
          g.dC.at(t0 + i, n) += part[i * 2 * N + N + n];
        }
    }
  }
  for (int64_t i = 0; i < D * N; ++i) {
    if (g.dA) g.dA[i] += T(dA[size_t(i)]);
    if (g.dh0) g.dh0[i] += carry[size_t(i)];
  }
  for (int64_t d = 0; d < D; ++d) {
    if (g.dDskip) g.dDskip[d] += T(dD[size_t(d)]);
    if (g.ddelta_bias) g.ddelta_bias[d] += T(dbias[size_t(d)]);
  }
}

// ---- embedding and loss ----------------------------------------------------------------------

template <class T>
void embedding_forward(std::span<const int64_t> ids, const T* table, int64_t V, Mat<T> out) {
  for (size_t l = 0; l < ids.size(); ++l) {
    assert(ids[l] >= 0 && ids[l] < V);
    (void)V;
    std::copy(table + ids[l] * out.cols, table + (ids[l] + 1) * out.cols, out.row(int64_t(l)));
  }
}

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

#define LONGSEQ_INSTANTIATE(T)                                                                                    \
  template void rms_norm_forward<T>(Mat<const T>, const T*, double, Mat<T>, T*);                                  \
  template void rms_norm_backward<T>(Mat<const T>, const T*, const T*, Mat<const T>, Mat<T>, T*);                 \
  template void layer_norm_forward<T>(Mat<const T>, const T*, const T*, double, Mat<T>, T*, T*);                  \
  template void layer_norm_backward<T>(Mat<const T>, const T*, const T*, const T*, Mat<const T>, Mat<T>, T*, T*); \
  template void causal_conv1d_forward<T>(const ConvGrad<T>&, Mat<T>);                                             \
  template void causal_conv1d_backward<T>(const ConvGrad<T>&, Mat<const T>, Mat<T>, T*, T*, T*);                  \
  template void selective_scan_forward<T>(const ScanGrad<T>&, Mat<T>, T*, T*);                                    \
  template void selective_scan_backward<T>(const ScanGrad<T>&, const T*, Mat<const T>, const ScanGrads<T>&);      \
  template void embedding_forward<T>(std::span<const int64_t>, const T*, int64_t, Mat<T>);                        \
  template void embedding_backward<T>(std::span<const int64_t>, Mat<const T>, T*);                                \
  template double cross_entropy<T>(Mat<const T>, std::span<const int64_t>, double, Mat<T>);                     \
  template void audio_frames<T>(std::span<const int64_t>, int64_t, Mat<T>);                                       \
  template void filterbank_init<T>(int64_t, int64_t, double, T*);                                                 \
  template void log_power_forward<T>(Mat<const T>, Mat<T>);                                                        \
  template void log_power_backward<T>(Mat<const T>, Mat<const T>, Mat<T>);                                           \
  template void center_columns<T>(Mat<T>);
LONGSEQ_INSTANTIATE(float)
LONGSEQ_INSTANTIATE(double)
#undef LONGSEQ_INSTANTIATE

}  // namespace longseq::train
