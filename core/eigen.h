// Zero-copy Eigen views of fp32 tensors. Only maps are built here; Eigen products live in
// core/ops/gemm.cpp alone (it is compiled with different SIMD flags, see cmake/LongseqFlags.cmake).
#pragma once

#include "core/error.h"
#include "core/tensor.h"

#include <Eigen/Core>

namespace longseq {

using RowMajorMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixMap = Eigen::Map<RowMajorMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;
using ConstMatrixMap = Eigen::Map<const RowMajorMatrix, Eigen::Unaligned, Eigen::OuterStride<>>;

// A 2-D F32 tensor whose last dimension has unit stride (rows may be strided, e.g. an L-slice).
inline MatrixMap as_matrix(const Tensor& t) {
  LS_CHECK(t.dim() == 2 && t.dtype() == DType::F32 && (t.size(1) <= 1 || t.stride(1) == 1),
           "as_matrix needs a 2-D F32 tensor with unit inner stride, got {}", t.describe());
  return MatrixMap(t.data<float>(), t.size(0), t.size(1), Eigen::OuterStride<>(t.size(0) > 1 ? t.stride(0) : t.size(1)));
}

}  // namespace longseq
