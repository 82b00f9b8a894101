// cuBLAS wrappers. cuBLAS is column-major: a row-major C = op(A) op(B) is the column-major
// C^T = op(B)^T op(A)^T, so the operands are passed swapped with the same transpose flags. One
// handle per host thread (handles are not to be shared between threads issuing work).
#include "kernels/cuda_check.h"
#include "kernels/gemm.h"

#include <cublas_v2.h>

#include <climits>

#define CUBLAS_CHECK(call)                                                                                                   \
  do {                                                                                                                       \
    const cublasStatus_t s_ = (call);                                                                                        \
    if (s_ != CUBLAS_STATUS_SUCCESS) ::longseq::fail("cuBLAS error {} in {} at {}:{}", cublasGetStatusString(s_), #call, __FILE__, __LINE__); \
  } while (0)

namespace longseq::cuda {

namespace {

cublasHandle_t handle() {
  struct Handle {
    cublasHandle_t h = nullptr;
    Handle() { CUBLAS_CHECK(cublasCreate(&h)); }
    ~Handle() { cublasDestroy(h); }
  };
  thread_local Handle handle;
  return handle.h;
}

// out[r, o] = bias[o] for every row, so a GEMM with beta = 1 adds the product.
__global__ void broadcast_rows_kernel(const float* __restrict__ bias, float* __restrict__ out, int64_t rows, int64_t cols, int64_t ld) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < rows * cols; i += stride) out[(i / cols) * ld + i % cols] = bias[i % cols];
}

}  // namespace

void gemm(const GemmParams& p) {
  LS_CHECK(p.M >= 0 && p.N >= 0 && p.K >= 0 && p.M <= INT_MAX && p.N <= INT_MAX && p.K <= INT_MAX, "gemm: bad sizes M={} N={} K={}", p.M,
           p.N, p.K);
  LS_CHECK(p.A && p.B && p.C, "gemm: A, B and C are required");
  const int64_t a_cols = p.trans_a ? p.M : p.K, b_cols = p.trans_b ? p.K : p.N;
  LS_CHECK(p.lda >= std::max<int64_t>(1, a_cols) && p.ldb >= std::max<int64_t>(1, b_cols) && p.ldc >= std::max<int64_t>(1, p.N),
           "gemm: leading dimensions lda={} ldb={} ldc={} are shorter than the rows ({}, {}, {})", p.lda, p.ldb, p.ldc, a_cols, b_cols, p.N);
  if (p.M == 0 || p.N == 0) return;
  cublasHandle_t h = handle();
  CUBLAS_CHECK(cublasSetMathMode(h, p.allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  CUBLAS_CHECK(cublasSgemm(h, p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, int(p.N), int(p.M), int(p.K),
                           &p.alpha, p.B, int(p.ldb), p.A, int(p.lda), &p.beta, p.C, int(p.ldc)));
  CUDA_CHECK(cudaDeviceSynchronize());
}

void linear(const float* x, int64_t ldx, const float* w, const float* bias, float* y, int64_t ldy, int64_t M, int64_t K, int64_t O,
            bool allow_tf32) {
  if (bias && M > 0 && O > 0) {
    const int64_t blocks = std::min<int64_t>((M * O + 255) / 256, 65535);
    broadcast_rows_kernel<<<unsigned(blocks), 256>>>(bias, y, M, O, ldy);
    CUDA_CHECK(cudaGetLastError());
  }
  gemm({.M = M, .N = O, .K = K, .trans_a = false, .trans_b = true, .alpha = 1.0f, .beta = bias ? 1.0f : 0.0f, .A = x, .lda = ldx, .B = w,
        .ldb = K, .C = y, .ldc = ldy, .allow_tf32 = allow_tf32});
}

}  // namespace longseq::cuda
