// The packed GEMM (gemm.h). One output tile (kTileRows x kTileCols) is one thread's work: for each
// block of kGemmKc k's, the tile's B columns are packed into slivers of NR (widened from bf16 where
// stored so) and its A rows into slivers of MR, then a microkernel computes each MR x NR block of
// the tile in registers and adds it to C. Whatever the ISA (AVX-512: 12 x 32, AVX2: 6 x 16), an
// element of C gets the same fma chain, so the bits are the same on both x86 paths too.
#include "core/ops/gemm.h"

#include "core/error.h"
#include "core/ops/simd.h"
#include "kernels/half.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <immintrin.h>

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

#if defined(__AVX512BF16__)
// out (MR x NR) = sum over kp packed k pairs of a[p][i] . b[p][j], each a pair of bf16 (k even in
// the low half): vdpbf16ps adds both products of a pair to an fp32 lane per step.
void microkernel_bf16(int64_t kp, const uint32_t* a, const uint32_t* b, float* out) {
  static_assert(W == 16);
  __m512 acc[MR][2];
  for (auto& row : acc) row[0] = row[1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kp; ++p, a += MR, b += NR) {
    const auto b0 = (__m512bh)_mm512_loadu_si512(b), b1 = (__m512bh)_mm512_loadu_si512(b + W);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const auto ai = (__m512bh)_mm512_set1_epi32(int32_t(a[i]));
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
    }
  }
  for (int i = 0; i < MR; ++i) _mm512_storeu_ps(out + i * NR, acc[i][0]), _mm512_storeu_ps(out + i * NR + W, acc[i][1]);
}
#endif

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

#if defined(__AVX512BF16__)
uint32_t to_bf16(float v) { return f32_to_bf16(v); }
uint32_t to_bf16(uint16_t v) { return v; }

// 16 pairs of a row contiguous along k: 32 values as 16 words of two bf16 (k even low).
void pair_words(const float* src, uint32_t* out) {
  const __m512bh w = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + 16), _mm512_loadu_ps(src));  // rounds to nearest even
  _mm512_storeu_si512(out, (__m512i)w);
}
void pair_words(const uint16_t* src, uint32_t* out) { std::memcpy(out, src, 64); }

// The same slivers with k's in pairs of bf16 (rounded to nearest even), [k / 2][S] 32-bit words,
// an odd last k paired with 0. A row contiguous along k (x, or w's rows) converts 16 pairs at a
// time: converting one value at a time made packing, not the products, the bf16 GEMM's cost.
template <int S, class T>
void pack_pairs(const T* data, int64_t along_rows, int64_t along_k, int64_t r0, int64_t rows, int64_t k0, int64_t kc, uint32_t* dst) {
  const int64_t kp = (kc + 1) / 2;
  for (int64_t s0 = 0; s0 < rows; s0 += S, dst += kp * S) {
    const int64_t n = std::min<int64_t>(S, rows - s0);
    const T* src = data + (r0 + s0) * along_rows + k0 * along_k;
    int64_t p0 = 0;
    if (along_k == 1 && n == S) {
      alignas(64) uint32_t words[16];
      for (; 2 * p0 + 32 <= kc; p0 += 16)
        for (int64_t i = 0; i < S; ++i) {
          pair_words(src + i * along_rows + 2 * p0, words);
          for (int64_t q = 0; q < 16; ++q) dst[(p0 + q) * S + i] = words[q];
        }
    }
    for (int64_t p = p0; p < kp; ++p)
      for (int64_t i = 0; i < S; ++i) {
        const T* at = src + i * along_rows + 2 * p * along_k;
        const uint32_t lo = i < n ? to_bf16(at[0]) : 0, hi = i < n && 2 * p + 1 < kc ? to_bf16(at[along_k]) : 0;
        dst[p * S + i] = lo | hi << 16;
      }
  }
}
#endif

// The two arithmetics a tile can run: fp32 products (the definition in gemm.h) and, where the CPU
// has AVX512_BF16, bf16 products summed in fp32 (gemm_bf16_products).
struct Fp32Products {
  using Packed = float;
  static int64_t words(int64_t kc) { return kc; }  // packed words per sliver row
  template <int S, class T>
  static void pack(const T* data, int64_t along_rows, int64_t along_k, int64_t rows, int64_t kc, int64_t k0, Packed* dst) {
    ::longseq::ops::pack<S>(data, along_rows, along_k, 0, rows, k0, kc, dst);
  }
  static void kernel(int64_t kc, const Packed* a, const Packed* b, float* out) { microkernel(kc, a, b, out); }
};
#if defined(__AVX512BF16__)
struct Bf16Products {
  using Packed = uint32_t;
  static int64_t words(int64_t kc) { return (kc + 1) / 2; }
  template <int S, class T>
  static void pack(const T* data, int64_t along_rows, int64_t along_k, int64_t rows, int64_t kc, int64_t k0, Packed* dst) {
    pack_pairs<S>(data, along_rows, along_k, 0, rows, k0, kc, dst);
  }
  static void kernel(int64_t kc, const Packed* a, const Packed* b, float* out) { microkernel_bf16(words(kc), a, b, out); }
};
#endif

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

// C (+)= packed A packed B over kc k's: the microkernel per MR x NR block.
template <class Arith>
void products(const typename Arith::Packed* a, const typename Arith::Packed* b, int64_t kc, Mat<float> c, bool accumulate) {
  alignas(64) float out[MR * NR];
  const int64_t words = Arith::words(kc);
  for (int64_t j0 = 0; j0 < c.cols; j0 += NR)
    for (int64_t i0 = 0; i0 < c.rows; i0 += MR) {
      Arith::kernel(kc, a + i0 * words, b + j0 * words, out);
      add_block(out, std::min<int64_t>(MR, c.rows - i0), std::min<int64_t>(NR, c.cols - j0), c.row(i0) + j0, c.ld, !accumulate);
    }
}

template <class Arith, class TB>
void gemm_tile(GemmOperand<float> a, GemmOperand<TB> b, int64_t K, Mat<float> c, bool accumulate, const float* bias, Panels& p) {
  using P = typename Arith::Packed;
  static_assert(sizeof(P) == sizeof(float));
  for (int64_t k0 = 0; k0 < K; k0 += kGemmKc) {
    const int64_t kc = std::min(kGemmKc, K - k0);
    Arith::template pack<NR>(b.data, b.col_stride, b.row_stride, c.cols, kc, k0, reinterpret_cast<P*>(p.b.get()));
    Arith::template pack<MR>(a.data, a.row_stride, a.col_stride, c.rows, kc, k0, reinterpret_cast<P*>(p.a.get()));
    products<Arith>(reinterpret_cast<const P*>(p.a.get()), reinterpret_cast<const P*>(p.b.get()), kc, c, k0 > 0 || accumulate);
  }
  if (K == 0 && !accumulate)
    for (int64_t i = 0; i < c.rows; ++i) std::fill(c.row(i), c.row(i) + c.cols, 0.0f);
  if (bias)
    for (int64_t i = 0; i < c.rows; ++i)
      for (int64_t j = 0; j < c.cols; ++j) c.at(i, j) += bias[j];
}

template <class Arith, class TB>
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
      gemm_tile<Arith>(at, bt, K, c.rows_slice(m0, mn).cols_slice(n0, nn), accumulate, bias ? bias + n0 : nullptr, panels);
    }
  }
}

template <class TB>
void gemm_bf16_tiles(GemmOperand<float> a, GemmOperand<TB> b, int64_t K, Mat<float> c, bool accumulate, const float* bias) {
#if defined(__AVX512BF16__)
  gemm_tiles<Bf16Products>(a, b, K, c, accumulate, bias);
#else
  LS_CHECK(false, "bf16 products need a CPU with AVX512_BF16 and a build for it (-march=native on such a CPU); use fp32 matmuls");
#endif
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
  products<Fp32Products>(a, b, K, c, accumulate);
}

void gemm(GemmOperand<float> a, GemmOperand<float> b, int64_t K, Mat<float> c, bool accumulate, const float* bias) {
  gemm_tiles<Fp32Products>(a, b, K, c, accumulate, bias);
}
void gemm(GemmOperand<float> a, GemmOperand<uint16_t> b, int64_t K, Mat<float> c, bool accumulate, const float* bias) {
  gemm_tiles<Fp32Products>(a, b, K, c, accumulate, bias);
}

bool gemm_bf16_products_supported() {
#if defined(__AVX512BF16__)
  return true;
#else
  return false;
#endif
}
void gemm_bf16_products(GemmOperand<float> a, GemmOperand<float> b, int64_t K, Mat<float> c, bool accumulate, const float* bias) {
  gemm_bf16_tiles(a, b, K, c, accumulate, bias);
}
void gemm_bf16_products(GemmOperand<float> a, GemmOperand<uint16_t> b, int64_t K, Mat<float> c, bool accumulate, const float* bias) {
  gemm_bf16_tiles(a, b, K, c, accumulate, bias);
}

}  // namespace longseq::ops
