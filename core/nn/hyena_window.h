// The Hyena operator of core/nn/layers.h over a whole window on the CPU, scheduled for memory: the
// same math as the layer's forward (and tested against it), but a 1M-token window needs only the
// output (L, d) plus three (L, channel block) arrays. Channels run in blocks: for each block the
// norm before the layer, in_proj's rows of that block's x0 | x1 | v and the short conv run a token
// block per thread (each recomputing the few rows of history its conv needs), the filter columns come
// from the implicit MLP (or a cached spectrum), and the FFT convolution runs channel-major; out_proj
// then runs a token block at a time in place. Filter spectra of a length are cached in the model's
// SharedCache the second time that length runs (a scorer's thousands of windows), never for a one-off.
#pragma once

#include "core/nn/backend.h"
#include "core/nn/layers.h"

#include <functional>
#include <vector>

namespace longseq::nn {

// The operator's weights (host float, the layer's tensors; mlp_b.back() is null).
struct HyenaWeights {
  const float *in_w = nullptr, *in_b = nullptr, *short_w = nullptr, *short_b = nullptr, *out_w = nullptr, *out_b = nullptr;
  const float *filter_bias = nullptr, *z = nullptr, *t = nullptr, *deltas = nullptr, *freq = nullptr;
  std::vector<const float*> mlp_w, mlp_b;  // the implicit filter's Linear layers, inner + 1 of them
};

// Writes rows [r0, r0 + n) of the layer's input (the norm of the residual stream) into out (n, d).
// Called from several threads at once; `slot` (< num_threads()) is the calling thread's.
using InputRows = std::function<void(int64_t r0, Mat<float> out, int slot)>;

// y (L, d) = out_proj(Hyena(input)). `owner` keys the layer's spectra in `cache` (may be null: none
// are cached). `work` holds the channel blocks.
void hyena_window(const HyenaShape& s, const HyenaWeights& w, const InputRows& input, Mat<float> y, SharedCache* cache,
                  const void* owner, Arena<float>& work);
// Channels per block of hyena_window (0, the default: from the FFT size, the whole width below about
// 400k tokens); for tests of the blocked schedule on short windows.
void set_hyena_channel_block(int64_t channels);
// The long filter for length L, channel-major (d, L): k[c, t] (the fixtures' filter_k).
void hyena_filter(const HyenaShape& s, const HyenaWeights& w, int64_t L, float* k);

}  // namespace longseq::nn
