#include "core/nn/hyena_window.h"

#include "core/error.h"
#include "core/ops/ops.h"
#include "core/ops/simd.h"
#include "core/threads.h"

#include <atomic>
#include <cmath>

namespace longseq::nn {

namespace {

constexpr int64_t kTokenBlock = 512;  // rows per token block (one thread's unit of work)

// Rows [r0, r0 + n) of each of the `parts` stacked row groups of w (parts * group, cols), concatenated.
std::vector<float> gather_row_groups(const float* w, int64_t cols, int64_t parts, int64_t group, int64_t r0, int64_t n) {
  std::vector<float> out(size_t(parts * n * cols));
  for (int64_t p = 0; p < parts; ++p) std::copy(w + (p * group + r0) * cols, w + (p * group + r0 + n) * cols, out.data() + p * n * cols);
  return out;
}

// The implicit filter's features before its last Linear: (L, O), sin(freq * Linear(...)) per
// layer, a row block per thread through every layer (only the result is held whole).
std::vector<float> implicit_hidden(const HyenaShape& s, const HyenaWeights& w, int64_t L) {
  LS_CHECK(L <= s.max_len, "sequence of {} tokens exceeds the implicit filter's max_seq_len {} (use a shorter --length)", L, s.max_len);
  const int64_t O = s.O;
  std::vector<float> out(size_t(L * O));
  for_blocks(L, kTokenBlock, [&](int64_t r0, int64_t rows, int) {
    std::vector<float> a(size_t(rows * O)), b(size_t(rows * O));
    Mat<const float> h = mat(w.z + r0 * s.E, rows, s.E);
    for (int64_t k = 0; k < s.inner; ++k) {
      const Mat<float> next = mat(k + 1 == s.inner ? out.data() + r0 * O : (k % 2 ? b : a).data(), rows, O);
      ops::linear_forward<float>(h, w.mlp_w[size_t(k)], w.mlp_b[size_t(k)], next);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < O; ++j) next.at(r, j) = std::sin(w.freq[j] * next.at(r, j));
      h = next;
    }
  });
  return out;
}

// Filter channels [c0, c0 + k.rows) into k (cols, L), channel-major: the last Linear times the
// exponential modulation exp(-t |delta|) + shift.
void filter_block(const HyenaShape& s, const HyenaWeights& w, const std::vector<float>& hidden, int64_t c0, Mat<float> k) {
  const int64_t cols = k.rows, L = k.cols, O = s.O;
  ops::linear_forward<float>(mat(w.mlp_w.back() + c0 * O, cols, O), hidden.data(), nullptr, k);
  const float shift = float(s.modulation_shift);
#pragma omp parallel for schedule(static) if (L * cols > (1 << 16))
  for (int64_t j = 0; j < cols; ++j) {
    float* kr = k.row(j);
    const float rate = -std::abs(w.deltas[c0 + j]);
    int64_t r = 0;
    for (; r + simd::kLanes <= L; r += simd::kLanes)
      simd::store(kr + r, simd::load(kr + r) * (simd::exp(simd::load(w.t + r) * rate) + shift));
    for (; r < L; ++r) kr[r] *= std::exp(w.t[r] * rate) + shift;
  }
}

struct Block {
  int64_t c0 = 0, cb = 0;
  Mat<float> x0, v, k;  // (cb, L) each, channel-major
};

// Fills b.x0 and b.v = x1 * v for channels [c0, c0 + cb): input rows -> in_proj -> short conv, a token
// block per thread. Each block recomputes the W - 1 rows of history its conv needs (zeros before
// t = 0), which keeps blocks independent; the input rows (the norm) are recomputed per channel block
// rather than stored.
void gated_inputs(const HyenaShape& s, const HyenaWeights& w, const InputRows& input, int64_t L, Block& b, float* scratch,
                  int64_t scratch_per_thread) {
  const int64_t d = s.d, cb = b.cb, H = s.W - 1;
  const auto in_w = gather_row_groups(w.in_w, d, 3, d, b.c0, cb), in_b = gather_row_groups(w.in_b, 1, 3, d, b.c0, cb);
  const auto conv_w = gather_row_groups(w.short_w, s.W, 3, d, b.c0, cb), conv_b = gather_row_groups(w.short_b, 1, 3, d, b.c0, cb);
  for_blocks(L, kTokenBlock, [&](int64_t t0, int64_t nt, int slot) {
    const int64_t h = std::min(t0, H), rows = nt + H;
    float* sc = scratch + int64_t(slot) * scratch_per_thread;
    const Mat<float> ns = mat(sc, nt + h, d), ps = mat(sc + (nt + h) * d, rows, 3 * cb), cs = mat(ps.data + rows * 3 * cb, rows, 3 * cb);
    std::fill(ps.data, ps.row(H - h), 0.0f);
    input(t0 - h, ns, slot);
    ops::linear_forward<float>(ns, in_w.data(), in_b.data(), ps.rows_slice(H - h, nt + h));
    ops::causal_conv1d_forward<float>({.x = ps, .w = conv_w.data(), .b = conv_b.data(), .W = s.W}, cs);
    for (int64_t j = 0; j < cb; ++j)  // into the channel-major x0 and v
      for (int64_t t = 0; t < nt; ++t) {
        const float* rt = cs.row(H + t) + j;
        b.x0.at(j, t0 + t) = rt[0];
        b.v.at(j, t0 + t) = rt[cb] * rt[2 * cb];
      }
  });
}

std::atomic<int64_t> g_channel_block{0};

// Channels per block for a window of L tokens.
int64_t channel_block(const HyenaShape& s, int64_t L) {
  const int64_t fixed = g_channel_block.load();
  return std::min(s.d, fixed > 0 ? fixed : ops::fft_conv_block_channels(ops::fft_size(L), s.d));
}

}  // namespace

void set_hyena_channel_block(int64_t channels) { g_channel_block = channels; }

void hyena_filter(const HyenaShape& s, const HyenaWeights& w, int64_t L, float* k) {
  filter_block(s, w, implicit_hidden(s, w, L), 0, mat(k, s.d, L));
}

void hyena_window(const HyenaShape& s, const HyenaWeights& w, const InputRows& input, Mat<float> y, SharedCache* cache, const void* owner,
                  Arena<float>& work) {
  const int64_t L = y.rows, d = s.d, block = channel_block(s, L), H = s.W - 1;
  LS_CHECK(L <= s.max_len, "sequence of {} tokens exceeds the implicit filter's max_seq_len {} (use a shorter --length)", L, s.max_len);
  const size_t spectrum_bytes = size_t(d) * size_t(ops::fft_size(L) / 2 + 1) * 8;
  const auto spectrum = cache ? cache->get<ops::FilterSpectrum>(owner, L, spectrum_bytes, [&] {
    std::vector<float> k(size_t(d * L));
    hyena_filter(s, w, L, k.data());
    return ops::fft_filter_spectrum(mat<const float>(k.data(), d, L));
  })
                              : nullptr;
  std::vector<float> hidden;  // implicit-filter features, only when the spectrum is not cached
  if (!spectrum) hidden = implicit_hidden(s, w, L);
  // One token block's working set per thread: the input rows, in_proj's and the conv's outputs.
  const int64_t per_thread = (kTokenBlock + H) * (d + 6 * block);
  float* scratch = work.get(0, per_thread * num_threads());
  float *x0 = work.get(1, L * block), *v = work.get(2, L * block), *k = work.get(3, L * block);
  for (int64_t c0 = 0; c0 < d; c0 += block) {
    const int64_t cb = std::min(block, d - c0);
    Block blk{.c0 = c0, .cb = cb, .x0 = mat(x0, cb, L), .v = mat(v, cb, L), .k = mat(k, cb, L)};
    gated_inputs(s, w, input, L, blk, scratch, per_thread);
    if (!spectrum) filter_block(s, w, hidden, c0, blk.k);
    ops::fft_conv_rows(blk.v, w.filter_bias + c0, spectrum ? spectrum->row(c0) : nullptr, blk.k);
    constexpr int64_t kTile = 64;  // tokens per tile of the transpose back to token-major y
    for_blocks(L, kTile, [&](int64_t t0, int64_t nt, int) {
      for (int64_t j = 0; j < cb; ++j)
        for (int64_t t = t0; t < t0 + nt; ++t) y.at(t, c0 + j) = blk.v.at(j, t) * blk.x0.at(j, t);
    });
  }
  // out_proj in place, a token block per thread.
  for_blocks(L, kTokenBlock, [&](int64_t t0, int64_t nt, int slot) {
    const Mat<float> tmp = mat(scratch + int64_t(slot) * per_thread, nt, d), rows = y.rows_slice(t0, nt);
    ops::linear_forward<float>(rows, w.out_w, w.out_b, tmp);
    for (int64_t t = 0; t < nt; ++t) std::copy_n(tmp.row(t), d, rows.row(t));
  });
}

}  // namespace longseq::nn
