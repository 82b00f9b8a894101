// linear's forward and backward. float products of two or more rows run on the packed GEMM
// (gemm.h: 2.2x Eigen's speed here, and a row's bits independent of the rows beside it); float64
// (the tests' oracle and finite differences) and a float single row (a decode step: a matrix-vector
// product, bound by reading the weights) run on Eigen. All of the project's Eigen products live in
// this file, which is built without AVX-512 (faster on the target CPU; see
// cmake/LongseqFlags.cmake). Every Eigen product is cut into output tiles whose sizes depend only on
// the shapes, each one single-threaded Eigen product with the whole reduction inside it: Eigen's own
// threading picks its K-blocking from the thread count, which would change the summation order, so
// this keeps results bit-identical for any --threads while still using every core.
#include "core/ops/ops.h"

#include "core/error.h"
#include "core/ops/gemm.h"

#include "kernels/half.h"

#include <Eigen/Core>

#include <algorithm>
#include <atomic>
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

// n bf16 values as float. The source streams from memory once, so each 64-byte line is prefetched a
// 4 KB page ahead: the hardware prefetcher stops at page boundaries, and a decode step's single
// stream per thread ran at 2.3x less bandwidth without it (AMD EPYC Zen 4).
void widen_bf16(const uint16_t* src, int64_t n, float* out) {
  constexpr int64_t kLine = 32, kAhead = 2048;  // in elements
  int64_t i = 0;
  for (; i + kLine <= n; i += kLine) {
    __builtin_prefetch(src + i + kAhead);  // a prefetch past the end never faults
    for (int64_t j = i; j < i + kLine; ++j) out[j] = bf16_to_f32(src[j]);
  }
  for (; i < n; ++i) out[i] = bf16_to_f32(src[i]);
}

std::atomic<Matmul> g_matmul{Matmul::fp32};

// y = x w^T + b for two or more float rows, w stored as W (float or bf16).
template <class W>
void forward_rows(Mat<const float> x, const W* w, const float* b, Mat<float> y) {
  const GemmOperand<float> xs{x.data, x.ld, 1};
  const GemmOperand<W> wt{w, 1, x.cols};
  if (g_matmul.load(std::memory_order_relaxed) == Matmul::bf16) return gemm_bf16_products(xs, wt, x.cols, y, false, b);
  gemm(xs, wt, x.cols, y, false, b);
}

}  // namespace

void set_matmul(Matmul m) {
  LS_CHECK(m == Matmul::fp32 || gemm_bf16_products_supported(),
           "--matmul bf16 needs a CPU with AVX512_BF16 and a build for it (scripts/build on such a CPU); use --matmul fp32");
  g_matmul = m;
}
Matmul matmul() { return g_matmul; }

template <class T>
void linear_forward(Mat<const T> x, const T* w, const T* b, Mat<T> y) {
  const int64_t O = y.cols, K = x.cols;
  if constexpr (std::is_same_v<T, float>)
    if (x.rows > 1) return forward_rows(x, w, b, y);
  const Map<const T> X = map(x), Wm = map(mat(w, O, K));
  Map<T> Y = map(y);
  for_each_tile(x.rows, O, K, kForwardTile, [&](int64_t m0, int64_t mn, int64_t o0, int64_t on) {
    auto Yt = Y.block(m0, o0, mn, on);
    Yt.noalias() = X.middleRows(m0, mn) * Wm.middleRows(o0, on).transpose();
    if (b) Yt.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(b + o0, on);
  });
}

// Several rows: the packed GEMM, which widens w while packing it. A single row (a decode step) is
// linear_forward's Eigen matrix-vector product tile for tile, whose rows come in independent blocks
// of 8: the tile's rows are widened and multiplied kDecodeRows at a time, so the widened rows stay in
// cache (a 512-row tile of a 5,120-wide weight is 10 MB) with each row's sum unchanged.
void linear_forward_bf16(Mat<const float> x, const uint16_t* w, const float* b, Mat<float> y) {
  constexpr int64_t kDecodeRows = 32;  // a multiple of Eigen's 8-row blocks
  const int64_t M = x.rows, O = y.cols, K = x.cols;
  if (M > 1) return forward_rows(x, w, b, y);
  const Map<const float> X = map(x);
  Map<float> Y = map(y);
  const Tile tile = kForwardTile;
  const int64_t tm = (M + tile.rows - 1) / tile.rows, tn = (O + tile.cols - 1) / tile.cols, tiles = tm * tn;
  const bool parallel = tiles > 1 && double(M) * double(O) * double(K) > 1e6;
  const auto widen = [K, w](int64_t o0, int64_t on, std::vector<float>& wide) {
    if (wide.size() < size_t(on * K)) wide.resize(size_t(on * K));
    widen_bf16(w + o0 * K, on * K, wide.data());
    return map(mat<const float>(wide.data(), on, K));
  };
#pragma omp parallel if (parallel)
  {
    std::vector<float> wide;
    int64_t widened = -1;  // the output tile whose rows `wide` holds
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t m0 = (t % tm) * tile.rows, n = t / tm, o0 = n * tile.cols;
      const int64_t mn = std::min(tile.rows, M - m0), on = std::min(tile.cols, O - o0);
      if (M == 1 && K >= 20) {  // (below 20, Eigen may take a coefficient-wise product for a small block)
        for (int64_t r = 0; r < on;) {
          // A lone last row joins the previous block: Eigen computes a one-column result as a dot
          // product, which rounds differently from that row inside the matrix-vector product.
          const int64_t rn = on - r <= kDecodeRows + 1 ? on - r : kDecodeRows;
          Y.block(0, o0 + r, 1, rn).noalias() = X * widen(o0 + r, rn, wide).transpose();
          r += rn;
        }
        widened = -1;
      } else {
        if (widened != n) widen(o0, on, wide), widened = n;
        Y.block(m0, o0, mn, on).noalias() = X.middleRows(m0, mn) * map(mat<const float>(wide.data(), on, K)).transpose();
      }
      if (b) Y.block(m0, o0, mn, on).rowwise() += Eigen::Map<const Eigen::Matrix<float, 1, Eigen::Dynamic>>(b + o0, on);
    }
  }
}

template <class T>
void linear_backward(Mat<const T> x, const T* w, Mat<const T> dy, Mat<T>* dx, T* dw, T* db) {
  const int64_t M = x.rows, K = x.cols, O = dy.cols;
  if constexpr (std::is_same_v<T, float>) {
    // dx (M, K) += dy (M, O) w (O, K); dw (O, K) += dy^T (O, M) x (M, K): transposes are views.
    if (dx) gemm({dy.data, dy.ld, 1}, GemmOperand<float>{w, K, 1}, O, *dx, true, nullptr);
    if (dw) gemm({dy.data, 1, dy.ld}, GemmOperand<float>{x.data, x.ld, 1}, M, mat(dw, O, K), true, nullptr);
    dx = nullptr, dw = nullptr;  // what is left is db
  }
  const Map<const T> X = map(x), G = map(dy), Wm = map(mat(w, O, K));
  if (dx) {  // float64 from here
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
