// Host entries of the FFT long convolution (kernels/fft_conv.cuh) with cuFFT: R2C / C2R plans of
// n-point rows cached per (n, rows) for the process (plans hold their work areas, so building one
// per call would allocate and free every time); channel blocks sized so the working set stays
// within a quarter of the free device memory (at most 2 GiB), whatever L is.
#include "kernels/fft_size.h"
#include "kernels/cuda_check.h"
#include "kernels/device_util.h"
#include "kernels/fft_conv.cuh"

#include <cufft.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <utility>

#define CUFFT_CHECK(call)                                                                                               \
  do {                                                                                                                  \
    const cufftResult r_ = (call);                                                                                      \
    if (r_ != CUFFT_SUCCESS) ::longseq::fail("cuFFT error {} in {} at {}:{}", int(r_), #call, __FILE__, __LINE__);      \
  } while (0)

namespace longseq::cuda {

namespace {

// Plans per (n, rows, direction); never destroyed before exit (the driver may be gone by then).
class PlanCache {
 public:
  cufftHandle get(int64_t n, int64_t rows, bool forward) {
    const std::lock_guard lock(mutex_);
    const auto key = std::tuple{n, rows, forward};
    if (auto it = plans_.find(key); it != plans_.end()) return it->second;
    cufftHandle plan = 0;
    int size = int(n);
    CUFFT_CHECK(cufftPlanMany(&plan, 1, &size, nullptr, 1, int(forward ? n : n / 2 + 1), nullptr, 1, int(forward ? n / 2 + 1 : n),
                              forward ? CUFFT_R2C : CUFFT_C2R, int(rows)));
    plans_.emplace(key, plan);
    return plan;
  }

 private:
  std::mutex mutex_;
  std::map<std::tuple<int64_t, int64_t, bool>, cufftHandle> plans_;
};

PlanCache& plan_cache() {
  static PlanCache* cache = new PlanCache;  // leaked on purpose: see the class comment
  return *cache;
}

struct CufftRunner {
  int64_t n;
  void forward(const float* time, CFloat* spec, int64_t rows) const {
    CUFFT_CHECK(cufftExecR2C(plan_cache().get(n, rows, true), const_cast<float*>(time), reinterpret_cast<cufftComplex*>(spec)));
  }
  void inverse(CFloat* spec, float* time, int64_t rows) const {
    CUFFT_CHECK(cufftExecC2R(plan_cache().get(n, rows, false), reinterpret_cast<cufftComplex*>(spec), time));
  }
};

// Channels per block for B rows of n-point transforms within the memory budget.
int64_t channel_block(int64_t batch, int64_t channels, int64_t n) {
  size_t free_bytes = 0, total = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
  const int64_t budget = std::min<int64_t>(int64_t(free_bytes / 4), int64_t(2) << 30) / int64_t(sizeof(float));
  const int64_t per_channel = fft_conv_scratch(batch, 1, n);
  LS_CHECK(per_channel <= budget, "fft_conv: one channel of B={} rows at FFT size {} needs {} MiB of device memory, {} MiB are free; "
           "run shorter windows or a smaller batch", batch, n, per_channel * 4 >> 20, free_bytes >> 20);
  // Grid limits: the spectral kernels put the B x cb rows (and the cb channels) in grid y (<= 65535).
  LS_CHECK(batch <= 65535, "fft_conv: batch {} exceeds the grid's 65535", batch);
  return std::max<int64_t>(1, std::min({channels, budget / per_channel, int64_t(65535) / batch}));
}

void check_filter(const FftConvParams& p, const char* who) {
  LS_CHECK(p.batch >= 1 && p.length >= 1 && p.channels >= 1, "{}: bad sizes B={} L={} D={}", who, p.batch, p.length, p.channels);
  LS_CHECK(p.u.ptr && p.filter.spec, "{}: u and the filter spectrum are required", who);
  LS_CHECK(p.filter.length == p.length && p.filter.channels == p.channels && p.filter.n == fft_conv_size(p.length),
           "{}: the filter spectrum is for L={} D={} n={}, the input has L={} D={}; recompute it for this length", who, p.filter.length,
           p.filter.channels, p.filter.n, p.length, p.channels);
  LS_CHECK(p.batch <= 65535, "{}: batch {} exceeds the grid's 65535", who, p.batch);
}

}  // namespace

int64_t fft_conv_size(int64_t length) { return fft_fast_size(std::max<int64_t>(2 * length - 1, 2)); }

void fft_conv_filter_spectrum(const float* k, int64_t k_l, int64_t length, int64_t channels, CFloat* spec) {
  LS_CHECK(k && spec && length >= 1 && channels >= 1, "fft_conv_filter_spectrum: bad arguments L={} D={}", length, channels);
  const int64_t n = fft_conv_size(length), cb = channel_block(1, channels, n);
  DeviceScratch scratch(fft_conv_scratch(1, cb, n));
  CufftRunner fft{n};
  fft_filter_spectrum_run(k, k_l, length, channels, n, cb, spec, scratch.ptr, launch_on_device, fft);
  CUDA_CHECK(cudaDeviceSynchronize());
}

void fft_conv_forward(const FftConvParams& p) {
  check_filter(p, "fft_conv_forward");
  LS_CHECK(p.y, "fft_conv_forward: y is required");
  const int64_t n = p.filter.n, cb = channel_block(p.batch, p.channels, n);
  DeviceScratch scratch(fft_conv_scratch(p.batch, cb, n));
  CufftRunner fft{n};
  fft_conv_forward_run(p, cb, scratch.ptr, launch_on_device, fft);
  CUDA_CHECK(cudaDeviceSynchronize());
}

void fft_conv_backward(const FftConvBwdParams& g) {
  const FftConvParams& p = g.fwd;
  check_filter(p, "fft_conv_backward");
  LS_CHECK(g.dy.ptr && g.du, "fft_conv_backward: dy and du are required");
  LS_CHECK(!p.gate.ptr || g.dgate, "fft_conv_backward: gate is set, so dgate is required");
  LS_CHECK(!p.bias || g.dbias, "fft_conv_backward: bias is set, so dbias is required");
  const int64_t n = p.filter.n, cb = channel_block(p.batch, p.channels, n);
  const int64_t tiles = std::max<int64_t>(1, std::min<int64_t>(p.length, 8 * int64_t(sm_count()) * kLanes / p.channels));
  DeviceScratch scratch(fft_conv_scratch(p.batch, cb, n)), dbias_scratch(fft_conv_dbias_scratch(p.length, p.channels, tiles));
  CufftRunner fft{n};
  fft_conv_backward_run(g, cb, tiles, scratch.ptr, dbias_scratch.ptr, launch_on_device, fft);
  CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace longseq::cuda
