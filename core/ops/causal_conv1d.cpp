// The causal depthwise conv of ops.h. float runs token rows with channels in SIMD lanes (x is
// token-major, often a column slice of in_proj's output), in row blocks over threads; double runs
// the plain per-channel sum, which is also the backward's recomputation. Both read history rows
// through one function, so the state's layout is written once.
#include "core/ops/ops.h"

#include "core/ops/simd.h"
#include "core/threads.h"
#include "kernels/activations.h"

#include <algorithm>
#include <type_traits>
#include <vector>

namespace longseq::ops {

namespace {

constexpr int64_t kChannelBlock = 16;  // channels per parallel block (scalar path, backward)
constexpr int64_t kRowBlock = 64;      // rows per parallel block (SIMD path)

// Row p of the input (p < 0: the state's row W + p, or null for zeros).
template <class T>
const T* input_row(const ConvArgs<T>& a, int64_t p) {
  if (p >= 0) return a.x.row(p);
  return a.state ? a.state + (a.W + p) * a.x.cols : nullptr;
}

template <class T>
T conv_pre(const ConvArgs<T>& a, int64_t t, int64_t c) {
  T acc = a.b ? a.b[c] : T(0);
  for (int64_t k = 0; k < a.W; ++k)
    if (const T* r = input_row(a, t - (a.W - 1) + k)) acc += a.w[c * a.W + k] * r[c];
  return acc;
}

// Rows [t0, t1) with channels in SIMD lanes; wt is the weight transposed to (W, D), so tap k's
// weights are contiguous across the lanes (w itself is (D, W): a stride-W gather per lane, which at
// StripedHyena's 128 taps cost more than the arithmetic).
template <bool kSilu>
void conv_rows_simd(const ConvArgs<float>& a, const float* wt, Mat<float> out, int64_t t0, int64_t t1) {
  const int64_t D = a.x.cols, W = a.W;
  for (int64_t t = t0; t < t1; ++t) {
    float* o = out.row(t);
    for (int64_t c = 0; c < D; ++c) o[c] = a.b ? a.b[c] : 0.0f;
    for (int64_t k = 0; k < W; ++k) {
      const float* r = input_row(a, t - (W - 1) + k);
      if (!r) continue;
      const float* wk = wt + k * D;
#pragma omp simd
      for (int64_t c = 0; c < D; ++c) o[c] += wk[c] * r[c];
    }
    if constexpr (kSilu) {
      int64_t c = 0;
      for (; c + simd::kLanes <= D; c += simd::kLanes) simd::store(o + c, simd::silu(simd::load(o + c)));
      for (; c < D; ++c) o[c] = silu(o[c]);
    }
  }
}

// The state becomes the last W rows of (state, x); ascending, so a row is read before it is overwritten.
template <class T>
void advance_state(const ConvArgs<T>& a) {
  const int64_t L = a.x.rows, D = a.x.cols;
  for (int64_t r = 0; r < a.W; ++r) {
    const int64_t src = r + L;
    const T* from = src < a.W ? a.state + src * D : a.x.row(src - a.W);
    std::copy(from, from + D, a.state + r * D);
  }
}

}  // namespace

template <class T>
void causal_conv1d_forward(const ConvArgs<T>& a, Mat<T> out) {
  const int64_t L = a.x.rows;
  if constexpr (std::is_same_v<T, float>) {
    const int64_t D = a.x.cols, W = a.W, blocks = (L + kRowBlock - 1) / kRowBlock;
    std::vector<float> wt(static_cast<size_t>(W * D));
    for (int64_t c = 0; c < D; ++c)
      for (int64_t k = 0; k < W; ++k) wt[size_t(k * D + c)] = a.w[c * W + k];
#pragma omp parallel for schedule(static) if (L * a.x.cols > 65536)
    for (int64_t k = 0; k < blocks; ++k) {
      const int64_t t0 = k * kRowBlock, t1 = std::min(L, t0 + kRowBlock);
      a.silu ? conv_rows_simd<true>(a, wt.data(), out, t0, t1) : conv_rows_simd<false>(a, wt.data(), out, t0, t1);
    }
  } else {
    for_blocks(a.x.cols, kChannelBlock, [&](int64_t c0, int64_t n, int) {
      for (int64_t t = 0; t < L; ++t)
        for (int64_t c = c0; c < c0 + n; ++c) {
          const T p = conv_pre(a, t, c);
          out.at(t, c) = a.silu ? p / (T(1) + std::exp(-p)) : p;
        }
    });
  }
  if (a.state) advance_state(a);
}

template <class T>
void causal_conv1d_backward(const ConvArgs<T>& a, Mat<const T> dout, Mat<T> dx, T* dw, T* db, T* dstate) {
  const int64_t D = a.x.cols, W = a.W;
  for_blocks(D, kChannelBlock, [&](int64_t c0, int64_t n, int) {
    std::vector<double> sw(static_cast<size_t>(W));
    for (int64_t c = c0; c < c0 + n; ++c) {
      double sb = 0;
      std::fill(sw.begin(), sw.end(), 0.0);
      for (int64_t t = 0; t < a.x.rows; ++t) {
        T g = dout.at(t, c);
        if (a.silu) {
          const T p = conv_pre(a, t, c), s = T(1) / (T(1) + std::exp(-p));
          g *= s * (T(1) + p * (T(1) - s));
        }
        sb += double(g);
        for (int64_t k = 0; k < W; ++k) {
          const int64_t p = t - (W - 1) + k;
          if (const T* r = input_row(a, p)) sw[size_t(k)] += double(g * r[c]);
          if (p >= 0)
            dx.at(p, c) += g * a.w[c * W + k];
          else if (dstate)
            dstate[(W + p) * D + c] += g * a.w[c * W + k];
        }
      }
      if (db) db[c] += T(sb);
      if (dw)
        for (int64_t k = 0; k < W; ++k) dw[c * W + k] += T(sw[size_t(k)]);
    }
  });
}

template void causal_conv1d_forward<float>(const ConvArgs<float>&, Mat<float>);
template void causal_conv1d_forward<double>(const ConvArgs<double>&, Mat<double>);
template void causal_conv1d_backward<float>(const ConvArgs<float>&, Mat<const float>, Mat<float>, float*, float*, float*);
template void causal_conv1d_backward<double>(const ConvArgs<double>&, Mat<const double>, Mat<double>, double*, double*, double*);

}  // namespace longseq::ops
