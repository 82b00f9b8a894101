// The modal long filter of ops.h (StripedHyena 2's hcl): the recurrence that streams it, and the
// explicit filter with its backward for training's FFT schedule. The recurrence runs a block of
// channels at a time through every row, so the block's N states stay in registers/L1 while u and
// y stream through once; blocks are fixed by the sizes (same bits for any thread count). The state
// and the output's sum are double: with poles near 1 (time constants of thousands of tokens) a
// float state drifts by ~1e-6 relative over a window, 7x the official FFT path's error.
#include "core/ops/ops.h"
#include "core/threads.h"

#include <cmath>
#include <vector>

namespace longseq::ops {

namespace {
constexpr int64_t kChannelBlock = 16;
}  // namespace

template <class T>
void modal_scan(const ModalArgs<T>& a, Mat<T> y) {
  const int64_t L = a.u.rows, D = a.u.cols, N = a.N;
  for_blocks(D, kChannelBlock, [&](int64_t c0, int64_t n, int) {
    std::vector<double> S(static_cast<size_t>(n * N)), p(S.size()), R(S.size());
    for (int64_t i = 0; i < n * N; ++i) {
      S[size_t(i)] = a.state ? double(a.state[c0 * N + i]) : 0.0;
      p[size_t(i)] = std::exp(double(a.log_poles[c0 * N + i])), R[size_t(i)] = double(a.residues[c0 * N + i]);
    }
    for (int64_t t = 0; t < L; ++t) {
      const T* ur = a.u.row(t) + c0;
      T* yr = y.row(t) + c0;
      for (int64_t c = 0; c < n; ++c) {
        const double uc = double(ur[c]);
        double acc = a.Dskip ? double(a.Dskip[c0 + c]) * uc : 0.0;
        double* Sc = S.data() + c * N;
        const double *pc = p.data() + c * N, *Rc = R.data() + c * N;
#pragma omp simd reduction(+ : acc)
        for (int64_t s = 0; s < N; ++s) {
          Sc[s] = pc[s] * Sc[s] + uc;
          acc += Rc[s] * Sc[s];
        }
        yr[c] = T(a.gate.data ? double(a.gate.row(t)[c0 + c]) * acc : acc);
      }
    }
    if (a.state)
      for (int64_t i = 0; i < n * N; ++i) a.state[c0 * N + i] = T(S[size_t(i)]);
  });
}

template <class T>
void modal_filter(const T* log_poles, const T* residues, int64_t N, Mat<T> k) {
  const int64_t L = k.rows, D = k.cols;
  for_blocks(D, kChannelBlock, [&](int64_t c0, int64_t n, int) {
    for (int64_t c = c0; c < c0 + n; ++c) {
      std::vector<double> pw(static_cast<size_t>(N), 1.0), p(static_cast<size_t>(N));
      for (int64_t s = 0; s < N; ++s) p[size_t(s)] = std::exp(double(log_poles[c * N + s]));
      for (int64_t t = 0; t < L; ++t) {
        double acc = 0;
        for (int64_t s = 0; s < N; ++s) acc += double(residues[c * N + s]) * pw[size_t(s)], pw[size_t(s)] *= p[size_t(s)];
        k.at(t, c) = T(acc);
      }
    }
  });
}

template <class T>
void modal_filter_backward(const T* log_poles, const T* residues, int64_t N, Mat<const T> dk, T* dlog_poles, T* dresidues) {
  const int64_t L = dk.rows, D = dk.cols;
  for_blocks(D, kChannelBlock, [&](int64_t c0, int64_t n, int) {
    for (int64_t c = c0; c < c0 + n; ++c)
      for (int64_t s = 0; s < N; ++s) {
        const double p = std::exp(double(log_poles[c * N + s]));
        double pw = 1, sum = 0, tsum = 0;  // sum_t dk p^t, sum_t dk t p^t
        for (int64_t t = 0; t < L; ++t) {
          const double g = double(dk.at(t, c)) * pw;
          sum += g, tsum += double(t) * g;
          pw *= p;
        }
        if (dresidues) dresidues[c * N + s] += T(sum);
        if (dlog_poles) dlog_poles[c * N + s] += T(double(residues[c * N + s]) * tsum);
      }
  });
}

#define LONGSEQ_INSTANTIATE(T)                                                               \
  template void modal_scan<T>(const ModalArgs<T>&, Mat<T>);                                  \
  template void modal_filter<T>(const T*, const T*, int64_t, Mat<T>);                        \
  template void modal_filter_backward<T>(const T*, const T*, int64_t, Mat<const T>, T*, T*);
LONGSEQ_INSTANTIATE(float)
LONGSEQ_INSTANTIATE(double)
#undef LONGSEQ_INSTANTIATE

}  // namespace longseq::ops
