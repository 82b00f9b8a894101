// FFT long convolution forward and backward for training, in the precision of T (FFTW float or
// double): the backward's two correlations (input and filter gradients) are one spectrum product
// each with a conjugate, so the whole op stays O(L log L) per channel. Channels are independent
// and processed in fixed blocks, so results do not depend on the thread count.
#include "core/ops/fft_conv.h"
#include "core/train/grad_ops.h"

#include "core/error.h"
#include "core/threads.h"

#include <fftw3.h>

#include <algorithm>
#include <complex>
#include <map>
#include <vector>

namespace longseq::train {

namespace {

template <class T>
struct Fftw;

template <>
struct Fftw<float> {
  using Plan = fftwf_plan;
  using Complex = fftwf_complex;
  static Plan r2c(int n, float* in, Complex* out) { return fftwf_plan_dft_r2c_1d(n, in, out, FFTW_ESTIMATE); }
  static Plan c2r(int n, Complex* in, float* out) { return fftwf_plan_dft_c2r_1d(n, in, out, FFTW_ESTIMATE); }
  static void destroy(Plan p) { fftwf_destroy_plan(p); }
  static void run(Plan p, float* in, Complex* out) { fftwf_execute_dft_r2c(p, in, out); }
  static void run(Plan p, Complex* in, float* out) { fftwf_execute_dft_c2r(p, in, out); }
};

template <>
struct Fftw<double> {
  using Plan = fftw_plan;
  using Complex = fftw_complex;
  static Plan r2c(int n, double* in, Complex* out) { return fftw_plan_dft_r2c_1d(n, in, out, FFTW_ESTIMATE); }
  static Plan c2r(int n, Complex* in, double* out) { return fftw_plan_dft_c2r_1d(n, in, out, FFTW_ESTIMATE); }
  static void destroy(Plan p) { fftw_destroy_plan(p); }
  static void run(Plan p, double* in, Complex* out) { fftw_execute_dft_r2c(p, in, out); }
  static void run(Plan p, Complex* in, double* out) { fftw_execute_dft_c2r(p, in, out); }
};

template <class T>
struct Buffer {  // FFTW-aligned (the same in both precisions), so plans made on other buffers apply
  explicit Buffer(size_t n) : p(static_cast<T*>(fftw_malloc(n * sizeof(T)))) {
    LS_CHECK(p != nullptr, "out of memory for an FFT buffer of {} elements", n);
  }
  ~Buffer() { fftw_free(p); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T* p;
};

template <class T>
struct Plans {
  typename Fftw<T>::Plan r2c, c2r;
};

// One pair of plans per size, kept for the process and returned at exit.
template <class T>
struct PlanCache {
  std::map<int64_t, Plans<T>> plans;
  ~PlanCache() {
    for (auto& [n, p] : plans) {
      Fftw<T>::destroy(p.r2c);
      Fftw<T>::destroy(p.c2r);
    }
  }
};

template <class T>
Plans<T> plans_for(int64_t n) {
  std::mutex& planner = fftw_planner_mutex();  // first: outlives the cache (see fft_conv.h)
  static PlanCache<T> holder;
  auto& cache = holder.plans;
  std::lock_guard<std::mutex> lock(planner);
  if (auto it = cache.find(n); it != cache.end()) return it->second;
  using C = typename Fftw<T>::Complex;
  Buffer<T> re{size_t(n)};
  Buffer<C> co{size_t(n / 2 + 1)};
  Plans<T> p{Fftw<T>::r2c(int(n), re.p, co.p), Fftw<T>::c2r(int(n), co.p, re.p)};
  LS_CHECK(p.r2c && p.c2r, "FFTW could not plan a transform of size {}", n);
  cache[n] = p;
  return p;
}

constexpr int64_t kChannelBlock = 8;

// Per-thread transform workspace for one channel at a time.
template <class T>
struct Work {
  using C = typename Fftw<T>::Complex;
  explicit Work(int64_t size) : n(size), re(static_cast<size_t>(size)), a(size_t(size / 2 + 1)), b(static_cast<size_t>(size / 2 + 1)), c(size_t(size / 2 + 1)) {}
  // Spectrum of column `col` of m, zero-padded to n.
  void spectrum(const Plans<T>& p, Mat<const T> m, int64_t col, Buffer<C>& out) {
    std::fill(re.p, re.p + n, T(0));
    for (int64_t t = 0; t < m.rows; ++t) re.p[t] = m.at(t, col);
    Fftw<T>::run(p.r2c, re.p, out.p);
  }
  // Adds scale * ifft(x * (conj ? conj(y) : y))[t] to column col of out for t < out.rows.
  void product_to(const Plans<T>& p, const Buffer<C>& x, const Buffer<C>& y, bool conj, Mat<T> out, int64_t col,
                  bool accumulate) {
    const int64_t nc = n / 2 + 1;
    for (int64_t f = 0; f < nc; ++f) {
      const T xr = x.p[f][0], xi = x.p[f][1], yr = y.p[f][0], yi = conj ? -y.p[f][1] : y.p[f][1];
      c.p[f][0] = xr * yr - xi * yi;
      c.p[f][1] = xr * yi + xi * yr;
    }
    Fftw<T>::run(p.c2r, c.p, re.p);
    const T scale = T(1) / T(n);
    for (int64_t t = 0; t < out.rows; ++t) {
      T& o = out.at(t, col);
      o = (accumulate ? o : T(0)) + re.p[t] * scale;
    }
  }
  int64_t n;
  Buffer<T> re;
  Buffer<C> a, b, c;
};

int64_t fft_size(int64_t L) { return fft_fast_size(std::max<int64_t>(2 * L - 1, 2)); }

}  // namespace

template <class T>
void fft_causal_conv_forward(Mat<const T> u, Mat<const T> k, Mat<T> y) {
  const int64_t n = fft_size(u.rows);
  const Plans<T> p = plans_for<T>(n);
  for_blocks(u.cols, kChannelBlock, [&](int64_t c0, int64_t nc, int) {
    Work<T> w(n);
    for (int64_t c = c0; c < c0 + nc; ++c) {
      w.spectrum(p, u, c, w.a);
      w.spectrum(p, k, c, w.b);
      w.product_to(p, w.a, w.b, false, y, c, false);
    }
  });
}

template <class T>
void fft_causal_conv_backward(Mat<const T> u, Mat<const T> k, Mat<const T> dy, Mat<T>* du, Mat<T>* dk) {
  const int64_t n = fft_size(u.rows);
  const Plans<T> p = plans_for<T>(n);
  for_blocks(u.cols, kChannelBlock, [&](int64_t c0, int64_t nc, int) {
    Work<T> w(n);
    for (int64_t c = c0; c < c0 + nc; ++c) {
      w.spectrum(p, dy, c, w.a);
      if (du) {  // du[t] = sum_s dy[t + s] k[s]
        w.spectrum(p, k, c, w.b);
        w.product_to(p, w.a, w.b, true, *du, c, true);
      }
      if (dk) {  // dk[s] = sum_t dy[t + s] u[t]
        w.spectrum(p, u, c, w.b);
        w.product_to(p, w.a, w.b, true, *dk, c, true);
      }
    }
  });
}

template void fft_causal_conv_forward<float>(Mat<const float>, Mat<const float>, Mat<float>);
template void fft_causal_conv_forward<double>(Mat<const double>, Mat<const double>, Mat<double>);
template void fft_causal_conv_backward<float>(Mat<const float>, Mat<const float>, Mat<const float>, Mat<float>*, Mat<float>*);
template void fft_causal_conv_backward<double>(Mat<const double>, Mat<const double>, Mat<const double>, Mat<double>*,
                                               Mat<double>*);

}  // namespace longseq::train
