// Dense products on the GPU through cuBLAS, in the row-major convention of core/ops/ops.h (linear_*):
//   C[M, N] = alpha op(A) op(B) + beta C,  op(X) = X or X^T,
// A, B, C row-major with leading dimensions (row strides) lda, ldb, ldc. fp32 in and out; by default
// fp32 arithmetic (cuBLAS's default math mode: results match the CPU within fp32 rounding);
// allow_tf32 trades 10-bit mantissa products for the tensor cores' speed (training only).
#pragma once

#include <cstdint>

namespace longseq::cuda {

struct GemmParams {
  int64_t M = 0, N = 0, K = 0;
  bool trans_a = false, trans_b = false;  // A is (M, K) or, transposed, stored (K, M); B (K, N) or stored (N, K)
  float alpha = 1.0f, beta = 0.0f;
  const float* A = nullptr;
  int64_t lda = 0;
  const float* B = nullptr;
  int64_t ldb = 0;
  float* C = nullptr;
  int64_t ldc = 0;
  bool allow_tf32 = false;
};

// Device pointers; runs on the default stream with a per-thread cuBLAS handle and synchronizes.
// Throws longseq::Error for bad sizes / leading dimensions or a cuBLAS failure.
void gemm(const GemmParams& p);

// y[M, O] = x[M, K] w[O, K]^T (+ bias[O] broadcast over rows): nn.Linear, the common case.
void linear(const float* x, int64_t ldx, const float* w, const float* bias, float* y, int64_t ldy, int64_t M, int64_t K, int64_t O,
            bool allow_tf32 = false);

}  // namespace longseq::cuda
