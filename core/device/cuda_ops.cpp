// DeviceOps on a CUDA device: cudaMalloc'd memory, synchronous copies, the kernels' host entries
// (kernels/*.h) and cuBLAS for the products. Without a CUDA build, make_cuda_ops says how to get one.
#include "core/backend.h"
#include "core/device/ops.h"
#include "core/error.h"

#if LONGSEQ_WITH_CUDA
#include "kernels/attention.h"
#include "kernels/cuda_check.h"
#include "kernels/gemm.h"
#include "kernels/modal.h"
#endif

namespace longseq {

#if LONGSEQ_WITH_CUDA
namespace {

class CudaOps final : public DeviceOps {
 public:
  std::string name() const override { return "cuda"; }
  float* alloc(int64_t n) override { return static_cast<float*>(raw_alloc(n * int64_t(sizeof(float)))); }
  void free(float* p) override { cudaFree(p); }
  int64_t* alloc_ids(int64_t n) override { return static_cast<int64_t*>(raw_alloc(n * int64_t(sizeof(int64_t)))); }
  void free_ids(int64_t* p) override { cudaFree(p); }
  void upload(float* dst, const float* src, int64_t n) override { copy_bytes(dst, src, n * 4, cudaMemcpyHostToDevice); }
  void upload_ids(int64_t* dst, const int64_t* src, int64_t n) override { copy_bytes(dst, src, n * 8, cudaMemcpyHostToDevice); }
  void download(float* dst, const float* src, int64_t n) override { copy_bytes(dst, src, n * 4, cudaMemcpyDeviceToHost); }
  void copy(float* dst, const float* src, int64_t n) override { copy_bytes(dst, src, n * 4, cudaMemcpyDeviceToDevice); }
  void zero(float* dst, int64_t n) override {
    if (n > 0) CUDA_CHECK(cudaMemset(dst, 0, size_t(n) * sizeof(float)));
  }
  void embedding(const cuda::EmbeddingParams& p) override { cuda::embedding_forward(p); }
  void norm(const cuda::NormParams& p) override { cuda::norm_forward(p); }
  void linear(const float* x, int64_t ldx, const float* w, const float* bias, float* y, int64_t ldy, int64_t M, int64_t K,
              int64_t O) override {
    cuda::linear(x, ldx, w, bias, y, ldy, M, K, O);
  }
  void conv1d(const cuda::CausalConv1dParams& p) override { cuda::causal_conv1d_forward(p); }
  void scan(const cuda::SelectiveScanParams& p) override { cuda::selective_scan_forward(p); }
  void add(float* y, const float* x, int64_t n) override { cuda::add_inplace(y, x, n); }
  void multiply_rows(const cuda::MulRowsParams& p) override { cuda::multiply_rows(p); }
  void flip(const cuda::FlipParams& p) override { cuda::flip(p); }
  void activation(const cuda::ActivationParams& p) override { cuda::activation_forward(p); }
  void fft_filter_spectrum(const float* k, int64_t k_l, int64_t L, int64_t D, cuda::CFloat* spec) override {
    cuda::fft_conv_filter_spectrum(k, k_l, L, D, spec);
  }
  void fft_conv(const cuda::FftConvParams& p) override { cuda::fft_conv_forward(p); }
  void gemm(const cuda::GemmParams& p) override { cuda::gemm(p); }
  void column_sums(const float* a, int64_t lda, int64_t rows, int64_t cols, float* out) override {
    cuda::column_sums(1, rows, cols, cuda::BLD{a, 0, lda}, {}, {}, out);
  }
  void norm_backward(const cuda::NormBwdParams& p) override { cuda::norm_backward(p); }
  void conv1d_backward(const cuda::CausalConv1dBwdParams& p) override { cuda::causal_conv1d_backward(p); }
  void scan_backward(const cuda::SelectiveScanBwdParams& p) override { cuda::selective_scan_backward(p); }
  void embedding_backward(const cuda::EmbeddingParams& p) override { cuda::embedding_backward(p); }
  void activation_backward(const cuda::ActivationParams& p) override { cuda::activation_backward(p); }
  void sin_columns(const cuda::SinColumnsParams& p) override { cuda::sin_columns_forward(p); }
  void sin_columns_backward(const cuda::SinColumnsParams& p) override { cuda::sin_columns_backward(p); }
  void fft_conv_backward(const cuda::FftConvBwdParams& p) override { cuda::fft_conv_backward(p); }
  void attention(const cuda::AttentionParams& p) override { cuda::attention_forward(p); }
  void attention_backward(const cuda::AttentionBwdParams& p) override { cuda::attention_backward(p); }
  void rotary(const cuda::RotaryParams& p) override { cuda::rotary(p); }
  void modal_scan(const cuda::ModalParams& p) override { cuda::modal_scan(p); }
  void modal_filter(const cuda::ModalFilterParams& p) override { cuda::modal_filter(p); }
  void modal_filter_backward(const cuda::ModalFilterParams& p) override { cuda::modal_filter_backward(p); }

 private:
  static void* raw_alloc(int64_t bytes) {
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, size_t(std::max<int64_t>(bytes, 1)));
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      fail("cuda: cannot allocate {} MiB of device memory ({}); use shorter chunks (--chunk) or run on the CPU", bytes >> 20,
           cudaGetErrorString(err));
    }
    return p;
  }
  static void copy_bytes(void* dst, const void* src, int64_t bytes, cudaMemcpyKind kind) {
    if (bytes > 0) CUDA_CHECK(cudaMemcpy(dst, src, size_t(bytes), kind));
  }
};

}  // namespace

std::unique_ptr<DeviceOps> make_cuda_ops() {
  LS_CHECK(cuda_device_count() > 0, "--device cuda: {}; run on a machine with an NVIDIA GPU or use --device cpu", cuda_device_summary());
  return std::make_unique<CudaOps>();
}
#else
std::unique_ptr<DeviceOps> make_cuda_ops() {
  fail("--device cuda: this longseq was built without CUDA (configure with -DLONGSEQ_CUDA=ON where nvcc is installed) ; use --device cpu");
}
#endif

}  // namespace longseq
