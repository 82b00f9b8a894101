// The packed GEMM (gemm.h). One output tile (kTileRows x kTileCols) is one thread's work: for each
// block of kGemmKc k's, the tile's B columns are packed into slivers of NR (widened from bf16 where
// stored so) and its A rows into slivers of MR, then a microkernel computes each MR x NR block of
// the tile in registers and adds it to C. Whatever the ISA (AVX-512: 12 x 32, AVX2: 6 x 16), an
// element of C gets the same fma chain, so the bits are the same on both x86 paths too.
#include "core/ops/gemm.h"

#include "core/ops/simd.h"
#include "kernels/half.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdlib>
#include <memory>

namespace longseq::ops {

namespace {

// The register block: MR rows x two vectors of columns. AVX-512: 24 accumulators + 2 B vectors + a
// broadcast = 27 of 32 registers; AVX2: 12 + 2 + 1 = 15 of 16.
constexpr int W = simd::kLanes, MR = W == 16 ? 12 : 6, NR = 2 * W;
constexpr int64_t kTileRows = 192, kTileCols = 512;  // multiples of every MR and NR
static_assert(kTileRows % MR == 0 && kTileCols % NR == 0);

float widen(float v) { return v; }
float widen(uint16_t v) { return bf16_to_f32(v); }

// out (MR x NR, row-major) = sum over the kc packed k's of a[k][i] * b[k][j], in k order.
void microkernel(int64_t kc, const float* a, const float* b, float* out) {
  simd::vf acc[MR][2] = {};
  for (int64_t k = 0; k < kc; ++k, a += MR, b += NR) {
    const simd::vf b0 = simd::load(b), b1 = simd::load(b + W);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const simd::vf ai = simd::splat(a[i]);
      acc[i][0] = simd::fma(ai, b0, acc[i][0]);
      acc[i][1] = simd::fma(ai, b1, acc[i][1]);
    }
  }
  for (int i = 0; i < MR; ++i) simd::store(out + i * NR, acc[i][0]), simd::store(out + i * NR + W, acc[i][1]);
}

// Rows [r0, r0 + rows) x k's [k0, k0 + kc) of op into slivers of S rows, each laid out [k][S] and
// zero-padded to S rows: the A panel (S = MR) or, with op = B^T, the B panel (S = NR). Walks the
// operand along its unit stride.
template <int S, class T>
void pack(const T* data, int64_t along_rows, int64_t along_k, int64_t r0, int64_t rows, int64_t k0, int64_t kc, float* dst) {
  for (int64_t s0 = 0; s0 < rows; s0 += S, dst += kc * S) {
    const int64_t n = std::min<int64_t>(S, rows - s0);
    const T* src = data + (r0 + s0) * along_rows + k0 * along_k;
    if (along_k == 1) {
      for (int64_t i = 0; i < n; ++i)
        for (int64_t k = 0; k < kc; ++k) dst[k * S + i] = widen(src[i * along_rows + k]);
    } else {
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t i = 0; i < n; ++i) dst[k * S + i] = widen(src[k * along_k + i * along_rows]);
    }
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t i = n; i < S; ++i) dst[k * S + i] = 0.0f;
  }
}

// A thread's packing buffers, kept between calls (64-byte aligned: no vector load splits a line).
struct Panels {
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float[], Free> a, b;
  Panels() : a(alloc(kGemmKc * kTileRows)), b(alloc(kGemmKc * kTileCols)) {}
  static float* alloc(int64_t n) { return static_cast<float*>(std::aligned_alloc(64, size_t(n) * sizeof(float))); }
};

// C tile rows x cols (+)= out, the microkernel's block.
void add_block(const float* out, int64_t rows, int64_t cols, float* c, int64_t ldc, bool assign) {
  for (int64_t i = 0; i < rows; ++i, c += ldc)
    for (int64_t j = 0; j < cols; ++j) c[j] = assign ? out[i * NR + j] : c[j] + out[i * NR + j];
}

template <class TB>
void gemm_tile(GemmOperand<float> a, GemmOperand<TB> b, int64_t K, Mat<float> c, bool accumulate, const float* bias, Panels& p) {
  for (int64_t k0 = 0; k0 < K; k0 += kGemmKc) {
    const int64_t kc = std::min(kGemmKc, K - k0);
    pack<NR>(b.data, b.col_stride, b.row_stride, 0, c.cols, k0, kc, p.b.get());
    pack<MR>(a.data, a.row_stride, a.col_stride, 0, c.rows, k0, kc, p.a.get());
    gemm_packed(p.a.get(), p.b.get(), kc, c, k0 > 0 || accumulate);
  }
  if (K == 0 && !accumulate)
    for (int64_t i = 0; i < c.rows; ++i) std::fill(c.row(i), c.row(i) + c.cols, 0.0f);
  if (bias)
    for (int64_t i = 0; i < c.rows; ++i)
      for (int64_t j = 0; j < c.cols; ++j) c.at(i, j) += bias[j];
}

template <class TB>
void gemm_tiles(GemmOperand<float> a, GemmOperand<TB> b, int64_t K, Mat<float> c, bool accumulate, const float* bias) {
  assert(c.rows >= 0 && c.cols >= 0 && K >= 0);
  const int64_t M = c.rows, N = c.cols;
  const int64_t tm = (M + kTileRows - 1) / kTileRows, tn = (N + kTileCols - 1) / kTileCols, tiles = tm * tn;
  const bool parallel = tiles > 1 && double(M) * double(N) * double(K) > 1e6;
#pragma omp parallel if (parallel)
  {
    thread_local Panels panels;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t m0 = (t % tm) * kTileRows, n0 = (t / tm) * kTileCols;
      const int64_t mn = std::min(kTileRows, M - m0), nn = std::min(kTileCols, N - n0);
      const GemmOperand<float> at{a.data + m0 * a.row_stride, a.row_stride, a.col_stride};
      const GemmOperand<TB> bt{b.data + n0 * b.col_stride, b.row_stride, b.col_stride};
      gemm_tile(at, bt, K, c.rows_slice(m0, mn).cols_slice(n0, nn), accumulate, bias ? bias + n0 : nullptr, panels);
    }
  }
}

}  // namespace

int64_t gemm_packed_floats(bool a_side, int64_t n, int64_t K) {
  const int64_t s = a_side ? MR : NR;
  return (n + s - 1) / s * s * K;
}
int64_t gemm_b_sliver() { return NR; }
void gemm_pack_a(GemmOperand<float> a, int64_t rows, int64_t K, float* dst) {
  assert(K <= kGemmKc);
  pack<MR>(a.data, a.row_stride, a.col_stride, 0, rows, 0, K, dst);
}
void gemm_pack_b(GemmOperand<float> b, int64_t cols, int64_t K, float* dst) {
  assert(K <= kGemmKc);
  pack<NR>(b.data, b.col_stride, b.row_stride, 0, cols, 0, K, dst);
}

void gemm_packed(const float* a, const float* b, int64_t K, Mat<float> c, bool accumulate) {
  assert(K <= kGemmKc);
  alignas(64) float out[MR * NR];
  for (int64_t j0 = 0; j0 < c.cols; j0 += NR)
    for (int64_t i0 = 0; i0 < c.rows; i0 += MR) {
      microkernel(K, a + i0 * K, b + j0 * K, out);
      add_block(out, std::min<int64_t>(MR, c.rows - i0), std::min<int64_t>(NR, c.cols - j0), c.row(i0) + j0, c.ld, !accumulate);
    }
}

void gemm(GemmOperand<float> a, GemmOperand<float> b, int64_t K, Mat<float> c, bool accumulate, const float* bias) {
  gemm_tiles(a, b, K, c, accumulate, bias);
}
void gemm(GemmOperand<float> a, GemmOperand<uint16_t> b, int64_t K, Mat<float> c, bool accumulate, const float* bias) {
  gemm_tiles(a, b, K, c, accumulate, bias);
}

}  // namespace longseq::ops
