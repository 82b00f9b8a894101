// Forward and backward of every op the trainable models are built from, written once for float
// (training) and double (the finite-difference checks in the tests), on plain row-major matrix views
// of one sequence (llm.c style: the model owns the buffers, the ops own only arithmetic).
// Conventions: a backward ADDS into every gradient it is given (callers zero them), so uses of a
// shared parameter (tied embedding, an implicit filter's one Sin `freq`) sum without extra code; a null
// gradient pointer means "not needed". Work is split over rows or channels in blocks whose bounds
// depend only on the sizes and every cross-block reduction runs in a fixed order, so gradients are
// bit-identical for any thread count. Letters: L length, D channels, N state size, V vocabulary.
#pragma once

#include "core/nn/mat.h"

#include <cstdint>
#include <span>

namespace longseq::train {

// Row-major matrix windows (core/nn/mat.h), shared with the layers' backends.
using nn::Mat;
using nn::mat;

// y (M, O) = x (M, K) w (O, K)^T + b (O, may be null).
template <class T>
void linear_forward(Mat<const T> x, const T* w, const T* b, Mat<T> y);
// dx += dy w; dw += dy^T x; db += column sums of dy. Any of dx, dw, db may be null.
template <class T>
void linear_backward(Mat<const T> x, const T* w, Mat<const T> dy, Mat<T>* dx, T* dw, T* db);

// Row norms over the last dimension, statistics accumulated in double. rstd (and mean) per row are
// saved for the backward.
template <class T>
void rms_norm_forward(Mat<const T> x, const T* w, double eps, Mat<T> y, T* rstd);
template <class T>
void rms_norm_backward(Mat<const T> x, const T* w, const T* rstd, Mat<const T> dy, Mat<T> dx, T* dw);
template <class T>
void layer_norm_forward(Mat<const T> x, const T* w, const T* b, double eps, Mat<T> y, T* mean, T* rstd);
template <class T>
void layer_norm_backward(Mat<const T> x, const T* w, const T* mean, const T* rstd, Mat<const T> dy, Mat<T> dx, T* dw,
                         T* db);

// Causal depthwise conv: out[t, c] = act(b[c] + sum_k w[c, k] x[t - (W-1) + k, c]), with rows before
// t = 0 taken from init (W-1, D) when given (zeros otherwise); act = SiLU when `silu`. The backward
// recomputes the pre-activation rather than storing it.
template <class T>
struct ConvGrad {
  Mat<const T> x;
  const T* w = nullptr;     // (D, W)
  const T* b = nullptr;     // (D) or null
  const T* init = nullptr;  // (W - 1, D) or null
  int64_t W = 0;
  bool silu = false;
};
template <class T>
void causal_conv1d_forward(const ConvGrad<T>& a, Mat<T> out);
// dinit (W - 1, D) may be null.
template <class T>
void causal_conv1d_backward(const ConvGrad<T>& a, Mat<const T> dout, Mat<T> dx, T* dw, T* db, T* dinit);

// Selective scan (see core/ops/selective_scan.h for the math) over one sequence. The forward keeps
// only the states at chunk starts (ceil(L / chunk), D, N); the backward walks the chunks in reverse,
// recomputing each chunk's states from its saved start, so memory is O(L D) + O(chunk D N), never
// O(L D N).
template <class T>
struct ScanGrad {
  Mat<const T> u, delta, B, C, z;  // u, delta, z (L, D); B, C (L, N); z may have null data
  const T* A = nullptr;             // (D, N)
  const T* Dskip = nullptr;         // (D) or null
  const T* delta_bias = nullptr;    // (D) or null
  const T* h0 = nullptr;            // (D, N) initial state or null (zeros)
  bool softplus = true;
  int64_t chunk = 256;
};
template <class T>
struct ScanGrads {
  Mat<T> du, ddelta, dB, dC, dz;  // shapes as the inputs; dz unused without z
  T* dA = nullptr;                // (D, N)
  T* dDskip = nullptr;            // (D)
  T* ddelta_bias = nullptr;       // (D)
  T* dh0 = nullptr;               // (D, N), or null
};
int64_t scan_chunks(int64_t L, int64_t chunk);
// out (L, D); chunk_states (scan_chunks(L, chunk), D, N); h_last (D, N) may be null.
template <class T>
void selective_scan_forward(const ScanGrad<T>& a, Mat<T> out, T* chunk_states, T* h_last);
template <class T>
void selective_scan_backward(const ScanGrad<T>& a, const T* chunk_states, Mat<const T> dout, const ScanGrads<T>& g);

// y[t, c] = sum_{s <= t} k[s, c] u[t - s, c] by FFT (exact linear convolution, FFTW in T's precision).
template <class T>
void fft_causal_conv_forward(Mat<const T> u, Mat<const T> k, Mat<T> y);
// du += correlation of dy with k; dk += correlation of dy with u (either may be null).
template <class T>
void fft_causal_conv_backward(Mat<const T> u, Mat<const T> k, Mat<const T> dy, Mat<T>* du, Mat<T>* dk);

// out[l] = table[ids[l]]; dtable[ids[l]] += dout[l] (rows in order: deterministic).
template <class T>
void embedding_forward(std::span<const int64_t> ids, const T* table, int64_t V, Mat<T> out);
template <class T>
void embedding_backward(std::span<const int64_t> ids, Mat<const T> dout, T* dtable);

// Sum over rows with targets[r] >= 0 of -log softmax(logits[r])[targets[r]] (rows with target < 0 are
// ignored); dlogits[r] = scale * (softmax - onehot) for counted rows, 0 for ignored ones.
template <class T>
double cross_entropy(Mat<const T> logits, std::span<const int64_t> targets, double scale, Mat<T> dlogits);

// Raw-audio front end. The sample an 8-bit mu-law code stands for (inverse of audio/'s mu_law_encode).
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

}  // namespace longseq::train
