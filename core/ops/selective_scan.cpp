// The selective scan of ops.h. The plain per-channel recurrence (any precision) keeps the states at
// chunk starts for the backward; float inference, which keeps nothing, runs the SIMD path instead:
// channels in lanes, each state's recurrence in a register, polynomial exp2. Work is split over
// channel blocks only, so results do not depend on the thread count.
#include "core/ops/ops.h"

#include "core/ops/simd.h"
#include "core/threads.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

namespace longseq::ops {

namespace {

constexpr int64_t kChannelBlock = 16;  // channels per parallel block (plain path)

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

// out[n] = exp(dt * A[n]): the scan is exp-bound, so float uses the SIMD polynomial exp (relative
// error ~2e-7); double keeps libm for the finite-difference checks.
template <class T>
void decay_row(T dt, const T* A, int64_t N, T* out) {
  int64_t n = 0;
  if constexpr (std::is_same_v<T, float>)
    for (; n + simd::kLanes <= N; n += simd::kLanes) simd::store(out + n, simd::exp(simd::load(A + n) * dt));
  for (; n < N; ++n) out[n] = std::exp(dt * A[n]);
}

// SIMD path over channels [d0, d1) (a multiple of kLanes), in blocks of kT tokens. Token blocks are
// the outer loop so that the rows of u, delta, z and y a block touches (kT rows of the thread's
// channel range) stay in L2 across its channel blocks; rows are D floats apart, so walking one
// 16-channel column down the whole sequence would miss on every token. Within a block, dt and dt*u
// are computed once, then for each state n the recurrence runs along the tokens with h_n in a
// register: exp2 calls of different tokens are independent and only one FMA per token is on the
// critical path (keeping all N states in registers instead spills at N = 16).
template <int kN>
void scan_range_simd(const ScanArgs<float>& a, Mat<float> out, int64_t N_rt, int64_t d0, int64_t d1) {
  using namespace simd;
  constexpr int64_t kT = 64;
  const int64_t L = a.u.rows, N = kN > 0 ? kN : N_rt;
  const int64_t blocks = (d1 - d0) / kLanes;
  std::vector<vf> h(static_cast<size_t>(blocks * N)), A2(static_cast<size_t>(blocks * N));
  for (int64_t k = 0; k < blocks; ++k)
    for (int64_t n = 0; n < N; ++n)
      for (int l = 0; l < kLanes; ++l) {
        const int64_t d = d0 + k * kLanes + l;
        A2[size_t(k * N + n)][l] = a.A[d * N + n] * kLog2e;  // exp(dt*A) = exp2(dt*A*log2(e))
        h[size_t(k * N + n)][l] = a.state ? a.state[d * N + n] : 0.0f;
      }
  vf dt[kT], du[kT], y[kT];
  for (int64_t t0 = 0; t0 < L; t0 += kT) {
    const int64_t nt = std::min(kT, L - t0);
    for (int64_t k = 0; k < blocks; ++k) {
      const int64_t dc = d0 + k * kLanes;
      const vf Dv = a.Dskip ? load(a.Dskip + dc) : splat(0.0f);
      const vf bias = a.delta_bias ? load(a.delta_bias + dc) : splat(0.0f);
      for (int64_t t = 0; t < nt; ++t) {
        const vf u = load(a.u.row(t0 + t) + dc);
        vf d = load(a.delta.row(t0 + t) + dc) + bias;
        if (a.softplus) d = simd::softplus(d);
        dt[t] = d;
        du[t] = d * u;
        y[t] = Dv * u;
      }
      vf* hk = h.data() + k * N;
      const vf* ak = A2.data() + k * N;
      for (int64_t n = 0; n < N; ++n) {
        vf hn = hk[n];
        const vf an = ak[n];
        for (int64_t t = 0; t < nt; ++t) {
          hn = exp2(dt[t] * an) * hn + du[t] * a.B.at(t0 + t, n);
          y[t] += hn * a.C.at(t0 + t, n);
        }
        hk[n] = hn;
      }
      for (int64_t t = 0; t < nt; ++t) {
        vf o = y[t];
        if (a.z.data) o *= simd::silu(load(a.z.row(t0 + t) + dc));
        store(out.row(t0 + t) + dc, o);
      }
    }
  }
  if (a.state)
    for (int64_t k = 0; k < blocks; ++k)
      for (int64_t n = 0; n < N; ++n)
        for (int l = 0; l < kLanes; ++l) a.state[(d0 + k * kLanes + l) * N + n] = h[size_t(k * N + n)][l];
}

// Channels [d0, d1) of the plain recurrence, saving chunk-start states when `saved` is given.
template <class T>
void scan_range_plain(const ScanArgs<T>& a, Mat<T> out, T* saved, int64_t d0, int64_t d1) {
  const int64_t L = a.u.rows, D = a.u.cols, N = a.B.cols;
  std::vector<T> h(static_cast<size_t>(N)), decay(static_cast<size_t>(N));
  for (int64_t d = d0; d < d1; ++d) {
    for (int64_t n = 0; n < N; ++n) h[size_t(n)] = a.state ? a.state[d * N + n] : T(0);
    const T* A = a.A + d * N;
    for (int64_t t = 0; t < L; ++t) {
      if (saved && t % a.chunk == 0) std::copy(h.begin(), h.end(), saved + ((t / a.chunk) * D + d) * N);
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
    if (saved && L == 0) std::copy(h.begin(), h.end(), saved + d * N);
    if (a.state) std::copy(h.begin(), h.end(), a.state + d * N);
  }
}

using SimdRange = void (*)(const ScanArgs<float>&, Mat<float>, int64_t, int64_t, int64_t);

SimdRange pick_simd_range(int64_t N) {
  switch (N) {
    case 4: return &scan_range_simd<4>;
    case 8: return &scan_range_simd<8>;
    case 16: return &scan_range_simd<16>;
    default: return &scan_range_simd<0>;
  }
}

// Float inference: contiguous channel groups (one per thread) in SIMD lanes, the channels past the
// last whole lane group (fewer than kLanes) on the plain path. The split changes which thread
// computes a channel, never how.
void scan_simd(const ScanArgs<float>& a, Mat<float> out) {
  constexpr int64_t kW = simd::kLanes;
  const int64_t D = a.u.cols, N = a.B.cols, blocks = D / kW;
  const SimdRange range = pick_simd_range(N);
  const int64_t groups = std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), blocks));
#pragma omp parallel for schedule(static, 1)
  for (int64_t g = 0; g <= groups; ++g) {
    if (g == groups) {
      if (blocks * kW < D) scan_range_plain<float>(a, out, nullptr, blocks * kW, D);
      continue;
    }
    const int64_t k0 = blocks * g / groups, k1 = blocks * (g + 1) / groups;
    if (k1 > k0) range(a, out, N, k0 * kW, k1 * kW);
  }
}

}  // namespace

int64_t scan_chunks(int64_t L, int64_t chunk) { return std::max<int64_t>(1, (L + chunk - 1) / chunk); }

template <class T>
void selective_scan_forward(const ScanArgs<T>& a, Mat<T> y, T* saved) {
  if constexpr (std::is_same_v<T, float>)
    if (!saved && a.B.cols <= 256) return scan_simd(a, y);
  for_blocks(a.u.cols, kChannelBlock, [&](int64_t c0, int64_t nc, int) { scan_range_plain(a, y, saved, c0, c0 + nc); });
}

template <class T>
void selective_scan_backward(const ScanArgs<T>& a, const T* chunk_states, Mat<const T> dout, const ScanGrads<T>& g) {
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

template void selective_scan_forward<float>(const ScanArgs<float>&, Mat<float>, float*);
template void selective_scan_forward<double>(const ScanArgs<double>&, Mat<double>, double*);
template void selective_scan_backward<float>(const ScanArgs<float>&, const float*, Mat<const float>, const ScanGrads<float>&);
template void selective_scan_backward<double>(const ScanArgs<double>&, const double*, Mat<const double>, const ScanGrads<double>&);

}  // namespace longseq::ops
