// The causal long convolution of ops.h through FFTW, in T's precision. Training transforms one
// channel at a time (token-major activations; the backward's two correlations are one spectrum
// product each with a conjugate, so the op stays O(L log L) per channel). Inference on long windows
// works on channel-major rows with transforms batched over kBatch rows and the filters' spectra made
// once per length. Channels are processed in blocks fixed by the sizes, so results do not depend
// on the thread count; a fixed batch keeps FFTW's choice of algorithm (and the rounding) fixed too.
#include "core/ops/ops.h"

#include "core/error.h"
#include "core/threads.h"
#include "kernels/fft_size.h"

#include <fftw3.h>

#include <algorithm>
#include <map>
#include <memory>
#include <vector>

namespace longseq::ops {

namespace {

constexpr int kBatch = 4;              // rows per batched inference transform
constexpr int64_t kChannelBlock = 8;   // channels per parallel block (training)

// FFTW's API in T's precision (its float functions carry an f after the prefix).
template <class T>
struct Fftw;
#define LONGSEQ_FFTW(T, X)                                                                                      \
  template <>                                                                                                   \
  struct Fftw<T> {                                                                                              \
    using Plan = X##_plan;                                                                                      \
    using Complex = X##_complex;                                                                                \
    static Plan r2c(int n, int howmany, T* in, Complex* out) {                                                  \
      return X##_plan_many_dft_r2c(1, &n, howmany, in, nullptr, 1, n, out, nullptr, 1, n / 2 + 1, FFTW_ESTIMATE); \
    }                                                                                                           \
    static Plan c2r(int n, int howmany, Complex* in, T* out) {                                                  \
      return X##_plan_many_dft_c2r(1, &n, howmany, in, nullptr, 1, n / 2 + 1, out, nullptr, 1, n, FFTW_ESTIMATE); \
    }                                                                                                           \
    static void destroy(Plan p) { X##_destroy_plan(p); }                                                        \
    static void run(Plan p, T* in, Complex* out) { X##_execute_dft_r2c(p, in, out); }                           \
    static void run(Plan p, Complex* in, T* out) { X##_execute_dft_c2r(p, in, out); }                           \
  };
LONGSEQ_FFTW(float, fftwf)
LONGSEQ_FFTW(double, fftw)
#undef LONGSEQ_FFTW

// FFTW-aligned arrays (the same alignment everywhere, so plans made on other arrays apply).
template <class T>
struct Buffer {
  explicit Buffer(size_t n) : p(static_cast<T*>(fftw_malloc(std::max<size_t>(n, 1) * sizeof(T)))) {
    if (!p) throw std::bad_alloc();
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

// One pair of plans per (size, batch), made under the planner lock and kept for the process; they
// are executed concurrently through the new-array interface.
template <class T>
Plans<T> plans_for(int64_t n, int howmany) {
  struct Cache {
    std::map<std::pair<int64_t, int>, Plans<T>> plans;
    ~Cache() {
      for (auto& [key, p] : plans) Fftw<T>::destroy(p.r2c), Fftw<T>::destroy(p.c2r);
    }
  };
  std::mutex& planner = fftw_planner_mutex();  // first: outlives the cache (see ops.h)
  static Cache cache;
  const std::lock_guard lock(planner);
  if (auto it = cache.plans.find({n, howmany}); it != cache.plans.end()) return it->second;
  Buffer<T> re{size_t(howmany * n)};
  Buffer<typename Fftw<T>::Complex> co{size_t(howmany * (n / 2 + 1))};
  Plans<T> p{Fftw<T>::r2c(int(n), howmany, re.p, co.p), Fftw<T>::c2r(int(n), howmany, co.p, re.p)};
  LS_CHECK(p.r2c && p.c2r, "FFTW could not plan a transform of size {}", n);
  cache.plans[{n, howmany}] = p;
  return p;
}

// x[f] = x[f] * (conj ? conj(y[f]) : y[f]) for interleaved complex arrays, written out so that it
// vectorizes (std::complex's operator* goes through __mulsc3 for its C99 infinity rules).
template <class T>
void multiply_spectra(T* __restrict__ x, const T* __restrict__ y, int64_t count, bool conj = false) {
  const T s = conj ? T(-1) : T(1);
  for (int64_t f = 0; f < count; ++f) {
    const T xr = x[2 * f], xi = x[2 * f + 1], yr = y[2 * f], yi = s * y[2 * f + 1];
    x[2 * f] = xr * yr - xi * yi;
    x[2 * f + 1] = xr * yi + xi * yr;
  }
}

// Per-thread workspace of the training path, one channel at a time.
template <class T>
struct Work {
  using C = typename Fftw<T>::Complex;
  explicit Work(int64_t size)
      : n(size), p(plans_for<T>(size, 1)), re(size_t(size)), a(size_t(size / 2 + 1)), b(size_t(size / 2 + 1)), c(size_t(size / 2 + 1)) {}
  // Spectrum of column `col` of m, zero-padded to n.
  void spectrum(Mat<const T> m, int64_t col, Buffer<C>& out) {
    std::fill(re.p, re.p + n, T(0));
    for (int64_t t = 0; t < m.rows; ++t) re.p[t] = m.at(t, col);
    Fftw<T>::run(p.r2c, re.p, out.p);
  }
  // Column col of out (+)= ifft(a * (conj ? conj(b) : b))[t] for t < out.rows.
  void product_to(bool conj, Mat<T> out, int64_t col, bool accumulate) {
    std::copy_n(&a.p[0][0], 2 * (n / 2 + 1), &c.p[0][0]);
    multiply_spectra(&c.p[0][0], &b.p[0][0], n / 2 + 1, conj);
    Fftw<T>::run(p.c2r, c.p, re.p);
    const T scale = T(1) / T(n);
    for (int64_t t = 0; t < out.rows; ++t) {
      T& o = out.at(t, col);
      o = (accumulate ? o : T(0)) + re.p[t] * scale;
    }
  }
  int64_t n;
  Plans<T> p;
  Buffer<T> re;
  Buffer<C> a, b, c;
};

// The calling thread's batched inference buffers for size n, kept between calls: a scorer runs
// thousands of windows of one length, and fresh buffers would be page-faulted in every time.
struct Scratch {
  explicit Scratch(int64_t size)
      : n(size), re(size_t(kBatch * size)), kre(size_t(kBatch * size)), co(size_t(kBatch * (size / 2 + 1))), kco(size_t(kBatch * (size / 2 + 1))) {}
  int64_t n;
  Buffer<float> re, kre;              // inputs' and filters' rows
  Buffer<fftwf_complex> co, kco;      // their spectra
};
Scratch& thread_scratch(int64_t n) {
  thread_local std::unique_ptr<Scratch> sc;
  if (!sc || sc->n != n) sc.reset(), sc = std::make_unique<Scratch>(n);
  return *sc;
}

// The spectra of rows [r0, r0 + kBatch) of m (zero rows past its end), each zero-padded to n, scaled.
void batch_spectrum(Mat<const float> m, int64_t r0, int64_t n, float* re, fftwf_complex* co, const Plans<float>& p, float scale) {
  for (int64_t j = 0; j < kBatch; ++j) {
    const int64_t len = r0 + j < m.rows ? m.cols : 0;
    if (len) std::copy_n(m.row(r0 + j), len, re + j * n);
    std::fill(re + j * n + len, re + (j + 1) * n, 0.0f);
  }
  Fftw<float>::run(p.r2c, re, co);
  float* c = &co[0][0];
  if (scale != 1.0f)
    for (int64_t f = 0; f < kBatch * (n / 2 + 1) * 2; ++f) c[f] *= scale;
}

}  // namespace

std::mutex& fftw_planner_mutex() {
  struct Planner {
    std::mutex mu;
    ~Planner() {
      fftwf_cleanup();
      fftw_cleanup();
    }
  };
  static Planner planner;
  return planner.mu;
}

int64_t fft_size(int64_t L) { return fft_fast_size(std::max<int64_t>(2 * L - 1, 2)); }

template <class T>
void fft_causal_conv_forward(Mat<const T> u, Mat<const T> k, Mat<T> y) {
  for_blocks(u.cols, kChannelBlock, [&](int64_t c0, int64_t nc, int) {
    Work<T> w(fft_size(u.rows));
    for (int64_t c = c0; c < c0 + nc; ++c) {
      w.spectrum(u, c, w.a);
      w.spectrum(k, c, w.b);
      w.product_to(false, y, c, false);
    }
  });
}

template <class T>
void fft_causal_conv_backward(Mat<const T> u, Mat<const T> k, Mat<const T> dy, Mat<T>* du, Mat<T>* dk) {
  for_blocks(u.cols, kChannelBlock, [&](int64_t c0, int64_t nc, int) {
    Work<T> w(fft_size(u.rows));
    for (int64_t c = c0; c < c0 + nc; ++c) {
      w.spectrum(dy, c, w.a);
      for (auto [grad, other] : {std::pair{du, k}, std::pair{dk, u}}) {  // du[t] = sum_s dy[t + s] k[s]; dk[s] = sum_t dy[t + s] u[t]
        if (!grad) continue;
        w.spectrum(other, c, w.b);
        w.product_to(true, *grad, c, true);
      }
    }
  });
}

int64_t fft_conv_block_channels(int64_t n, int64_t C) {
  // About 32 Mi floats of transform input per block: the whole model width for short windows,
  // 16 channels at a million tokens.
  const int64_t want = std::max<int64_t>(16, (int64_t(1) << 25) / n);
  const int64_t c = std::min(want, (C + kBatch - 1) / kBatch * kBatch);
  return (c + kBatch - 1) / kBatch * kBatch;
}

FilterSpectrum fft_filter_spectrum(Mat<const float> k) {
  const int64_t C = k.rows, L = k.cols, n = fft_size(L), nc = n / 2 + 1;
  FilterSpectrum s{L, n, AlignedVector<float>(size_t(C * nc * 2))};
  const Plans<float> plans = plans_for<float>(n, kBatch);
  const float scale = 1.0f / float(n);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t r0 = 0; r0 < C; r0 += kBatch) {
    Scratch& sc = thread_scratch(n);
    batch_spectrum(k, r0, n, sc.kre.p, sc.kco.p, plans, scale);
    std::copy_n(&sc.kco.p[0][0], std::min<int64_t>(kBatch, C - r0) * nc * 2, s.spec.data() + r0 * nc * 2);
  }
  return s;
}

void fft_conv_rows(Mat<float> v, const float* bias, const float* spectrum, Mat<const float> k) {
  const int64_t C = v.rows, L = v.cols, n = fft_size(L), nc = n / 2 + 1;
  const Plans<float> plans = plans_for<float>(n, kBatch);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t r0 = 0; r0 < C; r0 += kBatch) {
    Scratch& sc = thread_scratch(n);
    const int64_t rows = std::min<int64_t>(kBatch, C - r0);
    batch_spectrum(v, r0, n, sc.re.p, sc.co.p, plans, 1.0f);
    if (!spectrum) batch_spectrum(k, r0, n, sc.kre.p, sc.kco.p, plans, 1.0f / float(n));
    multiply_spectra(&sc.co.p[0][0], spectrum ? spectrum + r0 * nc * 2 : &sc.kco.p[0][0], rows * nc);
    Fftw<float>::run(plans.c2r, sc.co.p, sc.re.p);
    for (int64_t j = 0; j < rows; ++j) {
      float* r = v.row(r0 + j);
      const float b = bias ? bias[r0 + j] : 0.0f, *conv = sc.re.p + j * n;
      for (int64_t t = 0; t < L; ++t) r[t] = conv[t] + b * r[t];
    }
  }
}

template void fft_causal_conv_forward<float>(Mat<const float>, Mat<const float>, Mat<float>);
template void fft_causal_conv_forward<double>(Mat<const double>, Mat<const double>, Mat<double>);
template void fft_causal_conv_backward<float>(Mat<const float>, Mat<const float>, Mat<const float>, Mat<float>*, Mat<float>*);
template void fft_causal_conv_backward<double>(Mat<const double>, Mat<const double>, Mat<const double>, Mat<double>*,
                                               Mat<double>*);

}  // namespace longseq::ops
