#include "core/ops/fft_conv.h"

#include "core/error.h"
#include "core/memory.h"

#include <fftw3.h>

#include <memory>
#include <algorithm>
#include <map>
#include <mutex>

namespace longseq {

namespace {

// Transforms are batched over this many contiguous rows; a fixed batch keeps FFTW's choice of
// algorithm (and so the rounding) independent of how blocks are split among threads.
constexpr int64_t kBatch = 4;

struct Plans {
  fftwf_plan r2c = nullptr, c2r = nullptr;
};

// FFTW's planner is not thread-safe; plans are made once per size under a lock and then executed
// concurrently through the new-array interface (all buffers share the 64-byte alignment).
// The cache lives for the process; its destructor returns the plans.
struct PlanCache {
  std::map<int64_t, Plans> plans;
  ~PlanCache() {
    for (auto& [n, p] : plans) {
      fftwf_destroy_plan(p.r2c);
      fftwf_destroy_plan(p.c2r);
    }
  }
};

Plans plans_for(int64_t n) {
  std::mutex& planner = fftw_planner_mutex();  // first: outlives the cache (see the header)
  static PlanCache cache_holder;
  std::lock_guard<std::mutex> lock(planner);
  auto& cache = cache_holder.plans;
  auto it = cache.find(n);
  if (it != cache.end()) return it->second;
  const int64_t nc = n / 2 + 1;
  auto* re = static_cast<float*>(tracked_alloc(size_t(kBatch * n) * 4));
  auto* co = static_cast<fftwf_complex*>(tracked_alloc(size_t(kBatch * nc) * 8));
  const int len = int(n);
  Plans p;
  p.r2c = fftwf_plan_many_dft_r2c(1, &len, int(kBatch), re, nullptr, 1, len, co, nullptr, 1, int(nc), FFTW_ESTIMATE);
  p.c2r = fftwf_plan_many_dft_c2r(1, &len, int(kBatch), co, nullptr, 1, int(nc), re, nullptr, 1, len, FFTW_ESTIMATE);
  tracked_free(re, size_t(kBatch * n) * 4);
  tracked_free(co, size_t(kBatch * nc) * 8);
  LS_CHECK(p.r2c && p.c2r, "FFTW could not plan a transform of size {}", n);
  cache[n] = p;
  return p;
}

bool channel_major(const Tensor& x) { return x.size(0) > 1 && x.stride(0) == 1; }

// Gathers columns [c0, c0 + cols) of x (L rows) into zero-padded rows of length n (missing columns
// past `cols` are zero rows).
void gather_rows(const Tensor& x, int64_t c0, int64_t cols, int64_t n, float* rows, int64_t nrows) {
  const int64_t L = x.size(0);
  if (channel_major(x)) {
    for (int64_t j = 0; j < cols; ++j) std::copy_n(x.data<float>() + (c0 + j) * x.stride(1), L, rows + j * n);
  } else {
    // Token-major walk: each source row is read once, contiguously, and scattered into the nrows
    // destination rows (reading one column down the whole sequence would miss cache on every token).
    const float* src = x.data<float>() + c0;
    for (int64_t t = 0; t < L; ++t) {
      const float* s = src + t * x.stride(0);
      for (int64_t j = 0; j < cols; ++j) rows[j * n + t] = s[j];
    }
  }
  for (int64_t j = 0; j < nrows; ++j) {
    float* r = rows + j * n;
    if (j >= cols) std::fill(r, r + L, 0.0f);
    std::fill(r + L, r + n, 0.0f);
  }
}

// y[t, c0 + j] = rows[j][t] + bias[c0 + j] * u[t, c0 + j] for j < cols (u may alias y).
void scatter_rows(const float* rows, int64_t n, const Tensor& u, const float* bias, int64_t c0, int64_t cols, const Tensor& y) {
  const int64_t L = y.size(0);
  if (channel_major(y) && channel_major(u)) {
    for (int64_t j = 0; j < cols; ++j) {
      const float b = bias ? bias[c0 + j] : 0.0f;
      const float* r = rows + j * n;
      const float* uc = u.data<float>() + (c0 + j) * u.stride(1);
      float* yc = y.data<float>() + (c0 + j) * y.stride(1);
      for (int64_t t = 0; t < L; ++t) yc[t] = r[t] + b * uc[t];
    }
    return;
  }
  for (int64_t t = 0; t < L; ++t) {  // token-major, as in gather_rows
    const float* ut = u.data<float>() + t * u.stride(0) + c0 * u.stride(1);
    float* yt = y.data<float>() + t * y.stride(0) + c0 * y.stride(1);
    for (int64_t j = 0; j < cols; ++j)
      yt[j * y.stride(1)] = rows[j * n + t] + (bias ? bias[c0 + j] : 0.0f) * ut[j * u.stride(1)];
  }
}

// u[f] *= k[f] for interleaved complex arrays, written out so that it vectorizes (std::complex's
// operator* goes through __mulsc3 for its C99 infinity rules).
void multiply_spectra(float* __restrict__ u, const float* __restrict__ k, int64_t count) {
  for (int64_t f = 0; f < count; ++f) {
    const float ur = u[2 * f], ui = u[2 * f + 1], kr = k[2 * f], ki = k[2 * f + 1];
    u[2 * f] = ur * kr - ui * ki;
    u[2 * f + 1] = ur * ki + ui * kr;
  }
}

struct Scratch {
  int64_t n, nc;
  float* re;
  fftwf_complex* co;
  float* kre;
  fftwf_complex* kco;
  explicit Scratch(int64_t n_) : n(n_), nc(n_ / 2 + 1) {
    re = static_cast<float*>(tracked_alloc(size_t(kBatch * n) * 4));
    co = static_cast<fftwf_complex*>(tracked_alloc(size_t(kBatch * nc) * 8));
    kre = static_cast<float*>(tracked_alloc(size_t(kBatch * n) * 4));
    kco = static_cast<fftwf_complex*>(tracked_alloc(size_t(kBatch * nc) * 8));
  }
  ~Scratch() {
    tracked_free(re, size_t(kBatch * n) * 4);
    tracked_free(co, size_t(kBatch * nc) * 8);
    tracked_free(kre, size_t(kBatch * n) * 4);
    tracked_free(kco, size_t(kBatch * nc) * 8);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

// The calling thread's transform buffers for size n, kept between calls: a scorer runs thousands of
// windows of one length, and fresh buffers would be page-faulted in every time.
Scratch& thread_scratch(int64_t n) {
  thread_local std::unique_ptr<Scratch> sc;
  if (!sc || sc->n != n) {
    sc.reset();
    sc = std::make_unique<Scratch>(n);
  }
  return *sc;
}

void check_lc(const Tensor& t, const char* name, int64_t L, int64_t C) {
  LS_CHECK(t.defined() && t.dtype() == DType::F32 && t.dim() == 2 && t.size(0) == L && t.size(1) == C &&
               (C <= 1 || t.stride(1) == 1 || t.stride(0) == 1),
           "fft_conv: {} must be F32 ({}, {}) with a unit stride, got {}", name, L, C, t.describe());
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


int64_t fft_conv_block_channels(int64_t n, int64_t C) {
  // About 32 Mi floats of transform input per block: the whole model width for short windows,
  // 16 channels at a million tokens.
  const int64_t want = std::max<int64_t>(16, (int64_t(1) << 25) / n);
  const int64_t c = std::min(want, (C + kBatch - 1) / kBatch * kBatch);
  return (c + kBatch - 1) / kBatch * kBatch;
}

FilterSpectrum fft_filter_spectrum(const Tensor& k) {
  LS_CHECK(k.dim() == 2 && k.dtype() == DType::F32 && (k.size(1) <= 1 || k.stride(1) == 1 || k.stride(0) == 1),
           "fft_filter_spectrum: k must be F32 (L, C) with a unit stride, got {}", k.describe());
  const int64_t L = k.size(0), C = k.size(1);
  FilterSpectrum s{L, fft_fast_size(std::max<int64_t>(2 * L - 1, 2)), {}};
  const int64_t nc = s.n / 2 + 1;
  s.spec = Tensor::empty({C, nc, 2});
  const Plans plans = plans_for(s.n);
  const int64_t batches = (C + kBatch - 1) / kBatch;
  const float scale = 1.0f / float(s.n);
#pragma omp parallel
  {
    Scratch& sc = thread_scratch(s.n);
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < batches; ++b) {
      const int64_t c0 = b * kBatch, cols = std::min(kBatch, C - c0);
      gather_rows(k, c0, cols, s.n, sc.kre, kBatch);
      fftwf_execute_dft_r2c(plans.r2c, sc.kre, sc.kco);
      for (int64_t j = 0; j < cols; ++j) {
        float* dst = s.spec.data<float>() + (c0 + j) * nc * 2;
        const float* src = &sc.kco[j * nc][0];
        for (int64_t f = 0; f < 2 * nc; ++f) dst[f] = src[f] * scale;
      }
    }
  }
  return s;
}

void fft_conv(const FftConvArgs& a) {
  LS_CHECK(a.u.defined() && a.u.dim() == 2, "fft_conv: u must be (L, C), got {}", a.u.describe());
  const int64_t L = a.u.size(0), C = a.u.size(1);
  check_lc(a.u, "u", L, C);
  check_lc(a.y, "y", L, C);
  LS_CHECK((a.spectrum != nullptr) != a.k.defined(), "fft_conv: give exactly one of spectrum or k");
  if (a.k.defined()) check_lc(a.k, "k", L, C);
  if (a.spectrum)
    LS_CHECK(a.spectrum->L == L && a.spectrum->spec.size(0) == C, "fft_conv: spectrum is for L={} C={}, input is L={} C={}",
             a.spectrum->L, a.spectrum->spec.size(0), L, C);
  if (a.bias.defined())
    LS_CHECK(a.bias.dim() == 1 && a.bias.size(0) == C && a.bias.is_contiguous(), "fft_conv: bias must be [{}], got {}", C,
             a.bias.describe());
  if (L == 0 || C == 0) return;
  const int64_t n = a.spectrum ? a.spectrum->n : fft_fast_size(std::max<int64_t>(2 * L - 1, 2)), nc = n / 2 + 1;
  const Plans plans = plans_for(n);
  const int64_t block = fft_conv_block_channels(n, C);
  const float scale = 1.0f / float(n);
  for (int64_t c0 = 0; c0 < C; c0 += block) {
    const int64_t cols = std::min(block, C - c0);
    const int64_t batches = (cols + kBatch - 1) / kBatch;
#pragma omp parallel
    {
      Scratch& sc = thread_scratch(n);
#pragma omp for schedule(dynamic, 1)
      for (int64_t b = 0; b < batches; ++b) {
        const int64_t cb = c0 + b * kBatch, nb = std::min(kBatch, c0 + cols - cb);
        gather_rows(a.u, cb, nb, n, sc.re, kBatch);
        fftwf_execute_dft_r2c(plans.r2c, sc.re, sc.co);
        const float* K;
        if (a.spectrum) {
          K = a.spectrum->spec.data<float>() + cb * nc * 2;
        } else {
          gather_rows(a.k, cb, nb, n, sc.kre, kBatch);
          fftwf_execute_dft_r2c(plans.r2c, sc.kre, sc.kco);
          float* kc = &sc.kco[0][0];
          for (int64_t f = 0; f < 2 * nb * nc; ++f) kc[f] *= scale;
          K = kc;
        }
        multiply_spectra(&sc.co[0][0], K, nb * nc);
        fftwf_execute_dft_c2r(plans.c2r, sc.co, sc.re);
        scatter_rows(sc.re, n, a.u, a.bias.defined() ? a.bias.data<float>() : nullptr, cb, nb, a.y);
      }
    }
  }
}

}  // namespace longseq
