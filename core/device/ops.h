// The device a model runs on, behind one interface: memory, transfers and the kernels the models
// need, with the plain parameter structs of kernels/*.h. Two implementations: the CUDA one
// (core/device/cuda_ops.cpp, real device memory and the kernels' host entries) and, in the tests,
// an emulated one that runs the same kernel source on the CPU (tests/unit/emu_ops.h), so the code
// written against this interface (the layers' device backend, core/nn/device_backend.cpp, used by
// inference and training alike) is verified on machines without a GPU.
// Pointers returned by alloc* are device pointers of this implementation; none may be used with
// another. Every call throws longseq::Error on failure; calls are not thread-safe (callers
// serialise).
#pragma once

#include "core/nn/memory.h"
#include "core/tensor.h"
#include "kernels/attention.h"
#include "kernels/causal_conv1d.h"
#include "kernels/elementwise.h"
#include "kernels/fft_conv.h"
#include "kernels/gemm.h"
#include "kernels/modal.h"
#include "kernels/norm.h"
#include "kernels/selective_scan.h"

#include <cstdint>
#include <memory>
#include <string>

namespace longseq {

// Device memory (float arrays and token ids, transfers, copies) is the Memory<float> interface
// (core/nn/memory.h) that the layers' backends share.
class DeviceOps : public nn::Memory<float> {
 public:
  virtual std::string name() const = 0;

  virtual void embedding(const cuda::EmbeddingParams& p) = 0;
  virtual void norm(const cuda::NormParams& p) = 0;
  // y[M, O] = x[M, K] w[O, K]^T (+ bias[O]); row strides ldx, ldy.
  virtual void linear(const float* x, int64_t ldx, const float* w, const float* bias, float* y, int64_t ldy, int64_t M, int64_t K,
                      int64_t O) = 0;
  virtual void conv1d(const cuda::CausalConv1dParams& p) = 0;
  virtual void scan(const cuda::SelectiveScanParams& p) = 0;
  virtual void add(float* y, const float* x, int64_t n) = 0;
  virtual void multiply_rows(const cuda::MulRowsParams& p) = 0;
  virtual void flip(const cuda::FlipParams& p) = 0;
  virtual void activation(const cuda::ActivationParams& p) = 0;
  virtual void sin_columns(const cuda::SinColumnsParams& p) = 0;
  // The filter spectrum of k (L, D) with token stride k_l into spec ((D, n/2 + 1) complex =
  // 2 D (n/2 + 1) floats of this device), n = cuda::fft_conv_size(L).
  virtual void fft_filter_spectrum(const float* k, int64_t k_l, int64_t L, int64_t D, cuda::CFloat* spec) = 0;
  virtual void fft_conv(const cuda::FftConvParams& p) = 0;
  virtual void attention(const cuda::AttentionParams& p) = 0;
  virtual void rotary(const cuda::RotaryParams& p) = 0;
  virtual void modal_scan(const cuda::ModalParams& p) = 0;
  virtual void modal_filter(const cuda::ModalFilterParams& p) = 0;

  // For training (gradients are written, not accumulated, unless a GEMM's beta says so).
  virtual void gemm(const cuda::GemmParams& p) = 0;
  // out[c] = sum over rows r of a[r, c] (rows x cols, row stride lda).
  virtual void column_sums(const float* a, int64_t lda, int64_t rows, int64_t cols, float* out) = 0;
  virtual void norm_backward(const cuda::NormBwdParams& p) = 0;
  virtual void conv1d_backward(const cuda::CausalConv1dBwdParams& p) = 0;
  virtual void scan_backward(const cuda::SelectiveScanBwdParams& p) = 0;
  virtual void embedding_backward(const cuda::EmbeddingParams& p) = 0;
  virtual void activation_backward(const cuda::ActivationParams& p) = 0;
  virtual void sin_columns_backward(const cuda::SinColumnsParams& p) = 0;
  virtual void fft_conv_backward(const cuda::FftConvBwdParams& p) = 0;
  virtual void attention_backward(const cuda::AttentionBwdParams& p) = 0;
  virtual void modal_filter_backward(const cuda::ModalFilterParams& p) = 0;
};

// The CUDA implementation (device 0). Throws longseq::Error, with what to do, when this build has
// no CUDA kernels or no device is visible.
std::unique_ptr<DeviceOps> make_cuda_ops();

}  // namespace longseq
