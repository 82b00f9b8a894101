// StripedHyena 2's layers (layers.h): attention with a growing KV cache, the Hyena operator with
// its three inner filters (hcs, hcm, hcl) and the gated MLP, each a forward/backward pair over the
// backend's ops plus an inference path that streams. The grouped explicit filters run as the
// depthwise conv op with one row per channel, expanded from the groups once per pass (inference:
// once per caller, a Derived value) and summed back into the groups in the backward; hcm's true
// convolution is the conv op with the filter reversed and its skip term D on the current-token tap.
// hcl trains through the FFT convolution with the modal filter made explicit for the window, and
// infers through the modal recurrence (ops::modal_scan), which streams any length in O(d N).
#include "core/error.h"
#include "core/nn/init.h"
#include "core/nn/layers.h"
#include "core/nn/mamba_core.h"

#include <cmath>
#include <vector>

namespace longseq::nn {

namespace {

// ---- attention -----------------------------------------------------------------------------------

template <class T>
class Attention final : public Layer<T> {
 public:
  Attention(const OffsetOf& off, const std::string& m, const AttentionShape& s)
      : s_(s), hd_(s.d / s.heads), dq_(s.d), dkv_(s.kv_heads * (s.d / s.heads)), qkv_(required_param(off, m + "Wqkv.weight")),
        ow_(required_param(off, m + "out_proj.weight")), ob_(off(m + "out_proj.bias")), inv_(required_param(off, m + "rotary_emb.inv_freq")) {}

  void check(const Backend<T>& be) const override {
    LS_CHECK(be.supports(Backend<T>::Op::attention), "--device {}: no attention kernel on this device yet; use --device cpu", be.name());
  }

  // saved: 0 qkv (L, dq + 2 dkv) with rotary applied, 1 the heads' output (L, dq), 2 lse (H, L)
  void forward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> y, Arena<T>& s) const override {
    const int64_t L = x.rows;
    const Mat<T> qkv = s.mat(0, L, width()), att = s.mat(1, L, dq_);
    project(be, p, x, qkv, 0);
    be.attention(args(qkv, qkv.cols_slice(dq_, dkv_), qkv.cols_slice(dq_ + dkv_, dkv_), 0), att, s.get(2, s_.heads * L));
    be.linear(att, p.matrix(ow_), p.at(ob_), y);
  }
  void backward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<const T> dy, Mat<T> dx, Arena<T>& s, Arena<T>& w) const override {
    const int64_t L = x.rows;
    const Mat<T> qkv = s.mat(0, L, width()), att = s.mat(1, L, dq_);
    Mat<T> datt = w.mat(0, L, dq_), dqkv = w.mat(1, L, width());
    be.linear_backward(att, p.at(ow_), dy, &datt, false, p.grad(ow_), p.grad(ob_));
    be.attention_backward(args(qkv, qkv.cols_slice(dq_, dkv_), qkv.cols_slice(dq_ + dkv_, dkv_), 0), att, s.get(2, s_.heads * L), datt,
                          dqkv.cols_slice(0, dq_), dqkv.cols_slice(dq_, dkv_), dqkv.cols_slice(dq_ + dkv_, dkv_));
    // q' = R q: dq = R^T dq', the inverse turn (k likewise).
    be.rotary(dqkv.cols_slice(0, dq_), s_.heads, hd_, p.at(inv_), 0, s_.pos_scale, true);
    be.rotary(dqkv.cols_slice(dq_, dkv_), s_.kv_heads, hd_, p.at(inv_), 0, s_.pos_scale, true);
    be.linear_backward(x, p.at(qkv_), dqkv, &dx, false, p.grad(qkv_), nullptr);
  }
  int64_t saved_per_token() const override { return width() + dq_ + s_.heads; }

  // The KV cache: a header (the tokens seen and the position of the first cached row, as floats:
  // exact below 2^24), then one row [k | v] (2 dkv floats) per cached token, appended. Without a
  // window every token stays. With one, the cache holds at most 3 window rows: when the next rows
  // would pass that, the last window - 1 rows (all a later query can see) move to the front, so the
  // memory is bounded and the copying costs under one row per token.
  int64_t state_size() const override { return kHeader; }
  int64_t state_size_at(int64_t tokens) const override {
    return kHeader + (s_.window > 0 ? std::min(tokens, 3 * s_.window) : tokens) * 2 * dkv_;
  }
  void infer(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> y, T* state, Derived<T>&, Arena<T>& work) const override {
    if (!state) return forward(be, p, x, y, work);
    const int64_t step = s_.window > 0 ? s_.window : x.rows;  // a window's bound needs pieces of <= window rows
    for (int64_t r0 = 0; r0 < x.rows; r0 += step) {
      const int64_t n = std::min(step, x.rows - r0);
      infer_rows(be, p, x.rows_slice(r0, n), y.rows_slice(r0, n), state, work);
    }
  }

 private:
  static constexpr int64_t kHeader = 16;  // keeps the rows 64-byte aligned
  void infer_rows(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> y, T* state, Arena<T>& work) const {
    const int64_t n = x.rows, row = 2 * dkv_;
    T head[2];
    be.download(head, state, 2);
    const int64_t seen = int64_t(head[0]);
    int64_t first = int64_t(head[1]), held = seen - first;
    LS_CHECK(seen + n < (int64_t(1) << 24), "attention: {} tokens are past this layer's limit of 2^24", seen + n);
    const Mat<T> qkv = work.mat(0, n, width()), att = work.mat(1, n, dq_);
    project(be, p, x, qkv, seen);
    T* rows = state + kHeader;
    if (s_.window > 0 && held + n > 3 * s_.window) {  // held > 2 window: the kept rows and their new place do not overlap
      const int64_t keep = s_.window - 1;
      be.copy(rows, rows + (held - keep) * row, keep * row);
      first += held - keep, held = keep;
    }
    for (int64_t t = 0; t < n; ++t) be.copy(rows + (held + t) * row, qkv.row(t) + dq_, row);
    const Mat<const T> k{rows, held + n, dkv_, row}, v{rows + dkv_, held + n, dkv_, row};
    be.attention(args(qkv, k, v, held), att, nullptr);
    be.linear(att, p.matrix(ow_), p.at(ob_), y);
    head[0] = T(seen + n), head[1] = T(first);
    be.upload(state, head, 2);
  }
  int64_t width() const { return dq_ + 2 * dkv_; }
  // qkv = Wqkv x, then rotary on q and k at positions offset, offset + 1, ...
  void project(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> qkv, int64_t offset) const {
    be.linear(x, p.matrix(qkv_), nullptr, qkv);
    be.rotary(qkv.cols_slice(0, dq_), s_.heads, hd_, p.at(inv_), offset, s_.pos_scale, false);
    be.rotary(qkv.cols_slice(dq_, dkv_), s_.kv_heads, hd_, p.at(inv_), offset, s_.pos_scale, false);
  }
  ops::AttentionArgs<T> args(Mat<const T> qkv, Mat<const T> k, Mat<const T> v, int64_t offset) const {
    return {.q = qkv.cols_slice(0, dq_), .k = k, .v = v, .heads = s_.heads, .kv_heads = s_.kv_heads, .head_dim = hd_, .offset = offset,
            .window = s_.window};
  }

  AttentionShape s_;
  int64_t hd_, dq_, dkv_;
  int64_t qkv_, ow_, ob_, inv_;
};

// ---- the Hyena operator --------------------------------------------------------------------------

template <class T>
class StripedHyenaOperator final : public Layer<T> {
  using Kind = StripedHyenaShape::Kind;

 public:
  StripedHyenaOperator(const OffsetOf& off, const std::string& m, const StripedHyenaShape& s)
      : s_(s), proj_(required_param(off, m + "projections.weight")), sw_(required_param(off, m + "filter.short_filter_weight")),
        ow_(required_param(off, m + "out_filter_dense.weight")), ob_(off(m + "out_filter_dense.bias")),
        h_(s.kind == Kind::hcl ? -1 : required_param(off, m + "filter.h")), D_(s.kind == Kind::hcs ? -1 : required_param(off, m + "filter.D")),
        lp_(s.kind == Kind::hcl ? required_param(off, m + "filter.log_poles") : -1),
        R_(s.kind == Kind::hcl ? required_param(off, m + "filter.residues") : -1) {
    LS_CHECK(s.kind == Kind::hcl || (s.groups > 0 && s.d % s.groups == 0), "{}filter.h: {} groups do not divide {} channels", m, s.groups, s.d);
  }

  void check(const Backend<T>& be) const override {
    const int64_t width = s_.kind == Kind::hcl ? s_.short_len : std::max(s_.short_len, s_.len);
    LS_CHECK(width <= be.max_conv_width(), "--device {}: a Hyena filter of {} taps exceeds the conv kernel's limit {}; use --device cpu",
             be.name(), width, be.max_conv_width());
    LS_CHECK(s_.kind != Kind::hcl || be.supports(Backend<T>::Op::modal),
             "--device {}: no modal-filter (hcl) kernel on this device yet; use --device cpu", be.name());
  }

  // saved: 0 z (L, 3d), 1 featurizer out c = x2 | x1 | v (L, 3d), 2 u = x1 v (L, d), 3 the inner
  // filter (hcs/hcm: per-channel taps (d, len); hcl: k (L, d)), 4 hcs/hcm: the inner conv's output
  // (L, d), hcl: the FFT convolution's saved, 5 the gated output (L, d)
  void forward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> y, Arena<T>& s) const override {
    const int64_t L = x.rows, d = s_.d;
    const Mat<T> c = s.mat(1, L, 3 * d), u = s.mat(2, L, d), g = s.mat(5, L, d);
    featurize(be, p, x, s.mat(0, L, 3 * d), c, u, nullptr);
    if (s_.kind == Kind::hcl) {
      const Mat<T> k = s.mat(3, L, d);
      be.modal_filter(p.at(lp_), p.at(R_), s_.N, k);
      be.fft_conv({.u = u, .k = k, .gate = c.cols_slice(0, d), .bias = p.at(D_)}, g, s.get(4, be.fft_conv_saved_size(L, d)));
    } else {
      T* taps = s.get(3, d * s_.len);
      expand_taps(be, p, taps);
      const Mat<T> conv = s.mat(4, L, d);
      be.conv1d({.x = u, .w = taps, .b = nullptr, .W = s_.len, .silu = false}, conv);
      be.mul(conv, c.cols_slice(0, d), g);
    }
    be.linear(g, p.matrix(ow_), p.at(ob_), y);
  }

  void backward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<const T> dy, Mat<T> dx, Arena<T>& s, Arena<T>& w) const override {
    const int64_t L = x.rows, d = s_.d;
    const Mat<T> z = s.mat(0, L, 3 * d), c = s.mat(1, L, 3 * d), u = s.mat(2, L, d), g = s.mat(5, L, d);
    Mat<T> dg = w.mat(0, L, d), dc = w.mat(1, L, 3 * d), du = w.mat(2, L, d), dz = w.mat(5, L, 3 * d);
    be.linear_backward(g, p.at(ow_), dy, &dg, false, p.grad(ow_), p.grad(ob_));
    if (s_.kind == Kind::hcl) {
      Mat<T> dk = w.mat(3, L, d);
      be.fft_conv_backward({.u = u, .k = s.mat(3, L, d), .gate = c.cols_slice(0, d), .bias = p.at(D_)}, s.get(4, be.fft_conv_saved_size(L, d)),
                           dg, du, dk, dc.cols_slice(0, d), p.grad(D_));
      if (p.g) be.modal_filter_backward(p.at(lp_), p.at(R_), s_.N, dk, p.grad(lp_), p.grad(R_));
    } else {
      Mat<T> dconv = w.mat(3, L, d);
      be.mul(dg, c.cols_slice(0, d), dconv);
      be.mul(dg, s.mat(4, L, d), dc.cols_slice(0, d));
      T* dtaps = w.get(4, d * s_.len);
      be.zero(dtaps, d * s_.len);
      be.conv1d_backward({.x = u, .w = s.get(3, d * s_.len), .b = nullptr, .W = s_.len, .silu = false}, dconv, du, dtaps, nullptr);
      reduce_taps(be, p, dtaps, w.get(6, s_.len));
    }
    be.mul(du, c.cols_slice(2 * d, d), dc.cols_slice(d, d));  // u = x1 v
    be.mul(du, c.cols_slice(d, d), dc.cols_slice(2 * d, d));
    be.conv1d_backward({.x = z, .w = p.at(sw_), .b = nullptr, .W = s_.short_len, .silu = false}, dc, dz, p.grad(sw_), nullptr);
    be.linear_backward(x, p.at(proj_), dz, &dx, false, p.grad(proj_), nullptr);
  }
  int64_t saved_per_token() const override { return 3 * s_.d + 3 * s_.d + s_.d + 3 * s_.d; }

  // The featurizer conv's last short_len inputs (short_len, 3d), then the inner filter's: the conv's
  // last len inputs (len, d), or the modal state (d, N).
  int64_t state_size() const override { return s_.short_len * 3 * s_.d + inner_state(); }
  void infer(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> y, T* state, Derived<T>& derived, Arena<T>& work) const override {
    const int64_t L = x.rows, d = s_.d;
    const Mat<T> c = work.mat(1, L, 3 * d), u = work.mat(2, L, d), g = work.mat(5, L, d);
    featurize(be, p, x, work.mat(0, L, 3 * d), c, u, state);
    T* inner = state ? state + s_.short_len * 3 * d : nullptr;
    if (s_.kind == Kind::hcl) {
      T* modal = inner;
      if (!modal) {  // a window from the start
        modal = work.get(6, d * s_.N);
        be.zero(modal, d * s_.N);
      }
      be.modal_scan({.u = u, .gate = c.cols_slice(0, d), .log_poles = p.at(lp_), .residues = p.at(R_), .Dskip = p.at(D_), .N = s_.N, .state = modal}, g);
    } else {
      const T* taps = derived.get(0, d * s_.len, [&](T* dst) { expand_taps(be, p, dst); });
      const Mat<T> conv = work.mat(4, L, d);
      be.conv1d({.x = u, .w = taps, .b = nullptr, .W = s_.len, .silu = false, .state = inner}, conv);
      be.mul(conv, c.cols_slice(0, d), g);
    }
    be.linear(g, p.matrix(ow_), p.at(ob_), y);
  }

 private:
  int64_t inner_state() const { return s_.kind == Kind::hcl ? s_.d * s_.N : s_.len * s_.d; }
  // z = projections(x), c = the featurizer conv of z (from and into `state`'s first part when given), u = x1 v.
  void featurize(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> z, Mat<T> c, Mat<T> u, T* state) const {
    const int64_t d = s_.d;
    be.linear(x, p.matrix(proj_), nullptr, z);
    be.conv1d({.x = z, .w = p.at(sw_), .b = nullptr, .W = s_.short_len, .silu = false, .state = state}, c);
    be.mul(c.cols_slice(d, d), c.cols_slice(2 * d, d), u);
  }
  int64_t group_of(int64_t channel) const { return channel / (s_.d / s_.groups); }
  // taps (d, len): channel c's row of the conv op. hcs: h[g] as it is (cross-correlation); hcm: h[g]
  // reversed (a true convolution) with D[c] added to the current-token tap.
  void expand_taps(Backend<T>& be, const Params<T>& p, T* taps) const {
    const int64_t K = s_.len;
    for (int64_t c = 0; c < s_.d; ++c) {
      const T* h = p.at(h_) + group_of(c) * K;
      if (s_.kind == Kind::hcs) {
        be.copy(taps + c * K, h, K);
      } else {
        be.flip(mat(h, 1, K), mat(taps + c * K, 1, K), false, true);
        be.add(taps + c * K + K - 1, p.at(D_) + c, 1);
      }
    }
  }
  // The backward of expand_taps: dtaps (d, len) summed into the groups' dh (and dD for hcm).
  void reduce_taps(Backend<T>& be, const Params<T>& p, const T* dtaps, T* row) const {
    T* dh = p.grad(h_);
    if (!dh) return;
    const int64_t K = s_.len;
    for (int64_t c = 0; c < s_.d; ++c) {
      const T* dt = dtaps + c * K;
      if (s_.kind == Kind::hcm) {
        be.flip(mat(dt, 1, K), mat(row, 1, K), false, true);
        be.add(p.grad(D_) + c, dt + K - 1, 1);
        dt = row;
      }
      be.add(dh + group_of(c) * K, dt, K);
    }
  }

  StripedHyenaShape s_;
  int64_t proj_, sw_, ow_, ob_, h_, D_, lp_, R_;
};

// ---- gated MLP -----------------------------------------------------------------------------------

template <class T>
class GatedMlp final : public Layer<T> {
 public:
  GatedMlp(const OffsetOf& off, const std::string& m, int64_t inner, bool gelu)
      : inner_(inner), gelu_(gelu), l1_(required_param(off, m + "l1.weight")), l2_(required_param(off, m + "l2.weight")),
        l3_(required_param(off, m + "l3.weight")) {}
  // saved: 0 l1 x, 1 l2 x, 2 act(l1 x) (gelu only), 3 act(l1 x) * l2 x (all (L, inner))
  void forward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> y, Arena<T>& s) const override {
    const int64_t L = x.rows;
    const Mat<T> a = s.mat(0, L, inner_), b = s.mat(1, L, inner_), m = s.mat(3, L, inner_);
    be.linear(x, p.matrix(l1_), nullptr, a);
    be.linear(x, p.matrix(l2_), nullptr, b);
    Mat<T> act = a;
    if (gelu_) {
      act = s.mat(2, L, inner_);
      be.gelu(Gelu::erf, a.data, act.data, L * inner_);
    }
    be.mul(act, b, m);
    be.linear(m, p.matrix(l3_), nullptr, y);
  }
  void backward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<const T> dy, Mat<T> dx, Arena<T>& s, Arena<T>& w) const override {
    const int64_t L = x.rows;
    const Mat<T> a = s.mat(0, L, inner_), b = s.mat(1, L, inner_), act = gelu_ ? s.mat(2, L, inner_) : a;
    Mat<T> dm = w.mat(0, L, inner_), dact = w.mat(1, L, inner_), db = w.mat(2, L, inner_);
    be.linear_backward(s.mat(3, L, inner_), p.at(l3_), dy, &dm, false, p.grad(l3_), nullptr);
    be.mul(dm, b, dact);
    be.mul(dm, act, db);
    if (gelu_) be.gelu_backward(Gelu::erf, a.data, dact.data, dact.data, L * inner_);
    be.linear_backward(x, p.at(l1_), dact, &dx, false, p.grad(l1_), nullptr);
    be.linear_backward(x, p.at(l2_), db, &dx, true, p.grad(l2_), nullptr);
  }
  int64_t saved_per_token() const override { return (gelu_ ? 4 : 3) * inner_; }

 private:
  int64_t inner_;
  bool gelu_;
  int64_t l1_, l2_, l3_;
};

}  // namespace

template <class T>
std::shared_ptr<const Layer<T>> make_attention(const OffsetOf& off, const std::string& prefix, const AttentionShape& s) {
  return std::make_shared<const Attention<T>>(off, prefix, s);
}
template <class T>
std::shared_ptr<const Layer<T>> make_striped_hyena_operator(const OffsetOf& off, const std::string& prefix, const StripedHyenaShape& s) {
  return std::make_shared<const StripedHyenaOperator<T>>(off, prefix, s);
}
template <class T>
std::shared_ptr<const Layer<T>> make_gated_mlp(const OffsetOf& off, const std::string& prefix, int64_t inner, bool gelu) {
  return std::make_shared<const GatedMlp<T>>(off, prefix, inner, gelu);
}

#define LONGSEQ_INSTANTIATE(T)                                                                                                      \
  template std::shared_ptr<const Layer<T>> make_attention<T>(const OffsetOf&, const std::string&, const AttentionShape&);            \
  template std::shared_ptr<const Layer<T>> make_striped_hyena_operator<T>(const OffsetOf&, const std::string&, const StripedHyenaShape&); \
  template std::shared_ptr<const Layer<T>> make_gated_mlp<T>(const OffsetOf&, const std::string&, int64_t, bool);
LONGSEQ_INSTANTIATE(float)
LONGSEQ_INSTANTIATE(double)
#undef LONGSEQ_INSTANTIATE

// ---- declarations ----------------------------------------------------------------------------------

ParamDecls attention_params(const std::string& m, const AttentionShape& s) {
  const int64_t d = s.d, hd = d / s.heads, width = d + 2 * s.kv_heads * hd;
  ParamDecl inv_freq{m + "rotary_emb.inv_freq", {hd / 2}, true, [hd, base = s.rotary_base](Rng&, float* out) {
                       for (int64_t i = 0; i < hd / 2; ++i) out[i] = float(1.0 / std::pow(base, double(2 * i) / double(hd)));
                     }};
  return {matrix(normal(m + "Wqkv.weight", {width, d}, 0.02)), matrix(normal(m + "out_proj.weight", {d, d}, 0.02)), constant(m + "out_proj.bias", {d}, 0.0f),
          std::move(inv_freq)};
}

ParamDecls striped_hyena_operator_params(const std::string& m, const StripedHyenaShape& s, double resid_std) {
  using Kind = StripedHyenaShape::Kind;
  const int64_t d = s.d;
  ParamDecls p{matrix(normal(m + "projections.weight", {3 * d, d}, 0.02)),
               uniform(m + "filter.short_filter_weight", {3 * d, 1, s.short_len}, 1.0 / std::sqrt(double(s.short_len))),
               matrix(normal(m + "out_filter_dense.weight", {d, d}, resid_std)), constant(m + "out_filter_dense.bias", {d}, 0.0f)};
  if (s.kind == Kind::hcl) {
    const int64_t N = s.N;
    // Decaying modes with time constants from 2 to 2,000 tokens; residues scaled so each mode's
    // energy sum_t R^2 p^2t ~ 1 (as the fixtures' README makes them).
    auto log_poles = std::make_shared<std::vector<float>>(static_cast<size_t>(d * N));
    p.push_back({m + "filter.log_poles", {d, N, 1}, false, [log_poles](Rng& rng, float* out) {
                   for (size_t i = 0; i < log_poles->size(); ++i) out[i] = (*log_poles)[i] = float(-std::exp(rng.uniform(std::log(5e-4), std::log(0.5))));
                 }});
    p.push_back({m + "filter.residues", {d, N}, false, [log_poles](Rng& rng, float* out) {
                   for (size_t i = 0; i < log_poles->size(); ++i) out[i] = float(rng.normal() * std::sqrt(2.0 * std::abs((*log_poles)[i])));
                 }});
    p.push_back(constant(m + "filter.D", {d}, 0.0f));
  } else {
    p.push_back(normal(m + "filter.h", {s.groups, 1, s.len}, 1.0 / std::sqrt(double(s.len))));
    if (s.kind == Kind::hcm) p.push_back(constant(m + "filter.D", {d}, 0.0f));
  }
  return p;
}

ParamDecls gated_mlp_params(const std::string& m, int64_t d, int64_t inner, double resid_std) {
  return {matrix(normal(m + "l1.weight", {inner, d}, 0.02)), matrix(normal(m + "l2.weight", {inner, d}, 0.02)), matrix(normal(m + "l3.weight", {d, inner}, resid_std))};
}

}  // namespace longseq::nn
