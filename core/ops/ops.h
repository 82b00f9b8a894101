// The CPU op library: forward and backward of every op the layers are built from, written once,
// templated on the precision, on row-major Mat windows (core/mat.h) of one sequence (llm.c style:
// callers own the buffers, ops own only arithmetic). float is what inference and training run;
// double is what the finite-difference checks differentiate and the tests' float64 oracle for the
// float paths. Where float has a fast schedule (SIMD scan and conv, tiled GEMM, batched FFTW) it is
// the float instantiation of the same op, so each op has one definition per precision and the CPU
// backend (core/nn/cpu_backend.cpp) has one library to call.
// Conventions: a backward ADDS into every gradient it is given (callers zero them), so uses of a
// shared parameter sum without extra code; a null gradient pointer means "not needed". Work is split
// over rows or channels in blocks whose bounds depend only on the sizes and every cross-block
// reduction runs in a fixed order, so results are bit-identical for any thread count.
// Letters: L length (rows), D channels, N state size, V vocabulary, W conv width.
#pragma once

#include "core/mat.h"
#include "core/memory.h"
#include "kernels/attention_mask.h"

#include <cstdint>
#include <mutex>
#include <span>

namespace longseq::ops {

// ---- linear (linear.cpp: the packed GEMM of gemm.h; Eigen for float64 and single rows) ---------
// y (M, O) = x (M, K) w (O, K)^T + b (O, may be null), the nn.Linear convention.
template <class T>
void linear_forward(Mat<const T> x, const T* w, const T* b, Mat<T> y);
// The same with w stored bf16 (an inference model's weights as the file keeps them): the result has
// the bits of linear_forward on the widened weights (the same tiles; bf16 -> fp32 is exact).
void linear_forward_bf16(Mat<const float> x, const uint16_t* w, const float* b, Mat<float> y);
// How the float forward multiplies two or more rows: fp32 products (the default, gemm.h's
// definition) or bf16 products summed in fp32 (gemm_bf16_products: activations and weights rounded
// to bf16, about twice as fast where the CPU has AVX512_BF16; approximate, opted into with
// `--matmul bf16`). Process-wide: set once before work starts. Backward products stay fp32.
enum class Matmul { fp32, bf16 };
// Throws longseq::Error, with what to do, for bf16 where this build or CPU cannot run it.
void set_matmul(Matmul m);
Matmul matmul();
// dx += dy w; dw += dy^T x; db += column sums of dy. Any of dx, dw, db may be null.
template <class T>
void linear_backward(Mat<const T> x, const T* w, Mat<const T> dy, Mat<T>* dx, T* dw, T* db);

// ---- norms (statistics in double; rstd and mean per row saved for the backward) ---------------
// A row norm's formula: LayerNorm; RMSNorm with eps inside the root, rstd = 1 / sqrt(mean(x^2) + eps)
// (mamba_ssm, Caduceus, the hybrid); or RMSNorm with eps added to the root, rstd = 1 / (sqrt(mean(x^2))
// + eps) (StripedHyena's RMSNorm, Evo 2).
enum class NormKind { layer, rms, rms_eps_outside };
// y = x rstd w; rstd per row saved. eps_outside: the second RMSNorm formula above.
template <class T>
void rms_norm_forward(Mat<const T> x, const T* w, double eps, bool eps_outside, Mat<T> y, T* rstd);
template <class T>
void rms_norm_backward(Mat<const T> x, const T* w, double eps, bool eps_outside, const T* rstd, Mat<const T> dy, Mat<T> dx, T* dw);
template <class T>
void layer_norm_forward(Mat<const T> x, const T* w, const T* b, double eps, Mat<T> y, T* mean, T* rstd);
template <class T>
void layer_norm_backward(Mat<const T> x, const T* w, const T* mean, const T* rstd, Mat<const T> dy, Mat<T> dx, T* dw,
                         T* db);

// ---- causal attention and rotary positions (attention.cpp) --------------------------------------
// Multi-head causal softmax attention with grouped-query heads, exact, never materialising the
// (Lq, S) score matrix: each query row runs over its keys in tiles with an online softmax (a running
// maximum and sum, FlashAttention's recurrence), so memory is O(Lq + S) whatever the length. q is
// (Lq, H hd), k and v (S, Hkv hd); query row i sits at position offset + i and sees keys 0 ..
// offset + i (a KV cache holding `offset` earlier keys: decode and chunked prefill), so S >= offset +
// Lq; with a `window`, only the last `window` of them (kernels/attention_mask.h). Query head h reads key/value head h / (H / Hkv). Rows are independent and computed in a fixed
// order: results do not depend on the thread count. Letters: H heads, Hkv key/value heads, hd head
// width, S keys.
template <class T>
struct AttentionArgs {
  Mat<const T> q, k, v;
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
  int64_t offset = 0;
  double scale = 0;    // 0: 1 / sqrt(head_dim)
  int64_t window = 0;  // > 0: a query at position p sees keys p - window + 1 .. p only (sliding-window
                       // attention, an approximation a model opts into); 0: every earlier key
};

// y (Lq, H hd); lse (H, Lq) or null: each row's log-sum-exp of its scaled scores (the backward's).
template <class T>
void causal_attention_forward(const AttentionArgs<T>& a, Mat<T> y, T* lse);
// dq (Lq, H hd), dk, dv (S, Hkv hd) += the gradients of sum(dy * y), from the forward's y and lse
// (the probabilities are recomputed, never stored: FlashAttention-2's backward). Work is split over
// key/value heads (each owns its dk, dv rows and its query heads' dq): any thread count gives the
// same bits.
template <class T>
void causal_attention_backward(const AttentionArgs<T>& a, Mat<const T> y, const T* lse, Mat<const T> dy, Mat<T> dq, Mat<T> dk,
                               Mat<T> dv);

// Rotary position embedding, GPT-NeoX style (non-interleaved halves), in place on every head of x
// (L, heads hd): channel pairs (i, i + hd/2), i < hd/2, turn by the angle p inv_freq[i] at position
// p = (offset + t) * pos_scale (pos_scale < 1: interpolated positions). The angles are computed in
// double; `inverse` turns the other way (the backward of the forward).
template <class T>
void rotary(Mat<T> x, int64_t heads, int64_t head_dim, const T* inv_freq, int64_t offset, double pos_scale, bool inverse);

// ---- causal depthwise conv (causal_conv1d.cpp) --------------------------------------------------
// out[t, c] = act(b[c] + sum_k w[c, k] x[t - W + 1 + k, c]); act = SiLU when `silu`. Rows before
// t = 0 read as zeros, or, with a `state` (inference that continues a sequence), as the state's last
// W - 1 rows; the forward then makes the state the last W inputs of (state, x), mamba_ssm's
// conv_state transposed, so chunk after chunk equals one pass. The backward recomputes the
// pre-activation rather than storing it, and reads the state as the forward found it.
template <class T>
struct ConvArgs {
  Mat<const T> x;
  const T* w = nullptr;  // (D, W)
  const T* b = nullptr;  // (D) or null
  int64_t W = 0;
  bool silu = false;
  T* state = nullptr;  // (W, D), oldest first, or null
};
template <class T>
void causal_conv1d_forward(const ConvArgs<T>& a, Mat<T> out);
// dstate (W, D; row 0 unused) may be null.
template <class T>
void causal_conv1d_backward(const ConvArgs<T>& a, Mat<const T> dout, Mat<T> dx, T* dw, T* db, T* dstate);

// ---- modal (diagonal IIR) long filter (modal.cpp), StripedHyena 2's hcl ------------------------
// A channel c's filter is a sum of N decaying real modes, h[t, c] = sum_s R[c, s] p[c, s]^t with the
// poles p = exp(log_poles) (D, N) and residues R (D, N). The same convolution is the recurrence
//   S[c, s](t) = p[c, s] S[c, s](t - 1) + u[t, c],   y[t, c] = gate[t, c] (sum_s R[c, s] S[c, s](t) + Dskip[c] u[t, c])
// which needs no window: it streams any length in O(D N) state, and chunk after chunk (the state
// carried) equals one pass. Channels are independent: any thread split gives the same bits.
template <class T>
struct ModalArgs {
  Mat<const T> u;                  // (L, D)
  Mat<const T> gate;               // (L, D); data null: no gate
  const T* log_poles = nullptr;    // (D, N); p = exp(log_poles) is made in double: p^t over thousands
                                   // of steps would carry a float pole's rounding (t x 6e-8)
  const T* residues = nullptr;     // (D, N)
  const T* Dskip = nullptr;        // (D) or null
  int64_t N = 0;
  T* state = nullptr;              // (D, N), zeros at a sequence's start; advanced to the last row
};
template <class T>
void modal_scan(const ModalArgs<T>& a, Mat<T> y);
// The filter itself, k (L, D) with k[t, c] = sum_s R[c, s] exp(log_poles[c, s] t) (powers in double),
// for the window schedule of training (an FFT convolution with its backward); and its backward:
// dR[c, s] += sum_t dk[t, c] p^t, dlog_poles[c, s] += sum_t dk[t, c] R t p^t.
template <class T>
void modal_filter(const T* log_poles, const T* residues, int64_t N, Mat<T> k);
template <class T>
void modal_filter_backward(const T* log_poles, const T* residues, int64_t N, Mat<const T> dk, T* dlog_poles, T* dresidues);

// ---- selective scan (selective_scan.cpp), Mamba-1's S6, per channel d and state n --------------
//   dt_t = softplus(delta_t + delta_bias)   (when `softplus`)
//   h_t  = exp(dt_t A[d, n]) h_{t-1} + dt_t B_t[n] u_t,   y_t = C_t . h_t + Dskip[d] u_t,   y_t *= silu(z_t)
// from a zero state or, with a `state` (D, N), from it; the state then holds the state after the
// last row. The forward may keep the states at chunk starts (`saved`, scan_chunks(L, chunk) x D x N):
// the backward walks the chunks in reverse, recomputing each from its start, so memory is O(L D) +
// O(chunk D N), never O(L D N). Without `saved` (inference) float runs the SIMD path (channels in
// lanes, states in registers, polynomial exp2).
template <class T>
struct ScanArgs {
  Mat<const T> u, delta, B, C, z;  // u, delta, z (L, D); B, C (L, N); z.data null: no gate
  const T* A = nullptr;             // (D, N)
  const T* Dskip = nullptr;         // (D) or null
  const T* delta_bias = nullptr;    // (D) or null
  bool softplus = true;
  T* state = nullptr;  // (D, N) or null
  int64_t chunk = 256;  // rows per saved state
};
template <class T>
struct ScanGrads {
  Mat<T> du, ddelta, dB, dC, dz;  // shapes as the inputs; dz unused without z
  T* dA = nullptr;                // (D, N)
  T* dDskip = nullptr;            // (D)
  T* ddelta_bias = nullptr;       // (D)
  T* dh0 = nullptr;               // (D, N): the initial state's gradient, or null
};
int64_t scan_chunks(int64_t L, int64_t chunk);
template <class T>
void selective_scan_forward(const ScanArgs<T>& a, Mat<T> y, T* saved);
template <class T>
void selective_scan_backward(const ScanArgs<T>& a, const T* saved, Mat<const T> dy, const ScanGrads<T>& g);

// ---- causal long convolution by FFT (fft_conv.cpp, FFTW in T's precision) ----------------------
// The transform size is the smallest 2^a 3^b 5^c 7^d >= 2L - 1, so results are the exact linear
// convolution. FFTW's planner is not thread-safe in any precision: every plan of the process is
// made under this lock, whose owner returns FFTW's planner memory at exit.
std::mutex& fftw_planner_mutex();
int64_t fft_size(int64_t L);
// y[t, c] = sum_{s <= t} k[s, c] u[t - s, c] (u, k, y (L, D)).
template <class T>
void fft_causal_conv_forward(Mat<const T> u, Mat<const T> k, Mat<T> y);
// du += correlation of dy with k; dk += correlation of dy with u (either may be null).
template <class T>
void fft_causal_conv_backward(Mat<const T> u, Mat<const T> k, Mat<const T> dy, Mat<T>* du, Mat<T>* dk);
// Inference on channel-major rows, transforms batched over rows: the filters' spectra (C, n/2 + 1)
// complex, scaled by 1/n, reusable for every input of length L; and, in place for the rows of
// v (C, L), v[c] = (v[c] * k[c])[: L] + bias[c] v[c] with the filters given as their spectra
// (C rows of spectrum.row) or, when `spectrum` is null, as k (C, L).
struct FilterSpectrum {
  int64_t L = 0, n = 0;
  AlignedVector<float> spec;
  const float* row(int64_t c) const { return spec.data() + c * (n / 2 + 1) * 2; }
};
FilterSpectrum fft_filter_spectrum(Mat<const float> k);
void fft_conv_rows(Mat<float> v, const float* bias, const float* spectrum, Mat<const float> k);
// Rows per block of a channel-blocked schedule for transforms of size n (a multiple of the batch).
int64_t fft_conv_block_channels(int64_t n, int64_t C);

// ---- layout, embedding, loss, audio front end (elementwise.cpp) ---------------------------------
// y = x with its rows and/or columns in reverse order (neither: a strided copy); x and y (same
// shape) must not overlap. Bidirectional and reverse-complement layers run a sequence backwards
// with it: reversing the rows of an (L, D) window reads it 3' to 5', reversing the columns too is
// the reverse complement of a channel layout that pairs channel c with D - 1 - c.
template <class T>
void flip(Mat<const T> x, Mat<T> y, bool rows, bool cols);
// The token table of a reverse-complement parameter-sharing model (Caduceus-PS): from the stored
// table E (V, h) and the complement of each token, out (V, 2h) row v = [E[v], reversed E[comp[v]]],
// so a token's embedding and its complement's mirror image are one parameter. The backward folds
// dout (V, 2h) back: dE[v] += dout[v, :h], dE[comp[v]] += reversed dout[v, h:].
template <class T>
void rc_token_table(const T* E, int64_t V, int64_t h, std::span<const int64_t> comp, T* out);
template <class T>
void rc_token_table_backward(const T* dout, int64_t V, int64_t h, std::span<const int64_t> comp, T* dE);
// dtable[ids[l]] += dout[l] (rows in order: deterministic).
template <class T>
void embedding_backward(std::span<const int64_t> ids, Mat<const T> dout, T* dtable);
// Sum over rows with targets[r] >= 0 of -log softmax(logits[r])[targets[r]] (rows with target < 0 are
// ignored); dlogits[r] = scale * (softmax - onehot) for counted rows, 0 for ignored ones.
template <class T>
double cross_entropy(Mat<const T> logits, std::span<const int64_t> targets, double scale, Mat<T> dlogits);
// The sample an 8-bit mu-law code stands for (inverse of audio/'s mu_law_encode).
double mu_law_decode(int64_t code);
// frames (L / hop, F): row t holds the F decoded samples ending at (t + 1) * hop, zeros before the
// start (causal, so a frame never looks past its hop). L must be a multiple of hop.
template <class T>
void audio_frames(std::span<const int64_t> codes, int64_t hop, Mat<T> frames);
// Log power of filter pairs: z[t, k] = (log(eps + y[t, 2k]^2 + y[t, 2k+1]^2) - shift) / scale,
// y (T, 2K), z (T, K); a (cos, sin) pair of filters acts as one band of a spectrogram. The fixed
// shift and scale map the range of audio (floor log eps = -11.5, full scale 0) to about [-2, 2], so
// the next linear layer starts in its working range instead of on a large common offset.
inline constexpr double kLogPowerEps = 1e-5, kLogPowerShift = -6.0, kLogPowerScale = 3.0;
// Initial filterbank (2 filters, frame): Hann-windowed (cos, sin) pairs at mel-spaced centres from
// 40 Hz to 0.45 sample_rate, scaled so a unit sine at a centre has power ~1 in its band.
template <class T>
void filterbank_init(int64_t filters, int64_t frame, double sample_rate, T* w);
template <class T>
void log_power_forward(Mat<const T> y, Mat<T> z);
template <class T>
void log_power_backward(Mat<const T> y, Mat<const T> dz, Mat<T> dy);
// Subtracts each column's mean over the rows (per-band mean normalisation of a log spectrogram:
// a fixed channel colouring becomes a constant per band and cancels). The map is its own
// transpose, so the backward applies it to the gradient.
template <class T>
void center_columns(Mat<T> x);

}  // namespace longseq::ops
