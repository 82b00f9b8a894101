#include "core/nn/hyena_window.h"

#include "core/error.h"
#include "core/nn/host_view.h"
#include "core/ops/causal_conv1d.h"
#include "core/ops/fft_conv.h"
#include "core/ops/gemm.h"
#include "core/ops/simd.h"
#include "core/threads.h"

#include <atomic>
#include <cmath>

namespace longseq::nn {

namespace {

constexpr int64_t kTokenBlock = 512;  // rows per token block (one thread's unit of work)

// Rows [r0, r0 + n) of each of the `parts` stacked row groups of w (parts * group, cols), concatenated.
Tensor gather_row_groups(const float* w, int64_t cols, int64_t parts, int64_t group, int64_t r0, int64_t n) {
  Tensor out = Tensor::empty({parts * n, cols});
  for (int64_t p = 0; p < parts; ++p) std::copy(w + (p * group + r0) * cols, w + (p * group + r0 + n) * cols, out.data<float>() + p * n * cols);
  return out;
}

// The implicit filter's features before its last Linear: (L, O), sin(freq * Linear(...)) per
// layer, a row block per thread through every layer (only the result is held whole).
Tensor implicit_hidden(const HyenaShape& s, const HyenaWeights& w, int64_t L) {
  LS_CHECK(L <= s.max_len, "sequence of {} tokens exceeds the implicit filter's max_seq_len {} (use a shorter --length)", L, s.max_len);
  const int64_t O = s.O;
  Tensor out = Tensor::empty({L, O});
  for_blocks(L, kTokenBlock, [&](int64_t r0, int64_t rows, int) {
    Tensor h = view(w.z + r0 * s.E, {rows, s.E}), a = Tensor::empty({rows, O}), b = Tensor::empty({rows, O});
    for (int64_t k = 0; k < s.inner; ++k) {
      Tensor next = k + 1 == s.inner ? out.slice(0, r0, rows) : (k % 2 ? b : a);
      linear(h, view(w.mlp_w[size_t(k)], {O, k == 0 ? s.E : O}), view(w.mlp_b[size_t(k)], {O}), next);
      for (int64_t r = 0; r < rows; ++r) {
        float* p = next.data<float>() + r * next.stride(0);
        for (int64_t j = 0; j < O; ++j) p[j] = std::sin(w.freq[j] * p[j]);
      }
      h = next;
    }
  });
  return out;
}

// Filter channels [c0, c0 + cols) into k_block (cols, L), channel-major: the last Linear times the
// exponential modulation exp(-t |delta|) + shift.
void filter_block(const HyenaShape& s, const HyenaWeights& w, const Tensor& hidden, int64_t c0, Tensor& k_block) {
  const int64_t cols = k_block.size(0), L = k_block.size(1), O = hidden.size(1);
  linear(view(w.mlp_w.back() + c0 * O, {cols, O}), hidden, {}, k_block);
  const float shift = float(s.modulation_shift);
#pragma omp parallel for schedule(static) if (L * cols > (1 << 16))
  for (int64_t j = 0; j < cols; ++j) {
    float* k = k_block.data<float>() + j * k_block.stride(0);
    const float rate = -std::abs(w.deltas[c0 + j]);
    int64_t r = 0;
    for (; r + simd::kLanes <= L; r += simd::kLanes)
      simd::store(k + r, simd::load(k + r) * (simd::exp(simd::load(w.t + r) * rate) + shift));
    for (; r < L; ++r) k[r] *= std::exp(w.t[r] * rate) + shift;
  }
}

// Consecutive (rows, cols) views carved out of one flat per-thread scratch array.
class ScratchViews {
 public:
  explicit ScratchViews(float* flat) : flat_(flat) {}
  Tensor next(int64_t rows, int64_t cols) {
    Tensor v = view(mat(flat_ + used_, rows, cols));
    used_ += rows * cols;
    return v;
  }

 private:
  float* flat_;
  int64_t used_ = 0;
};

struct Block {
  int64_t c0 = 0, cb = 0;
  Tensor x0, v, k;  // (cb, L) each, channel-major
};

// Fills b.x0 and b.v = x1 * v for channels [c0, c0 + cb): input rows -> in_proj -> short conv, a token
// block per thread. Each block recomputes the W - 1 rows of history its conv needs (zeros before
// t = 0), which keeps blocks independent; the input rows (the norm) are recomputed per channel block
// rather than stored.
void gated_inputs(const HyenaShape& s, const HyenaWeights& w, const InputRows& input, int64_t L, Block& b, float* scratch,
                  int64_t scratch_per_thread) {
  const int64_t d = s.d, cb = b.cb, H = s.W - 1;
  const Tensor in_w = gather_row_groups(w.in_w, d, 3, d, b.c0, cb), in_b = gather_row_groups(w.in_b, 1, 3, d, b.c0, cb).reshape({3 * cb});
  const Tensor conv_w = gather_row_groups(w.short_w, s.W, 3, d, b.c0, cb);
  const Tensor conv_b = gather_row_groups(w.short_b, 1, 3, d, b.c0, cb).reshape({3 * cb});
  for_blocks(L, kTokenBlock, [&](int64_t t0, int64_t nt, int slot) {
    const int64_t h = std::min(t0, H), rows = nt + H;
    ScratchViews sv(scratch + int64_t(slot) * scratch_per_thread);
    Tensor ns = sv.next(nt + h, d), ps = sv.next(rows, 3 * cb), cs = sv.next(rows, 3 * cb);
    ps.slice(0, 0, H - h).fill(0.0f);
    input(t0 - h, mat(ns.data<float>(), nt + h, d), slot);
    Tensor ps_real = ps.slice(0, H - h, nt + h);
    linear(ns, in_w, in_b, ps_real);
    causal_conv1d({.x = ps.unsqueeze(0), .weight = conv_w, .bias = conv_b, .out = cs.unsqueeze(0)});
    const int64_t rs = cs.stride(0);
    for (int64_t j = 0; j < cb; ++j) {  // into the channel-major x0 and v
      const float* r = cs.data<float>() + H * rs + j;
      float* x0 = b.x0.data<float>() + j * L + t0;
      float* v = b.v.data<float>() + j * L + t0;
      for (int64_t t = 0; t < nt; ++t) {
        const float* rt = r + t * rs;
        x0[t] = rt[0];
        v[t] = rt[cb] * rt[2 * cb];
      }
    }
  });
}

std::atomic<int64_t> g_channel_block{0};

// Channels per block for a window of L tokens.
int64_t channel_block(const HyenaShape& s, int64_t L) {
  const int64_t fixed = g_channel_block.load();
  return std::min(s.d, fixed > 0 ? fixed : fft_conv_block_channels(fft_fast_size(std::max<int64_t>(2 * L - 1, 2)), s.d));
}

}  // namespace

void set_hyena_channel_block(int64_t channels) { g_channel_block = channels; }

void hyena_filter(const HyenaShape& s, const HyenaWeights& w, int64_t L, float* k) {
  Tensor kb = view(mat(k, s.d, L));
  filter_block(s, w, implicit_hidden(s, w, L), 0, kb);
}

void hyena_window(const HyenaShape& s, const HyenaWeights& w, const InputRows& input, Mat<float> y, SharedCache* cache, const void* owner,
                  Arena<float>& work) {
  const int64_t L = y.rows, d = s.d, block = channel_block(s, L), H = s.W - 1;
  LS_CHECK(L <= s.max_len, "sequence of {} tokens exceeds the implicit filter's max_seq_len {} (use a shorter --length)", L, s.max_len);
  const int64_t n = fft_fast_size(std::max<int64_t>(2 * L - 1, 2));
  const size_t spectrum_bytes = size_t(d) * size_t(n / 2 + 1) * 8;
  const auto spectrum = cache ? cache->get<FilterSpectrum>(owner, L, spectrum_bytes, [&] {
    Tensor k = Tensor::empty({d, L});
    hyena_filter(s, w, L, k.data<float>());
    return fft_filter_spectrum(k.transpose(0, 1));
  })
                              : nullptr;
  Tensor hidden;  // implicit-filter features, only when the spectrum is not cached
  if (!spectrum) hidden = implicit_hidden(s, w, L);
  // One token block's working set per thread: the input rows, in_proj's and the conv's outputs.
  const int64_t per_thread = (kTokenBlock + H) * (d + 6 * block);
  float* scratch = work.get(0, per_thread * num_threads());
  Block b;
  b.x0 = view(mat(work.get(1, L * block), block, L)), b.v = view(mat(work.get(2, L * block), block, L));
  b.k = view(mat(work.get(3, L * block), block, L));
  const Tensor yt = view(y);
  for (int64_t c0 = 0; c0 < d; c0 += block) {
    const int64_t cb = std::min(block, d - c0);
    Block blk{.c0 = c0, .cb = cb, .x0 = b.x0.slice(0, 0, cb), .v = b.v.slice(0, 0, cb), .k = b.k.slice(0, 0, cb)};
    gated_inputs(s, w, input, L, blk, scratch, per_thread);
    longseq::FilterSpectrum sub;
    const Tensor vt = blk.v.transpose(0, 1);
    longseq::FftConvArgs args{.u = vt, .y = vt, .bias = view(w.filter_bias + c0, {cb})};
    if (spectrum) {
      sub = {spectrum->L, spectrum->n, spectrum->spec.slice(0, c0, cb)};
      args.spectrum = &sub;
    } else {
      filter_block(s, w, hidden, c0, blk.k);
      args.k = blk.k.transpose(0, 1);
    }
    fft_conv(args);
    constexpr int64_t kTile = 64;  // tokens per tile of the transpose back to token-major y
    for_blocks(L, kTile, [&](int64_t t0, int64_t nt, int) {
      for (int64_t j = 0; j < cb; ++j) {
        const float* vr = blk.v.data<float>() + j * L + t0;
        const float* xr = blk.x0.data<float>() + j * L + t0;
        float* yc = y.data + t0 * y.ld + c0 + j;
        for (int64_t t = 0; t < nt; ++t) yc[t * y.ld] = vr[t] * xr[t];
      }
    });
  }
  // out_proj in place, a token block per thread.
  const Tensor out_w = view(w.out_w, {d, d}), out_b = view(w.out_b, {d});
  for_blocks(L, kTokenBlock, [&](int64_t t0, int64_t nt, int slot) {
    Tensor tmp = view(mat(scratch + int64_t(slot) * per_thread, nt, d));
    Tensor rows = yt.slice(0, t0, nt);
    linear(rows, out_w, out_b, tmp);
    rows.copy_from(tmp);
  });
}

}  // namespace longseq::nn
