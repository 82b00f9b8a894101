// CUDA elementwise activations (GELU tanh and erf, SiLU; forward and backward) and the token embedding
// (gather forward; deterministic scatter-add backward), with the per-element math of
// kernels/activations.h and core/ops/ops.h's embedding_backward.
#pragma once

#include <cstdint>

namespace longseq::cuda {

// A (B, L, D) operand: pointer and batch / token strides; null pointer = absent.
struct BLD {
  const float* __restrict__ ptr = nullptr;
  int64_t b = 0, l = 0;
};

enum class Activation { gelu_tanh, gelu_erf, silu };

// y = act(x) (n contiguous floats; y may equal x); backward dx = dy act'(x) (dx may equal dy).
struct ActivationParams {
  Activation kind = Activation::silu;
  int64_t n = 0;
  const float* x = nullptr;
  const float* dy = nullptr;  // backward only
  float* out = nullptr;       // y, or dx in the backward
};

// Hyena's implicit-filter activation, one frequency per column, over rows x cols contiguous floats:
// forward y[r, c] = sin(freq[c] x[r, c]); backward g = cos(freq[c] x) dy, written to cos_dy when set
// (the frequency's gradient is the column sums of g x), and dx = freq[c] g (dx may equal dy).
struct SinColumnsParams {
  int64_t rows = 0, cols = 0;
  const float* x = nullptr;
  const float* freq = nullptr;  // (cols)
  float* y = nullptr;           // forward
  const float* dy = nullptr;    // backward
  float* dx = nullptr;          // backward
  float* cos_dy = nullptr;      // backward, optional
};

// y += x over n contiguous floats (the residual stream).
void add_inplace(float* y, const float* x, int64_t n);

// out[r, c] = a[r, c] b[r, c] for rows x cols with row strides (Hyena's x1 * v gate).
struct MulRowsParams {
  int64_t rows = 0, cols = 0;
  const float* a = nullptr;
  int64_t lda = 0;
  const float* b = nullptr;
  int64_t ldb = 0;
  float* out = nullptr;
  int64_t ldo = 0;
};
void multiply_rows(const MulRowsParams& p);

// out = x with rows and/or columns reversed (neither: a strided copy), rows x cols with row strides;
// x and out must not overlap (core/ops/ops.h's flip: bidirectional and reverse-complement layers).
struct FlipParams {
  int64_t rows = 0, cols = 0;
  const float* x = nullptr;
  int64_t ldx = 0;
  float* out = nullptr;
  int64_t ldo = 0;
  bool flip_rows = false, flip_cols = false;
};
void flip(const FlipParams& p);

// out[d] = sum over b, t of a x (x2 if set) x (x3 if set), for (B, L, D) operands: bias gradients
// and the like, summed over tiles of L in a fixed order (deterministic). Written, not accumulated.
void column_sums(int64_t batch, int64_t length, int64_t channels, BLD a, BLD x2, BLD x3, float* out);

// out[t, :] = table[ids[t], :]; backward dtable[v, :] = sum over t with ids[t] == v of dout[t, :],
// in token order (no atomics: one thread per (v, channel) scans the ids, O(V x T) id reads, meant
// for the small vocabularies of DNA and audio labels).
struct EmbeddingParams {
  int64_t tokens = 0, dim = 0, vocab = 0;  // T, D, V
  const int64_t* __restrict__ ids = nullptr;
  const float* __restrict__ table = nullptr;  // (V, D)
  float* __restrict__ out = nullptr;          // (T, D) with row stride out_r
  int64_t out_r = 0;
  const float* __restrict__ dout = nullptr;  // backward: (T, D) with row stride dout_r
  int64_t dout_r = 0;
  float* __restrict__ dtable = nullptr;     // backward: (V, D), written
  int* __restrict__ bad_id = nullptr;       // set by the host entry
};

// Device pointers; default stream; synchronize. Throw longseq::Error for bad sizes, an id outside
// [0, V) (naming the token), or a CUDA failure.
void activation_forward(const ActivationParams& p);
void activation_backward(const ActivationParams& p);
void sin_columns_forward(const SinColumnsParams& p);
void sin_columns_backward(const SinColumnsParams& p);
void embedding_forward(const EmbeddingParams& p);
void embedding_backward(const EmbeddingParams& p);

}  // namespace longseq::cuda
