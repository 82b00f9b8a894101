// linear's forward and backward through Eigen: all of the project's Eigen products live in this
// file, which is built without AVX-512 (faster on the target CPU; see cmake/LongseqFlags.cmake).
// Every product is cut into output tiles whose sizes depend only on the shapes, each one
// single-threaded Eigen product with the whole reduction inside it: Eigen's own threading picks
// its K-blocking from the thread count, which would change the summation order, so this keeps
// results bit-identical for any --threads while still using every core.
#include "core/ops/ops.h"

#include <Eigen/Core>

#include <algorithm>
#include <type_traits>
#include <vector>

namespace longseq::ops {

namespace {

// Eigen never starts threads of its own. A tile product that runs inside a parallel region whose
// nested team is inactive (a scorer thread calling linear) sees omp_get_num_threads() == 1, and
// Eigen would then "parallelize" it with omp_get_max_threads() threads: one thread runs it, but with
// the K-blocking chosen for several, so results changed with --threads (a long-convolution model's
// scores in the 5th digit). Set once when this file's library is loaded, before any product runs.
[[maybe_unused]] const bool kEigenSingleThreaded = (Eigen::setNbThreads(1), true);

struct Tile {
  int64_t rows, cols;
};
constexpr Tile kForwardTile{256, 512}, kBackwardTile{128, 128};

template <class Fn>
void for_each_tile(int64_t M, int64_t N, int64_t K, Tile tile, Fn&& fn) {
  const int64_t tm = (M + tile.rows - 1) / tile.rows, tn = (N + tile.cols - 1) / tile.cols, tiles = tm * tn;
  const bool parallel = tiles > 1 && double(M) * double(N) * double(K) > 1e6;
#pragma omp parallel for schedule(dynamic, 1) if (parallel)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t m0 = (t / tn) * tile.rows, n0 = (t % tn) * tile.cols;
    fn(m0, std::min(tile.rows, M - m0), n0, std::min(tile.cols, N - n0));
  }
}

template <class T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
// An Eigen view of a Mat (const stays const).
template <class T>
using Map = Eigen::Map<std::conditional_t<std::is_const_v<T>, const RowMajor<std::remove_const_t<T>>, RowMajor<T>>, Eigen::Unaligned,
                       Eigen::OuterStride<>>;
template <class T>
Map<T> map(Mat<T> m) {
  return Map<T>(m.data, m.rows, m.cols, Eigen::OuterStride<>(std::max<int64_t>(m.ld, 1)));
}

}  // namespace

template <class T>
void linear_forward(Mat<const T> x, const T* w, const T* b, Mat<T> y) {
  const int64_t O = y.cols, K = x.cols;
  const Map<const T> X = map(x), Wm = map(mat(w, O, K));
  Map<T> Y = map(y);
  for_each_tile(x.rows, O, K, kForwardTile, [&](int64_t m0, int64_t mn, int64_t o0, int64_t on) {
    auto Yt = Y.block(m0, o0, mn, on);
    Yt.noalias() = X.middleRows(m0, mn) * Wm.middleRows(o0, on).transpose();
    if (b) Yt.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(b + o0, on);
  });
}

template <class T>
void linear_backward(Mat<const T> x, const T* w, Mat<const T> dy, Mat<T>* dx, T* dw, T* db) {
  const int64_t M = x.rows, K = x.cols, O = dy.cols;
  const Map<const T> X = map(x), G = map(dy), Wm = map(mat(w, O, K));
  if (dx) {
    Map<T> DX = map(*dx);
    for_each_tile(M, K, O, kBackwardTile, [&](int64_t m0, int64_t mn, int64_t k0, int64_t kn) {
      DX.block(m0, k0, mn, kn).noalias() += G.middleRows(m0, mn) * Wm.middleCols(k0, kn);
    });
  }
  if (dw) {
    Map<T> DW = map(mat(dw, O, K));
    for_each_tile(O, K, M, kBackwardTile, [&](int64_t o0, int64_t on, int64_t k0, int64_t kn) {
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

}  // namespace longseq::ops
