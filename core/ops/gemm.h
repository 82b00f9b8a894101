// The float GEMM behind linear's forward and backward: packed panels and a register-blocked
// microkernel (BLIS/GotoBLAS shape), written here rather than taken from a BLAS because the project
// needs two guarantees no Debian BLAS states: every output element is one fused-multiply-add chain
// over k in blocks of kGemmKc, the blocks' sums added to C in order, so (1) results are the same bits
// for any thread count and (2) a row's result does not depend on how many rows are multiplied with
// it or where it sits (a streamed chunk gives the rows of the whole window). The tile grid, the
// blocking and the packing change only speed. bf16 right-hand operands are widened while packing, so
// they give the bits of their float values. Measured against Eigen and the ceilings in
// docs/PERFORMANCE.md.
#pragma once

#include "core/mat.h"

#include <cstdint>

namespace longseq::ops {

// Elements of k summed by one chain before it is added to C: part of the result's definition.
inline constexpr int64_t kGemmKc = 256;

// A strided view of a matrix operand: element (r, c) is data[r * row_stride + c * col_stride].
// Either stride may be the unit one, so a transpose is a view (B = W^T for nn.Linear's forward).
template <class T>
struct GemmOperand {
  const T* data = nullptr;
  int64_t row_stride = 0, col_stride = 0;
};

// C (M, N) = A (M, K) B (K, N) [+ C when accumulate] [+ bias (N) per row, when not null].
// C is a row-major window; A, B may be any strided views; B may be float or bf16 (uint16_t bits).
// K == 0 gives C = bias (or leaves C when accumulating). Runs on the OpenMP team in tiles whose
// bounds depend only on M and N. Sizes are the caller's invariant (asserted).
void gemm(GemmOperand<float> a, GemmOperand<float> b, int64_t K, Mat<float> c, bool accumulate, const float* bias);
void gemm(GemmOperand<float> a, GemmOperand<uint16_t> b, int64_t K, Mat<float> c, bool accumulate, const float* bias);

// The same products with both operands rounded to bf16 (nearest even) and the products summed in
// fp32 (AVX512_BF16's vdpbf16ps, two k's per step): twice the fp32 rate, at bf16's 8-bit
// significand for every activation, as a bf16 GPU matmul does. An explicit, approximate option
// (`--matmul bf16`); its sums also depend on neither threads nor row blocking. Throws
// longseq::Error where the build or CPU lacks AVX512_BF16 (see gemm_bf16_products_supported).
bool gemm_bf16_products_supported();
void gemm_bf16_products(GemmOperand<float> a, GemmOperand<float> b, int64_t K, Mat<float> c, bool accumulate, const float* bias);
void gemm_bf16_products(GemmOperand<float> a, GemmOperand<uint16_t> b, int64_t K, Mat<float> c, bool accumulate, const float* bias);

// ---- Packed operands, for an op that reuses one across many small products (attention: a head's
// keys and values for every query block). The same kernel and sums as gemm; one thread.
// Floats a packed operand of n rows of A (a_side) or n columns of B, over K <= kGemmKc, needs.
int64_t gemm_packed_floats(bool a_side, int64_t n, int64_t K);
// Columns of B come in slivers of this many: a view of packed B columns [j0, ...) starts at
// dst + j0 * K for j0 a multiple of it.
int64_t gemm_b_sliver();
// Packs rows [0, rows) of A, or columns [0, cols) of B, over k's [0, K), K <= kGemmKc, into dst.
void gemm_pack_a(GemmOperand<float> a, int64_t rows, int64_t K, float* dst);
void gemm_pack_b(GemmOperand<float> b, int64_t cols, int64_t K, float* dst);
// C (M, N) = packed A (M, K) packed B (K, N) [+ C when accumulate]: gemm's sum for K <= kGemmKc.
// Single-threaded; c's shape says M and N.
void gemm_packed(const float* a, const float* b, int64_t K, Mat<float> c, bool accumulate);

}  // namespace longseq::ops
