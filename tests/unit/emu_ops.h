// DeviceOps whose "device" is host memory and whose kernels are the CUDA kernel source run through
// kernels/emu/cuda_emu.h (small block shapes: 2 or 4 warps, the scan cut into 3 segments), with
// products by a float64-accumulated loop. Models written against DeviceOps are tested with it on
// machines without a GPU; only the CUDA plumbing (cudaMemcpy, cuBLAS) is left to the GPU tests.
#pragma once

#include "core/device/ops.h"
#include "core/error.h"
#include "kernels/emu/cuda_emu.h"
#include "core/ops/ops.h"
#include "kernels/fft_size.h"
#include "kernels/attention.cuh"
#include "kernels/causal_conv1d.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/fft_conv.cuh"
#include "kernels/modal.cuh"
#include "kernels/norm.cuh"
#include "kernels/selective_scan_bwd.cuh"

#include <fftw3.h>

#include <cstring>
#include <mutex>
#include <type_traits>
#include <vector>

namespace longseq::testing {

// FFTW in the place of cuFFT for the emulated FFT conv: the same row layout (R2C of n reals to n/2
// + 1 bins, C2R unscaled).
struct FftwRunner {
  int64_t n;
  void forward(const float* time, cuda::CFloat* spec, int64_t rows) const {
    run(fftwf_plan_many_dft_r2c, const_cast<float*>(time), reinterpret_cast<fftwf_complex*>(spec), rows);
  }
  void inverse(cuda::CFloat* spec, float* time, int64_t rows) const {
    run(fftwf_plan_many_dft_c2r, reinterpret_cast<fftwf_complex*>(spec), time, rows);
  }
  template <class Planner, class In, class Out>
  void run(Planner planner, In* in, Out* out, int64_t rows) const {
    const bool r2c = std::is_same_v<In, float>;
    int size = int(n);
    fftwf_plan plan;
    {
      const std::lock_guard lock(ops::fftw_planner_mutex());
      plan = planner(1, &size, int(rows), in, nullptr, 1, int(r2c ? n : n / 2 + 1), out, nullptr, 1, int(r2c ? n / 2 + 1 : n),
                     FFTW_ESTIMATE);
    }
    LS_CHECK(plan != nullptr, "FFTW could not plan {} rows of size {}", rows, n);
    fftwf_execute(plan);
    const std::lock_guard lock(ops::fftw_planner_mutex());
    fftwf_destroy_plan(plan);
  }
};

class EmuOps final : public DeviceOps {
 public:
  std::string name() const override { return "emulated"; }
  float* alloc(int64_t n) override { return new float[size_t(std::max<int64_t>(n, 1))]; }
  void free(float* p) override { delete[] p; }
  int64_t* alloc_ids(int64_t n) override { return new int64_t[size_t(std::max<int64_t>(n, 1))]; }
  void free_ids(int64_t* p) override { delete[] p; }
  void upload(float* dst, const float* src, int64_t n) override { std::memcpy(dst, src, size_t(n) * sizeof(float)); }
  void upload_ids(int64_t* dst, const int64_t* src, int64_t n) override { std::memcpy(dst, src, size_t(n) * sizeof(int64_t)); }
  void download(float* dst, const float* src, int64_t n) override { std::memcpy(dst, src, size_t(n) * sizeof(float)); }
  void copy(float* dst, const float* src, int64_t n) override { std::memcpy(dst, src, size_t(n) * sizeof(float)); }
  void zero(float* dst, int64_t n) override { std::fill(dst, dst + n, 0.0f); }

  void embedding(const cuda::EmbeddingParams& p) override {
    int bad = 0;
    cuda::EmbeddingParams q = p;
    q.bad_id = &bad;
    cuda::embedding_forward_run(q, launch);
    LS_CHECK(bad == 0, "emulated embedding: token {} out of the vocabulary", bad - 1);
  }
  void norm(const cuda::NormParams& p) override { cuda::norm_forward_run<4>(p, launch); }
  void linear(const float* x, int64_t ldx, const float* w, const float* bias, float* y, int64_t ldy, int64_t M, int64_t K,
              int64_t O) override {
    for (int64_t m = 0; m < M; ++m)
      for (int64_t o = 0; o < O; ++o) {
        double s = bias ? bias[o] : 0.0;
        for (int64_t k = 0; k < K; ++k) s += double(x[m * ldx + k]) * w[o * K + k];
        y[m * ldy + o] = float(s);
      }
  }
  void conv1d(const cuda::CausalConv1dParams& p) override {
    cuda::causal_conv1d_forward_any<4, 2>(p, launch);
  }
  void scan(const cuda::SelectiveScanParams& p) override {
    constexpr int64_t kSegments = 3;  // the multi-block path too, wherever the chunk is long enough
    std::vector<float> scratch(size_t(cuda::selective_scan_scratch(p, kSegments)));
    cuda::selective_scan_segmented<2, 8>(p, kSegments, scratch.data(), launch);
  }
  void add(float* y, const float* x, int64_t n) override { cuda::add_run(cuda::AddParams{n, y, x}, 4, launch); }
  void multiply_rows(const cuda::MulRowsParams& p) override { cuda::mul_rows_run(p, 4, launch); }
  void flip(const cuda::FlipParams& p) override { cuda::flip_run(p, 4, launch); }
  void activation(const cuda::ActivationParams& p) override { cuda::activation_run(p, false, 4, launch); }
  void fft_filter_spectrum(const float* k, int64_t k_l, int64_t L, int64_t D, cuda::CFloat* spec) override {
    const int64_t n = fft_fast_size(std::max<int64_t>(2 * L - 1, 2)), cb = 5;  // channel blocks of 5: the block loop too
    FftwRunner fft{n};
    std::vector<float> scratch(size_t(cuda::fft_conv_scratch(1, cb, n)));
    cuda::fft_filter_spectrum_run(k, k_l, L, D, n, cb, spec, scratch.data(), launch, fft);
  }
  void fft_conv(const cuda::FftConvParams& p) override {
    constexpr int64_t cb = 5;
    FftwRunner fft{p.filter.n};
    std::vector<float> scratch(size_t(cuda::fft_conv_scratch(p.batch, cb, p.filter.n)));
    cuda::fft_conv_forward_run(p, cb, scratch.data(), launch, fft);
  }
  void gemm(const cuda::GemmParams& p) override {  // row-major, float64 accumulation
    for (int64_t i = 0; i < p.M; ++i)
      for (int64_t j = 0; j < p.N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < p.K; ++k)
          s += double(p.trans_a ? p.A[k * p.lda + i] : p.A[i * p.lda + k]) * (p.trans_b ? p.B[j * p.ldb + k] : p.B[k * p.ldb + j]);
        float& c = p.C[i * p.ldc + j];
        c = float(p.alpha * s + (p.beta != 0.0f ? double(p.beta) * c : 0.0));
      }
  }
  void column_sums(const float* a, int64_t lda, int64_t rows, int64_t cols, float* out) override {
    constexpr int64_t kTiles = 3;
    std::vector<float> partial(size_t(cuda::column_sums_scratch(cols, kTiles)));
    cuda::column_sums_run(cuda::ColumnSumParams{1, rows, cols, kTiles, 0, cuda::BLD{a, 0, lda}, {}, {}, partial.data(), out}, launch);
  }
  void norm_backward(const cuda::NormBwdParams& p) override {
    constexpr int64_t kTiles = 3;
    std::vector<float> scratch(size_t(cuda::norm_bwd_scratch(p.fwd, kTiles)));
    cuda::norm_backward_run<4>(p, kTiles, scratch.data(), launch);
  }
  void conv1d_backward(const cuda::CausalConv1dBwdParams& p) override {
    constexpr int64_t kTiles = 3;
    std::vector<float> scratch(size_t(cuda::causal_conv1d_bwd_scratch(p.fwd, kTiles)));
    cuda::causal_conv1d_backward_any<4, 2>(p, kTiles, scratch.data(), launch);
  }
  void scan_backward(const cuda::SelectiveScanBwdParams& p) override {
    constexpr int64_t kSegments = 3;
    std::vector<float> scratch(size_t(cuda::selective_scan_bwd_scratch<2, 8, 2, 4>(p.fwd, kSegments)));
    cuda::selective_scan_backward_run<2, 8, 2, 4>(p, kSegments, scratch.data(), launch);
  }
  void embedding_backward(const cuda::EmbeddingParams& p) override { cuda::embedding_backward_run(p, launch); }
  void activation_backward(const cuda::ActivationParams& p) override { cuda::activation_run(p, true, 4, launch); }
  void sin_columns(const cuda::SinColumnsParams& p) override { cuda::sin_columns_run(p, false, 3, launch); }
  void sin_columns_backward(const cuda::SinColumnsParams& p) override { cuda::sin_columns_run(p, true, 3, launch); }
  void fft_conv_backward(const cuda::FftConvBwdParams& p) override {
    constexpr int64_t cb = 5, kTiles = 3;
    FftwRunner fft{p.fwd.filter.n};
    std::vector<float> scratch(size_t(cuda::fft_conv_scratch(p.fwd.batch, cb, p.fwd.filter.n))),
        dbias(size_t(cuda::fft_conv_dbias_scratch(p.fwd.length, p.fwd.channels, kTiles)));
    cuda::fft_conv_backward_run(p, cb, kTiles, scratch.data(), dbias.data(), launch, fft);
  }

  void attention(const cuda::AttentionParams& p) override { cuda::attention_forward_run(p, launch); }
  void attention_backward(const cuda::AttentionBwdParams& p) override {
    std::vector<float> scratch(size_t(std::max<int64_t>(1, cuda::attention_bwd_scratch(p.fwd))));
    cuda::attention_backward_run(p, scratch.data(), launch);
  }
  void rotary(const cuda::RotaryParams& p) override {
    if (p.rows > 0) cuda::rotary_run(p, launch);
  }
  void modal_scan(const cuda::ModalParams& p) override { cuda::modal_scan_run(p, launch); }
  void modal_filter(const cuda::ModalFilterParams& p) override { cuda::modal_filter_run(p, false, launch); }
  void modal_filter_backward(const cuda::ModalFilterParams& p) override { cuda::modal_filter_run(p, true, launch); }

 private:
  static constexpr const auto& launch = emu::launcher;
};

}  // namespace longseq::testing
