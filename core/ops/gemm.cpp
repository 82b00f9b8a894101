#include "core/ops/gemm.h"

#include "core/eigen.h"
#include "core/error.h"

namespace longseq {

namespace {

// The output is cut into tiles whose sizes depend only on the problem shape, and each tile is one
// single-threaded Eigen product (Eigen does not nest inside an OpenMP region). Eigen's own threading
// picks its K-blocking from the thread count, which changes the summation order; this keeps results
// bit-identical for any --threads while still using every core.
constexpr int64_t kTileRows = 256;

// Eigen never starts threads of its own. A tile product that runs inside a parallel region whose
// nested team is inactive (a scorer thread calling linear) sees omp_get_num_threads() == 1, and
// Eigen would then "parallelize" it with omp_get_max_threads() threads: one thread runs it, but with
// the K-blocking chosen for several, so results changed with --threads (a long-convolution model's scores in the
// 5th digit). Set once when this file's library is loaded, before any product runs.
[[maybe_unused]] const bool kEigenSingleThreaded = (Eigen::setNbThreads(1), true);
constexpr int64_t kTileCols = 512;

template <class Fn>
void for_each_tile(int64_t M, int64_t N, int64_t K, Fn&& fn) {
  const int64_t tm = (M + kTileRows - 1) / kTileRows, tn = (N + kTileCols - 1) / kTileCols;
  const int64_t tiles = tm * tn;
  const bool parallel = tiles > 1 && double(M) * double(N) * double(K) > 2e6;
#pragma omp parallel for schedule(dynamic, 1) if (parallel)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t m0 = (t / tn) * kTileRows, n0 = (t % tn) * kTileCols;
    fn(m0, std::min(kTileRows, M - m0), n0, std::min(kTileCols, N - n0));
  }
}

}  // namespace

void linear(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y) {
  LS_CHECK(x.dim() == 2 && w.dim() == 2 && y.dim() == 2, "linear: expected 2-D x, w, y; got {}, {}, {}", x.describe(),
           w.describe(), y.describe());
  LS_CHECK(x.size(1) == w.size(1) && y.size(0) == x.size(0) && y.size(1) == w.size(0),
           "linear: shapes x {} w {} y {} do not match (x[M,K] w[O,K] y[M,O])", x.describe(), w.describe(), y.describe());
  auto X = as_matrix(x);
  auto W = as_matrix(w);
  auto Y = as_matrix(y);
  for_each_tile(x.size(0), w.size(0), x.size(1), [&](int64_t m0, int64_t mn, int64_t o0, int64_t on) {
    Y.block(m0, o0, mn, on).noalias() = X.middleRows(m0, mn) * W.middleRows(o0, on).transpose();
  });
  if (bias.defined()) {
    LS_CHECK(bias.dim() == 1 && bias.size(0) == w.size(0) && bias.dtype() == DType::F32 && bias.is_contiguous(),
             "linear: bias {} does not match w {}", bias.describe(), w.describe());
    Y.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias.data<float>(), bias.size(0));
  }
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  LS_CHECK(x.dim() == 2 && w.dim() == 2, "linear: expected 2-D x and w, got {} and {}", x.describe(), w.describe());
  Tensor y = Tensor::empty({x.size(0), w.size(0)});
  linear(x, w, bias, y);
  return y;
}

void gemm(const Tensor& a, const Tensor& b, Tensor& c, float alpha, float beta) {
  LS_CHECK(a.dim() == 2 && b.dim() == 2 && c.dim() == 2 && a.size(1) == b.size(0) && c.size(0) == a.size(0) &&
               c.size(1) == b.size(1),
           "gemm: shapes a {} b {} c {} do not match (a[M,K] b[K,N] c[M,N])", a.describe(), b.describe(), c.describe());
  auto A = as_matrix(a);
  auto B = as_matrix(b);
  auto C = as_matrix(c);
  for_each_tile(a.size(0), b.size(1), a.size(1), [&](int64_t m0, int64_t mn, int64_t n0, int64_t nn) {
    auto Ct = C.block(m0, n0, mn, nn);
    if (beta == 0.0f)
      Ct.noalias() = alpha * (A.middleRows(m0, mn) * B.middleCols(n0, nn));
    else
      Ct.noalias() = alpha * (A.middleRows(m0, mn) * B.middleCols(n0, nn)) + beta * Ct;
  });
}

}  // namespace longseq
