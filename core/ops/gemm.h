// Dense products through Eigen's GEMM. All Eigen products of the project live in gemm.cpp, which is
// built without AVX-512 (faster on the target CPU; see cmake/LongseqFlags.cmake). Eigen splits the
// output among threads and never the reduction, so results do not depend on the thread count.
#pragma once

#include "core/tensor.h"

namespace longseq {

// y[M, O] = x[M, K] * w[O, K]^T (+ bias[O]), the nn.Linear convention. x and y may have strided rows
// (unit inner stride). y must be preallocated F32 [M, O]; `bias` may be undefined.
void linear(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y);
// Allocating form.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias = {});

// c[M, N] = alpha * a[M, K] * b[K, N] + beta * c (row-major, unit inner strides).
void gemm(const Tensor& a, const Tensor& b, Tensor& c, float alpha = 1.0f, float beta = 0.0f);

}  // namespace longseq
