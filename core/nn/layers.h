// The layer types models are made of, each written once against the op set of core/nn/backend.h:
// one forward that keeps what its backward needs, one backward (llm.c-style pairs), for every
// backend and precision. A layer maps (L, d_in) to (L, d_out) and names its parameters relative to
// a prefix (the released names: mamba_ssm's mixer, the HyenaDNA port's operator); the family that
// uses it gives the prefix, so its tensor-name table is written once. The residual structure around
// layers (x += op(norm(x))), pooling and heads belong to the model (core/train/grad_model.h).
// Letters: L tokens, d model width, D inner channels, N state size, R dt rank, W conv width,
// O implicit-filter width, E positional features.
#pragma once

#include "core/nn/backend.h"
#include "core/random.h"
#include "core/tensor.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace longseq::nn {

// One pass's view of a model's flat parameter table: on the backend (w, and g for the gradients,
// null when none are wanted) and on the host (for small tensors derived there, e.g. A = -exp(A_log)).
// An inference model may keep linear weights in bf16 as the file stores them (ParamDecl::matrix):
// their offsets are kBf16 + an index into `bf16`, one pointer per such tensor (host memory), read
// only through matrix(); at() on one is a layer bug.
template <class T>
struct Params {
  static constexpr int64_t kBf16 = int64_t(1) << 56;
  const T* w = nullptr;
  T* g = nullptr;
  const T* host = nullptr;
  const uint16_t* const* bf16 = nullptr;
  const T* at(int64_t offset) const { return offset < 0 ? nullptr : w + checked(offset); }
  T* grad(int64_t offset) const { return g && offset >= 0 ? g + checked(offset) : nullptr; }
  const T* host_at(int64_t offset) const { return offset < 0 ? nullptr : host + checked(offset); }
  // A linear layer's weight, whichever table holds it.
  LinearWeight<T> matrix(int64_t offset) const {
    if (offset < kBf16) return at(offset);
    LS_CHECK(bf16, "a bf16 weight without its table (a model bug)");
    return LinearWeight<T>::of_bf16(bf16[offset - kBf16]);
  }

 private:
  static int64_t checked(int64_t offset) {
    LS_CHECK(offset < kBf16, "a bf16-kept weight read as a float table entry (a layer bug: use Params::matrix)");
    return offset;
  }
};

// Offset of a named tensor in the flat table, or -1 when the model has none of that name.
using OffsetOf = std::function<int64_t(const std::string& name)>;

// A layer's parameter as it declares it: the full name, shape, whether it is a buffer (stored,
// never trained) and its reference initialisation (fills shape_numel(shape) floats from `rng`). A
// model description built from these lists has one table of names for creation, loading, saving and
// training. `matrix`: a linear layer's (O, K) weight that its layer reads only through
// Params::matrix, so an inference model may keep it in bf16 as stored (half the memory, the same
// results: the CPU widens it per GEMM tile).
struct ParamDecl {
  std::string name;
  Shape shape;
  bool buffer = false;
  std::function<void(Rng& rng, float* out)> init;
  bool matrix = false;
};
using ParamDecls = std::vector<ParamDecl>;

template <class T>
class Layer {  // immutable after construction: model copies share it, the Arenas carry a pass's data
 public:
  virtual ~Layer() = default;
  // Throws naming the layer and the limit when `be` cannot run it (a kernel's width or state size).
  virtual void check(const Backend<T>& be) const { (void)be; }
  // y from x; `saved` keeps what backward needs (its slots belong to this layer for the pass).
  virtual void forward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> y, Arena<T>& saved) const = 0;
  // dx (written) from dy, the forward's input x and `saved`; parameter gradients are added into p.g.
  // `work` holds temporaries (any slot, reused by every layer).
  virtual void backward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<const T> dy, Mat<T> dx, Arena<T>& saved,
                        Arena<T>& work) const = 0;
  // Floats kept in `saved` per token (for the memory estimate).
  virtual int64_t saved_per_token() const = 0;

  // ---- inference: the forward without keeping anything for a backward ----
  // True when running a sequence in pieces, each continuing from the state the previous one left,
  // equals one pass (token-wise layers and recurrences); false for global ones (a long convolution).
  virtual bool streams() const { return true; }
  // True when output row t depends on input rows <= t only (a causal language model's layers);
  // false for a layer that also reads later rows (a bidirectional one).
  virtual bool causal() const { return true; }
  // Floats of state a sequence carries from piece to piece (zeros at its start); 0 for none.
  virtual int64_t state_size() const { return 0; }
  // Floats of state after `tokens` tokens, for a state that grows with the sequence (an attention
  // layer's KV cache); the default is the fixed state_size(). A grown state keeps its first floats
  // in place (the caller copies them into a larger array and zeroes the rest), so a layout must
  // only append.
  virtual int64_t state_size_at(int64_t tokens) const { return (void)tokens, state_size(); }
  // y from x. `state` (state_size() floats, on the backend; null for a layer without one) is
  // continued and left after x's last row; `derived` keeps values made from the weights alone for the
  // next call; `work` holds temporaries. The default runs forward with `work` as its saved slots.
  virtual void infer(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> y, T* state, Derived<T>& derived,
                     Arena<T>& work) const {
    (void)state, (void)derived;
    forward(be, p, x, y, work);
  }
  // Whole-window inference of this(norm(x)) for a layer that does not stream, into y: true when the
  // layer has its own schedule for it on this backend (it applies `norm` to row blocks of x itself,
  // so the normalised window is never held whole: HyenaDNA's 1M-token windows on the CPU); false
  // (the default) leaves it to the caller, which normalises x and calls infer.
  virtual bool infer_window(Backend<T>& be, const Params<T>& p, const Layer<T>& norm, Mat<const T> x, Mat<T> y, Derived<T>& derived,
                            Arena<T>& work) const {
    (void)be, (void)p, (void)norm, (void)x, (void)y, (void)derived, (void)work;
    return false;
  }
  // Tensors of a window of L tokens that depend on the weights alone, under the reference code's
  // names (e.g. the Hyena operator's filter_k (d, L)), from the host weights; empty for most layers.
  virtual std::vector<std::pair<std::string, Tensor>> window_tensors(const Params<T>& p, int64_t L) const {
    (void)p, (void)L;
    return {};
  }
  // A state (host copy) as the named tensors the reference code reports (e.g. mamba_ssm's
  // ssm_state (1, D, N) and conv_state (1, D, W)); empty for a layer without one.
  virtual std::vector<std::pair<std::string, Tensor>> state_tensors(const T* host_state) const {
    (void)host_state;
    return {};
  }
};

// A row norm over d (ops::NormKind): <prefix><weight> (default "weight"), <prefix>bias (LayerNorm).
template <class T>
std::shared_ptr<const Layer<T>> make_norm(const OffsetOf& off, const std::string& prefix, ops::NormKind kind, double eps,
                                          const std::string& weight = "weight");
// RMSNorm (eps inside the root) or LayerNorm.
template <class T>
std::shared_ptr<const Layer<T>> make_norm(const OffsetOf& off, const std::string& prefix, bool rms, double eps) {
  return make_norm<T>(off, prefix, rms ? ops::NormKind::rms : ops::NormKind::layer, eps);
}
ParamDecls norm_params(const std::string& prefix, int64_t d, bool rms, const std::string& weight = "weight");

// mamba_ssm's Mamba-1 mixer, in_proj to out_proj (<prefix>in_proj.weight, conv1d.*, x_proj.weight,
// dt_proj.*, A_log, D, out_proj.*; biases optional as the checkpoint has them).
struct MambaMixerShape {
  int64_t d = 0, D = 0, N = 0, R = 0, W = 0;
  bool bias = false, conv_bias = true;  // in_proj/out_proj biases; the conv's
};
template <class T>
std::shared_ptr<const Layer<T>> make_mamba_mixer(const OffsetOf& off, const std::string& prefix, const MambaMixerShape& s);
// mamba_ssm's initialisation: dt log-uniform in [1e-3, 1e-1] through the dt_proj bias, S4D-real
// A_log, out_proj scaled by 1/sqrt(n_layer), zero in/out_proj biases (when the shape has them).
ParamDecls mamba_mixer_params(const std::string& prefix, const MambaMixerShape& s, int64_t n_layer);

// The HyenaDNA port's order-2 Hyena operator, in_proj to out_proj (<prefix>in_proj.*, short_filter.*,
// out_proj.*, filter_fn.{bias, pos_emb.z, pos_emb.t, modulation.deltas, implicit_filter.<2k>.weight
// / .bias, implicit_filter.1.freq}): x0 | x1 | v = short_conv(in_proj(x)), y = x0 * (k * (x1 v) +
// bias x1 v) with k the implicit filter (an MLP with sin activations over positional features,
// times an exponential decay), rows [:L] of its max-length grid.
struct HyenaShape {
  int64_t d = 0, W = 0, O = 0, E = 0, inner = 0;  // inner: Linear+Sin pairs before the last Linear
  int64_t max_len = 0;                            // rows of the positional grid
  double modulation_shift = 0.05;
};
template <class T>
std::shared_ptr<const Layer<T>> make_hyena_operator(const OffsetOf& off, const std::string& prefix, const HyenaShape& s);
// The HF port's initialisation: normal(0, 0.02) projections (out_proj with resid_std), default conv
// and implicit-filter init, freq = activation_freq, the positional grid and decay rates below.
ParamDecls hyena_operator_params(const std::string& prefix, const HyenaShape& s, double resid_std, double activation_freq);
// The implicit filter's positional features over a grid of `length` positions: z = [t, cos(f w),
// -sin(f w)] (length, emb_dim) and t (length, 1), as the HyenaDNA port builds them.
void hyena_positional_grid(int64_t length, int64_t emb_dim, float* z, float* t);
// The port's default decay rates of the exponential modulation, one per channel (d).
void hyena_default_deltas(int64_t d, float* deltas);

// Caduceus's BiMamba (BiMambaWrapper, strategy "add", bidirectional_weight_tie): y = fwd(x) +
// flip_L(rev(flip_L(x))) with two Mamba mixers at <prefix>mamba_fwd. and <prefix>mamba_rev. whose
// in_proj and out_proj are one pair of tensors (mamba_fwd's), each computed once per pass; no
// projection biases. Inference runs a long window's directions in row blocks from carried states.
template <class T>
std::shared_ptr<const Layer<T>> make_bimamba(const OffsetOf& off, const std::string& prefix, const MambaMixerShape& s);
ParamDecls bimamba_params(const std::string& prefix, const MambaMixerShape& s, int64_t n_layer);
// The bytes of a window's projections (3 D floats per token) under which BiMamba's inference on the
// host computes in_proj and out_proj once for both directions (default 512 MiB); the setter is for
// tests, which use it to run both schedules.
int64_t bimamba_window_budget();
void set_bimamba_window_budget(int64_t bytes);
// <prefix>mamba_fwd. or <prefix>mamba_rev.
std::string bimamba_direction_prefix(const std::string& prefix, bool reverse);
// The reverse-complement parameter-sharing wrapper (Caduceus's RCPSWrapper) of a layer (L, h) ->
// (L, h): over (L, 2h), y[:, :h] = inner(x[:, :h]) and y[:, h:] = rc(inner(rc(x[:, h:]))), rc
// reversing rows and columns (only the columns for a token-wise inner layer, where the row order
// does not matter; such a wrapper is token-wise too). Wrapping a norm gives the RC norm: the second
// half normalised with the weights reversed.
template <class T>
std::shared_ptr<const Layer<T>> make_rc_wrapper(std::shared_ptr<const Layer<T>> inner, int64_t h);
// y = [x[:, h:], x[:, :h]]: the exchange of channel halves that the released Caduceus-PS block
// (fused add + norm) makes at every block.
template <class T>
std::shared_ptr<const Layer<T>> make_swap_halves(int64_t h);

// ---- StripedHyena 2 (Evo 2; core/nn/striped_hyena.cpp, names as vortex's StripedHyena) ----

// Multi-head causal attention with grouped-query heads and rotary positions: qkv = Wqkv x (no bias;
// rows [Q (H hd) ; K (Hkv hd) ; V (Hkv hd)], the layout vortex permutes the released file's per-head
// rows into at load), rotary (GPT-NeoX halves, positions scaled by pos_scale) on q and k, exact
// softmax attention (ops::causal_attention_forward), out_proj with bias: <prefix>Wqkv.weight,
// <prefix>out_proj.{weight, bias}, <prefix>rotary_emb.inv_freq (a buffer). Streams: its state is a
// KV cache that grows with the sequence (state_size_at), O(L Hkv hd) floats; with a sliding window
// it is bounded (at most 3 window rows).
struct AttentionShape {
  int64_t d = 0, heads = 0, kv_heads = 0;
  double pos_scale = 1.0;  // 1 / rotary_emb_scaling_factor with interpolated positions
  double rotary_base = 10000;
  int64_t window = 0;  // > 0: sliding-window attention over the last `window` keys (approximate, opt-in)
};
template <class T>
std::shared_ptr<const Layer<T>> make_attention(const OffsetOf& off, const std::string& prefix, const AttentionShape& s);
ParamDecls attention_params(const std::string& prefix, const AttentionShape& s);

// A StripedHyena 2 Hyena operator: z = projections(x) (3d, no bias) -> the featurizer's depthwise
// causal conv (short_len taps, no bias, cross-correlation orientation) -> x2 | x1 | v (compute
// layout: the released file interleaves them channel by channel, de-interleaved at load) -> u =
// x1 v -> y = x2 (inner(u)) -> out_filter_dense (with bias). inner is
//   hcs: grouped explicit filter h (groups, 1, len), cross-correlation (h[len-1] on the current token), no D;
//   hcm: grouped explicit filter, true convolution (h[0] on the current token) + D u;
//   hcl: the modal filter (log_poles (d, N, 1), residues (d, N)) over the whole past + D u.
// Channel c uses filter c / (d / groups). Names: <prefix>projections.weight, <prefix>filter.*,
// <prefix>out_filter_dense.{weight, bias}. Streams: FIR states for the convs, the modal state for hcl.
struct StripedHyenaShape {
  enum class Kind { hcs, hcm, hcl };
  Kind kind = Kind::hcs;
  int64_t d = 0, short_len = 3, len = 7, groups = 1, N = 16;  // len, groups: hcs/hcm; N: hcl
};
template <class T>
std::shared_ptr<const Layer<T>> make_striped_hyena_operator(const OffsetOf& off, const std::string& prefix, const StripedHyenaShape& s);
// Initialisation for new models: projections N(0, 0.02), filters and decaying modes as the fixtures'
// README describes (log_poles = -exp(U(log 5e-4, log 0.5)), residues N(0, 2 |log_pole|)).
ParamDecls striped_hyena_operator_params(const std::string& prefix, const StripedHyenaShape& s, double resid_std);

// vortex's ParallelGatedMLP: l3(act(l1 x) * l2 x), no biases; act is exact GELU, or the identity
// (Evo 2 applies GELU in its first block only): <prefix>l1.weight, l2.weight (inner, d), l3.weight (d, inner).
template <class T>
std::shared_ptr<const Layer<T>> make_gated_mlp(const OffsetOf& off, const std::string& prefix, int64_t inner, bool gelu);
ParamDecls gated_mlp_params(const std::string& prefix, int64_t d, int64_t inner, double resid_std);

// fc2(gelu_tanh(fc1(x))), d -> d_inner -> d: <prefix>fc1.*, <prefix>fc2.*.
template <class T>
std::shared_ptr<const Layer<T>> make_gelu_mlp(const OffsetOf& off, const std::string& prefix, int64_t d_inner);
ParamDecls gelu_mlp_params(const std::string& prefix, int64_t d, int64_t d_inner, double resid_std);

}  // namespace longseq::nn
