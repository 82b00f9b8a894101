// Host Mat windows as borrowed Tensor views, so the CPU implementations of the layers' ops can call
// core/ops (the SIMD, FFTW and Eigen paths written on Tensor) without copying. The caller keeps the
// memory alive for the view's life.
#pragma once

#include "core/nn/mat.h"
#include "core/tensor.h"

#include <algorithm>
#include <memory>

namespace longseq::nn {

// (rows, cols) with row stride m.ld.
inline Tensor view(Mat<const float> m) {
  static const std::shared_ptr<const void> kBorrowed = std::make_shared<char>();
  const int64_t ld = std::max(m.ld, m.cols), rows = std::max<int64_t>(m.rows, 1);
  auto storage = Storage::borrow(const_cast<float*>(m.data), size_t(rows * ld) * sizeof(float), kBorrowed);
  return Tensor::from_storage(storage, 0, {rows, ld}, DType::F32).slice(1, 0, m.cols).slice(0, 0, m.rows);
}
inline Tensor view(Mat<float> m) { return view(Mat<const float>(m)); }
// A contiguous array of shape_numel(shape) floats.
inline Tensor view(const float* p, Shape shape) {
  const int64_t n = shape_numel(shape);
  return view(mat(p, 1, n)).reshape(std::move(shape));
}

}  // namespace longseq::nn
