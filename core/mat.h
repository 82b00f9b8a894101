// A row-major matrix window (rows x cols, row stride ld in elements, unit column stride): the one
// view every op and layer takes, on the host or on a device (the pointer says where; the backend
// that owns it knows). Plain data, so it crosses into kernels' parameter structs unchanged.
#pragma once

#include <cstdint>

namespace longseq {

template <class T>
struct Mat {
  T* data = nullptr;
  int64_t rows = 0, cols = 0, ld = 0;
  T* row(int64_t r) const { return data + r * ld; }
  T& at(int64_t r, int64_t c) const { return data[r * ld + c]; }
  Mat<T> cols_slice(int64_t c0, int64_t n) const { return {data + c0, rows, n, ld}; }
  Mat<T> rows_slice(int64_t r0, int64_t n) const { return {data + r0 * ld, n, cols, ld}; }
  operator Mat<const T>() const { return {data, rows, cols, ld}; }
};

// A dense (rows, cols) window over `data`.
template <class T>
Mat<T> mat(T* data, int64_t rows, int64_t cols) {
  return {data, rows, cols, cols};
}

}  // namespace longseq
