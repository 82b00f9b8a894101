// Linear layer forward and backward for training through Eigen (built with the GEMM flags of
// core/ops/gemm.cpp). Every product is cut into output tiles of fixed size, each one single-threaded
// Eigen product with the whole reduction inside it, so the summation order (and the result) does
// not depend on the thread count.
#include "core/train/grad_ops.h"

#include <Eigen/Core>

#include <algorithm>
#include <vector>

namespace longseq::train {

namespace {

constexpr int64_t kTile = 128;

template <class T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using Map = Eigen::Map<RowMajor<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using ConstMap = Eigen::Map<const RowMajor<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

template <class T>
Map<T> map(Mat<T> m) {
  return Map<T>(m.data, m.rows, m.cols, Eigen::OuterStride<>(std::max<int64_t>(m.ld, 1)));
}
template <class T>
ConstMap<T> map(Mat<const T> m) {
  return ConstMap<T>(m.data, m.rows, m.cols, Eigen::OuterStride<>(std::max<int64_t>(m.ld, 1)));
}

template <class Fn>
void for_each_tile(int64_t M, int64_t N, int64_t K, Fn&& fn) {
  const int64_t tm = (M + kTile - 1) / kTile, tn = (N + kTile - 1) / kTile, tiles = tm * tn;
  const bool parallel = tiles > 1 && double(M) * double(N) * double(K) > 1e6;
#pragma omp parallel for schedule(dynamic, 1) if (parallel)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t m0 = (t / tn) * kTile, n0 = (t % tn) * kTile;
    fn(m0, std::min(kTile, M - m0), n0, std::min(kTile, N - n0));
  }
}

}  // namespace

template <class T>
void linear_forward(Mat<const T> x, const T* w, const T* b, Mat<T> y) {
  const int64_t O = y.cols, K = x.cols;
  const ConstMap<T> X = map(x), Wm(w, O, K, Eigen::OuterStride<>(K));
  Map<T> Y = map(y);
  for_each_tile(x.rows, O, K, [&](int64_t m0, int64_t mn, int64_t o0, int64_t on) {
    Y.block(m0, o0, mn, on).noalias() = X.middleRows(m0, mn) * Wm.middleRows(o0, on).transpose();
    if (b)
      for (int64_t r = m0; r < m0 + mn; ++r)
        for (int64_t o = o0; o < o0 + on; ++o) Y(r, o) += b[o];
  });
}

template <class T>
void linear_backward(Mat<const T> x, const T* w, Mat<const T> dy, Mat<T>* dx, T* dw, T* db) {
  const int64_t M = x.rows, K = x.cols, O = dy.cols;
  const ConstMap<T> X = map(x), G = map(dy), Wm(w, O, K, Eigen::OuterStride<>(K));
  if (dx) {
    Map<T> DX = map(*dx);
    for_each_tile(M, K, O, [&](int64_t m0, int64_t mn, int64_t k0, int64_t kn) {
      DX.block(m0, k0, mn, kn).noalias() += G.middleRows(m0, mn) * Wm.middleCols(k0, kn);
    });
  }
  if (dw) {
    Map<T> DW(dw, O, K, Eigen::OuterStride<>(K));
    for_each_tile(O, K, M, [&](int64_t o0, int64_t on, int64_t k0, int64_t kn) {
      DW.block(o0, k0, on, kn).noalias() += G.middleCols(o0, on).transpose() * X.middleCols(k0, kn);
    });
  }
  if (db) {  // sums over every row: in double, so float rounding does not grow with L
    std::vector<double> sum(static_cast<size_t>(O), 0.0);
    for (int64_t r = 0; r < M; ++r)
      for (int64_t o = 0; o < O; ++o) sum[size_t(o)] += double(G(r, o));
    for (int64_t o = 0; o < O; ++o) db[o] += T(sum[size_t(o)]);
  }
}

template void linear_forward<float>(Mat<const float>, const float*, const float*, Mat<float>);
template void linear_forward<double>(Mat<const double>, const double*, const double*, Mat<double>);
template void linear_backward<float>(Mat<const float>, const float*, Mat<const float>, Mat<float>*, float*, float*);
template void linear_backward<double>(Mat<const double>, const double*, Mat<const double>, Mat<double>*, double*, double*);

}  // namespace longseq::train
