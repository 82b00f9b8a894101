// The layers of layers.h. Each forward lists its saved slots; each backward walks the forward's
// steps in reverse with the backend's backward ops (written activation gradients, added parameter
// gradients: backend.h).
#include "core/nn/layers.h"

#include "core/error.h"
#include "core/nn/hyena_window.h"
#include "core/nn/init.h"
#include "core/nn/mamba_core.h"
#include "core/threads.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace longseq::nn {

namespace {

// ---- norms -----------------------------------------------------------------------------------

template <class T>
class Norm final : public Layer<T> {
 public:
  // weight: the name of the scale (<prefix>weight; StripedHyena's RMSNorm calls it <prefix>scale).
  Norm(const OffsetOf& off, const std::string& prefix, ops::NormKind kind, double eps, const std::string& weight)
      : w_(required_param(off, prefix + weight)), b_(kind != ops::NormKind::layer ? -1 : required_param(off, prefix + "bias")),
        kind_(kind), eps_(eps) {}
  // saved: 0 mean, 1 rstd (L each)
  void forward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> y, Arena<T>& s) const override {
    be.norm(kind_, eps_, x, p.at(w_), p.at(b_), y, s.get(0, x.rows), s.get(1, x.rows));
  }
  void backward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<const T> dy, Mat<T> dx, Arena<T>& s, Arena<T>&) const override {
    be.norm_backward(kind_, eps_, x, p.at(w_), p.at(b_), s.get(0, x.rows), s.get(1, x.rows), dy, dx, p.grad(w_), p.grad(b_));
  }
  int64_t saved_per_token() const override { return 2; }

 private:
  int64_t w_, b_;
  ops::NormKind kind_;
  double eps_;
};

// ---- Mamba-1 mixer -----------------------------------------------------------------------------

// in_proj, the core (core/nn/mamba_core.h), out_proj.
template <class T>
class MambaMixer final : public Layer<T> {
 public:
  MambaMixer(const OffsetOf& off, const std::string& m, const MambaMixerShape& s)
      : core_(off, m, s), in_w_(required_param(off, m + "in_proj.weight")), in_b_(off(m + "in_proj.bias")),
        out_w_(required_param(off, m + "out_proj.weight")), out_b_(off(m + "out_proj.bias")) {}

  void check(const Backend<T>& be) const override { core_.check(be); }

  // saved: the core's slots (0 x|z (L, 2D) ... 4 y (L, D), 5 the scan's, 6 A)
  void forward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> out, Arena<T>& s) const override {
    run(be, p, x, out, s, core_.saved_A(be, p, s), nullptr, true);
  }
  int64_t state_size() const override { return core_.state_size(); }
  void infer(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> y, T* state, Derived<T>& derived, Arena<T>& work) const override {
    const int64_t DN = core_.shape().D * core_.shape().N;
    const T* A = derived.get(0, DN, [&](T* a) { core_.make_A(be, p, a); });
    run(be, p, x, y, work, A, state, false);
  }
  std::vector<std::pair<std::string, Tensor>> state_tensors(const T* h) const override { return core_.state_tensors(h); }

  void backward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<const T> dout, Mat<T> dx, Arena<T>& s, Arena<T>& w) const override {
    const int64_t L = x.rows, D = core_.shape().D;
    Mat<T> dy = w.mat(0, L, D), dxz = w.mat(1, L, 2 * D);
    be.linear_backward(s.mat(4, L, D), p.at(out_w_), dout, &dy, false, p.grad(out_w_), p.grad(out_b_));
    core_.backward(be, p, s, L, dy, dxz, w);
    be.linear_backward(x, p.at(in_w_), dxz, &dx, false, p.grad(in_w_), p.grad(in_b_));
  }

  int64_t saved_per_token() const override { return core_.saved_per_token(); }

 private:
  void run(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> out, Arena<T>& s, const T* A, T* state, bool keep) const {
    const int64_t L = x.rows, D = core_.shape().D;
    be.linear(x, p.at(in_w_), p.at(in_b_), s.mat(0, L, 2 * D));
    core_.run(be, p, s, L, A, state, keep);
    be.linear(s.mat(4, L, D), p.at(out_w_), p.at(out_b_), out);
  }

  MambaCore<T> core_;
  int64_t in_w_, in_b_, out_w_, out_b_;
};

// ---- Hyena operator ------------------------------------------------------------------------------

template <class T>
class HyenaOperator final : public Layer<T> {
 public:
  HyenaOperator(const OffsetOf& off, const std::string& m, const HyenaShape& s)
      : s_(s),
        in_w_(required_param(off, m + "in_proj.weight")), in_b_(required_param(off, m + "in_proj.bias")),
        sw_(required_param(off, m + "short_filter.weight")), sb_(required_param(off, m + "short_filter.bias")),
        out_w_(required_param(off, m + "out_proj.weight")), out_b_(required_param(off, m + "out_proj.bias")),
        fbias_(required_param(off, m + "filter_fn.bias")), z_(required_param(off, m + "filter_fn.pos_emb.z")),
        t_(required_param(off, m + "filter_fn.pos_emb.t")), deltas_(required_param(off, m + "filter_fn.modulation.deltas")),
        freq_(required_param(off, m + "filter_fn.implicit_filter.1.freq")) {
    const std::string f = m + "filter_fn.implicit_filter.";
    for (int64_t k = 0; k <= s_.inner; ++k) {
      mlp_w_.push_back(required_param(off, f + std::to_string(2 * k) + ".weight"));
      mlp_b_.push_back(k < s_.inner ? required_param(off, f + std::to_string(2 * k) + ".bias") : -1);
    }
  }

  void check(const Backend<T>& be) const override {
    LS_CHECK(s_.W <= be.max_conv_width(), "--device {}: short_filter_order {} exceeds the conv kernel's limit {}; use --device cpu",
             be.name(), s_.W, be.max_conv_width());
  }
  bool streams() const override { return false; }  // the long convolution sees the whole window

  // saved: 0 in_proj out p (L, 3d), 1 short conv out c (L, 3d), 2 x1 * v (L, d), 3 filter k (L, d),
  // 4 the long conv's own, 5 gated output (L, d), 6 modulation (L, d), 7 + 2j / 8 + 2j the filter
  // MLP's j-th pre- and post-sin activations (L, O)
  void forward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> out, Arena<T>& s) const override {
    filter_forward(be, p, x.rows, s);
    run(be, p, x, out, s, s.mat(3, x.rows, s_.d), nullptr);
  }
  // The filter of a length (or its spectrum, where the backend takes one) is made once per caller
  // and kept: it depends on the weights alone.
  void infer(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> y, T*, Derived<T>& derived, Arena<T>& work) const override {
    const int64_t L = x.rows, d = s_.d, spectrum = be.fft_spectrum_size(L, d);
    const T* k = derived.get(L, spectrum > 0 ? spectrum : L * d, [&](T* dst) {
      filter_forward(be, p, L, work);
      if (spectrum > 0)
        be.fft_spectrum(work.mat(3, L, d), dst);
      else
        be.copy(dst, work.get(3, L * d), L * d);
    });
    run(be, p, x, y, work, spectrum > 0 ? Mat<const T>{} : mat(k, L, d), spectrum > 0 ? k : nullptr);
  }
  bool infer_window(Backend<T>& be, const Params<T>& p, const Layer<T>& norm, Mat<const T> x, Mat<T> y, Derived<T>& derived,
                    Arena<T>& work) const override {
    if constexpr (std::is_same_v<T, float>) {
      if (!be.host_memory()) return false;
      std::vector<std::unique_ptr<Arena<T>>> arenas;  // the norm's, one per thread
      std::vector<std::unique_ptr<Derived<T>>> unused;
      for (int i = 0; i < num_threads(); ++i) arenas.push_back(std::make_unique<Arena<T>>(be)), unused.push_back(std::make_unique<Derived<T>>(be));
      const InputRows input = [&](int64_t r0, Mat<float> out, int slot) {
        norm.infer(be, p, x.rows_slice(r0, out.rows), out, nullptr, *unused[size_t(slot)], *arenas[size_t(slot)]);
      };
      hyena_window(s_, host_weights(p), input, y, derived.shared(), this, work);
      return true;
    }
    return false;
  }
  std::vector<std::pair<std::string, Tensor>> window_tensors(const Params<T>& p, int64_t L) const override {
    if constexpr (std::is_same_v<T, float>) {
      Tensor k = Tensor::empty({s_.d, L});
      hyena_filter(s_, host_weights(p), L, k.data<float>());
      return {{"filter_k", k}};
    }
    return {};
  }

  void backward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<const T> dout, Mat<T> dx, Arena<T>& s, Arena<T>& w) const override {
    const int64_t L = x.rows, d = s_.d;
    const Mat<T> pr = s.mat(0, L, 3 * d), c = s.mat(1, L, 3 * d), gv = s.mat(2, L, d), yv = s.mat(5, L, d);
    Mat<T> dyv = w.mat(0, L, d), dgv = w.mat(1, L, d), dk = w.mat(2, L, d), dc = w.mat(3, L, 3 * d), dp = w.mat(4, L, 3 * d);
    be.linear_backward(yv, p.at(out_w_), dout, &dyv, false, p.grad(out_w_), p.grad(out_b_));
    be.fft_conv_backward({.u = gv, .k = s.mat(3, L, d), .gate = c.cols_slice(0, d), .bias = p.at(fbias_)},
                         s.get(4, be.fft_conv_saved_size(L, d)), dyv, dgv, dk, dc.cols_slice(0, d), p.grad(fbias_));
    filter_backward(be, p, L, s, w);
    be.mul(dgv, c.cols_slice(2 * d, d), dc.cols_slice(d, d));  // x1 * v
    be.mul(dgv, c.cols_slice(d, d), dc.cols_slice(2 * d, d));
    be.conv1d_backward({.x = pr, .w = p.at(sw_), .b = p.at(sb_), .W = s_.W, .silu = false}, dc, dp, p.grad(sw_), p.grad(sb_));
    be.linear_backward(x, p.at(in_w_), dp, &dx, false, p.grad(in_w_), p.grad(in_b_));
  }

  int64_t saved_per_token() const override { return 3 * s_.d + 3 * s_.d + 4 * s_.d + 2 * s_.O * s_.inner + s_.d; }

 private:
  // The operator from the filter k (L, d) or its spectrum: slots 0, 1, 2, 4, 5 of `s` as in forward.
  void run(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> out, Arena<T>& s, Mat<const T> k, const T* spectrum) const {
    const int64_t L = x.rows, d = s_.d;
    LS_CHECK(L <= s_.max_len, "sequence of {} tokens exceeds the implicit filter's max_seq_len {} (use a shorter --length)", L, s_.max_len);
    const Mat<T> pr = s.mat(0, L, 3 * d), c = s.mat(1, L, 3 * d), gv = s.mat(2, L, d), yv = s.mat(5, L, d);
    be.linear(x, p.at(in_w_), p.at(in_b_), pr);  // x0 | x1 | v
    be.conv1d({.x = pr, .w = p.at(sw_), .b = p.at(sb_), .W = s_.W, .silu = false}, c);
    be.mul(c.cols_slice(d, d), c.cols_slice(2 * d, d), gv);
    be.fft_conv({.u = gv, .k = k, .gate = c.cols_slice(0, d), .bias = p.at(fbias_), .spectrum = spectrum}, yv,
                s.get(4, be.fft_conv_saved_size(L, d)));
    be.linear(yv, p.at(out_w_), p.at(out_b_), out);
  }

  HyenaWeights host_weights(const Params<T>& p) const {
    if constexpr (std::is_same_v<T, float>) {
      HyenaWeights w{.in_w = p.host_at(in_w_), .in_b = p.host_at(in_b_), .short_w = p.host_at(sw_), .short_b = p.host_at(sb_),
                     .out_w = p.host_at(out_w_), .out_b = p.host_at(out_b_), .filter_bias = p.host_at(fbias_), .z = p.host_at(z_),
                     .t = p.host_at(t_), .deltas = p.host_at(deltas_), .freq = p.host_at(freq_), .mlp_w = {}, .mlp_b = {}};
      for (size_t k = 0; k < mlp_w_.size(); ++k) w.mlp_w.push_back(p.host_at(mlp_w_[k])), w.mlp_b.push_back(p.host_at(mlp_b_[k]));
      return w;
    } else {
      fail("the Hyena operator's CPU window schedule runs in float");
    }
  }

  // k (L, d) = (MLP over z[:L]) * modulation, into saved slot 3. The modulation exp(-t |deltas|) +
  // shift depends on buffers only: made on the host.
  void filter_forward(Backend<T>& be, const Params<T>& p, int64_t L, Arena<T>& s) const {
    const int64_t d = s_.d, O = s_.O;
    LS_CHECK(L <= s_.max_len, "sequence of {} tokens exceeds the implicit filter's max_seq_len {} (use a shorter --length)", L, s_.max_len);
    std::vector<T> mod(static_cast<size_t>(L * d));
    const T *t = p.host_at(t_), *deltas = p.host_at(deltas_);
    for (int64_t r = 0; r < L; ++r)
      for (int64_t c = 0; c < d; ++c) mod[size_t(r * d + c)] = std::exp(-t[r] * std::abs(deltas[c])) + T(s_.modulation_shift);
    be.upload(s.get(6, L * d), mod.data(), L * d);
    Mat<const T> h = mat(p.at(z_), L, s_.E);
    for (int64_t j = 0; j < s_.inner; ++j) {
      const Mat<T> pre = s.mat(size_t(7 + 2 * j), L, O), post = s.mat(size_t(8 + 2 * j), L, O);
      be.linear(h, p.at(mlp_w_[size_t(j)]), p.at(mlp_b_[size_t(j)]), pre);
      be.sin_columns(pre, p.at(freq_), post);
      h = post;
    }
    const Mat<T> k = s.mat(3, L, d);
    be.linear(h, p.at(mlp_w_.back()), nullptr, k);
    be.mul(k, s.mat(6, L, d), k);
  }

  // From dk (work slot 2, overwritten): the filter MLP's gradients, freq's summed over its uses, z's rows [:L].
  void filter_backward(Backend<T>& be, const Params<T>& p, int64_t L, Arena<T>& s, Arena<T>& w) const {
    const int64_t d = s_.d, O = s_.O, E = s_.E;
    Mat<T> dk = w.mat(2, L, d), dh = w.mat(5, L, O), dpre = w.mat(6, L, O), dprev = w.mat(7, L, O);
    be.mul(dk, s.mat(6, L, d), dk);
    const Mat<T> last = s.mat(size_t(8 + 2 * (s_.inner - 1)), L, O);
    be.linear_backward(last, p.at(mlp_w_.back()), dk, &dh, false, p.grad(mlp_w_.back()), nullptr);
    for (int64_t j = s_.inner - 1; j >= 0; --j) {
      be.sin_columns_backward(s.mat(size_t(7 + 2 * j), L, O), p.at(freq_), dh, dpre, p.grad(freq_));
      if (j == 0) {  // into pos_emb.z's rows [:L] (added: z is a parameter)
        Mat<T> dz = mat(p.grad(z_), L, E);
        be.linear_backward(mat(p.at(z_), L, E), p.at(mlp_w_[0]), dpre, dz.data ? &dz : nullptr, true, p.grad(mlp_w_[0]),
                           p.grad(mlp_b_[0]));
      } else {
        be.linear_backward(s.mat(size_t(8 + 2 * (j - 1)), L, O), p.at(mlp_w_[size_t(j)]), dpre, &dprev, false,
                           p.grad(mlp_w_[size_t(j)]), p.grad(mlp_b_[size_t(j)]));
        std::swap(dh, dprev);
      }
    }
  }

  HyenaShape s_;
  int64_t in_w_, in_b_, sw_, sb_, out_w_, out_b_, fbias_, z_, t_, deltas_, freq_;
  std::vector<int64_t> mlp_w_, mlp_b_;
};

// ---- GELU MLP ----------------------------------------------------------------------------------

template <class T>
class GeluMlp final : public Layer<T> {
 public:
  GeluMlp(const OffsetOf& off, const std::string& m, int64_t d_inner)
      : di_(d_inner), fc1w_(required_param(off, m + "fc1.weight")), fc1b_(required_param(off, m + "fc1.bias")),
        fc2w_(required_param(off, m + "fc2.weight")), fc2b_(required_param(off, m + "fc2.bias")) {}
  // saved: 0 fc1 out (L, d_inner), 1 its GELU (L, d_inner)
  void forward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> y, Arena<T>& s) const override {
    const int64_t L = x.rows;
    const Mat<T> h = s.mat(0, L, di_), g = s.mat(1, L, di_);
    be.linear(x, p.at(fc1w_), p.at(fc1b_), h);
    be.gelu(Gelu::tanh, h.data, g.data, L * di_);
    be.linear(g, p.at(fc2w_), p.at(fc2b_), y);
  }
  void backward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<const T> dy, Mat<T> dx, Arena<T>& s, Arena<T>& w) const override {
    const int64_t L = x.rows;
    Mat<T> dg = w.mat(0, L, di_);
    be.linear_backward(s.mat(1, L, di_), p.at(fc2w_), dy, &dg, false, p.grad(fc2w_), p.grad(fc2b_));
    be.gelu_backward(Gelu::tanh, s.get(0, L * di_), dg.data, dg.data, L * di_);
    be.linear_backward(x, p.at(fc1w_), dg, &dx, false, p.grad(fc1w_), p.grad(fc1b_));
  }
  int64_t saved_per_token() const override { return 2 * di_; }

 private:
  int64_t di_, fc1w_, fc1b_, fc2w_, fc2b_;
};

}  // namespace

template <class T>
std::shared_ptr<const Layer<T>> make_norm(const OffsetOf& off, const std::string& prefix, ops::NormKind kind, double eps,
                                          const std::string& weight) {
  return std::make_shared<const Norm<T>>(off, prefix, kind, eps, weight);
}
template <class T>
std::shared_ptr<const Layer<T>> make_mamba_mixer(const OffsetOf& off, const std::string& prefix, const MambaMixerShape& s) {
  return std::make_shared<const MambaMixer<T>>(off, prefix, s);
}
template <class T>
std::shared_ptr<const Layer<T>> make_hyena_operator(const OffsetOf& off, const std::string& prefix, const HyenaShape& s) {
  return std::make_shared<const HyenaOperator<T>>(off, prefix, s);
}
template <class T>
std::shared_ptr<const Layer<T>> make_gelu_mlp(const OffsetOf& off, const std::string& prefix, int64_t d_inner) {
  return std::make_shared<const GeluMlp<T>>(off, prefix, d_inner);
}

#define LONGSEQ_INSTANTIATE(T)                                                                                           \
  template std::shared_ptr<const Layer<T>> make_norm<T>(const OffsetOf&, const std::string&, ops::NormKind, double,          \
                                                         const std::string&);                                               \
  template std::shared_ptr<const Layer<T>> make_mamba_mixer<T>(const OffsetOf&, const std::string&, const MambaMixerShape&); \
  template std::shared_ptr<const Layer<T>> make_hyena_operator<T>(const OffsetOf&, const std::string&, const HyenaShape&);   \
  template std::shared_ptr<const Layer<T>> make_gelu_mlp<T>(const OffsetOf&, const std::string&, int64_t);
LONGSEQ_INSTANTIATE(float)
LONGSEQ_INSTANTIATE(double)
#undef LONGSEQ_INSTANTIATE

}  // namespace longseq::nn

// ---- parameter declarations (names, shapes, reference initialisation) ----------------------------

namespace longseq::nn {


ParamDecls norm_params(const std::string& prefix, int64_t d, bool rms, const std::string& weight) {
  ParamDecls p{constant(prefix + weight, {d}, 1.0f)};
  if (!rms) p.push_back(constant(prefix + "bias", {d}, 0.0f));
  return p;
}

ParamDecls mamba_mixer_params(const std::string& m, const MambaMixerShape& s, int64_t n_layer) {
  const int64_t d = s.d, D = s.D, N = s.N, R = s.R, W = s.W;
  ParamDecl dt_bias{m + "dt_proj.bias", {D}, false, [D](Rng& rng, float* out) {
                      for (int64_t i = 0; i < D; ++i) {  // dt log-uniform in [1e-3, 1e-1], bias = softplus^-1(dt)
                        const double dt = std::max(1e-4, std::exp(rng.uniform(std::log(1e-3), std::log(1e-1))));
                        out[i] = float(dt + std::log(-std::expm1(-dt)));
                      }
                    }};
  ParamDecl A_log{m + "A_log", {D, N}, false, [D, N](Rng&, float* out) {
                    for (int64_t i = 0; i < D; ++i)
                      for (int64_t n = 0; n < N; ++n) out[i * N + n] = float(std::log(double(n + 1)));
                  }};
  ParamDecls p{uniform(m + "in_proj.weight", {2 * D, d}, 1.0 / std::sqrt(double(d)))};
  if (s.bias) p.push_back(constant(m + "in_proj.bias", {2 * D}, 0.0f));
  p.push_back(uniform(m + "conv1d.weight", {D, 1, W}, 1.0 / std::sqrt(double(W))));
  if (s.conv_bias) p.push_back(uniform(m + "conv1d.bias", {D}, 1.0 / std::sqrt(double(W))));
  p.push_back(uniform(m + "x_proj.weight", {R + 2 * N, D}, 1.0 / std::sqrt(double(D))));
  p.push_back(uniform(m + "dt_proj.weight", {D, R}, 1.0 / std::sqrt(double(R))));
  p.push_back(std::move(dt_bias));
  p.push_back(std::move(A_log));
  p.push_back(constant(m + "D", {D}, 1.0f));
  // Kaiming-uniform, then rescaled by 1/sqrt(n_layer) as mamba_ssm's rescale_prenorm_residual does.
  p.push_back(uniform(m + "out_proj.weight", {d, D}, 1.0 / std::sqrt(double(D)) / std::sqrt(double(n_layer))));
  if (s.bias) p.push_back(constant(m + "out_proj.bias", {d}, 0.0f));
  return p;
}

void hyena_positional_grid(int64_t length, int64_t emb_dim, float* z, float* t) {
  const int64_t bands = (emb_dim - 1) / 2;
  for (int64_t i = 0; i < length; ++i) {
    const double ti = length > 1 ? double(i) / double(length - 1) : 0.0;
    const double w = 2 * M_PI * double(i) / double(length);
    float* zr = z + i * emb_dim;
    zr[0] = float(ti);
    t[i] = float(ti);
    for (int64_t b = 0; b < bands; ++b) {
      const double f = bands > 1 ? 1e-4 + (double(bands - 1) - 1e-4) * double(b) / double(bands - 1) : 1e-4;
      zr[1 + b] = float(std::cos(f * w));
      zr[1 + bands + b] = float(-std::sin(f * w));
    }
  }
}

void hyena_default_deltas(int64_t d, float* deltas) {
  const double target = 1e-2, fast = 0.3, slow = 1.5;
  const double max_decay = std::log(target) / fast, min_decay = std::log(target) / slow;
  for (int64_t i = 0; i < d; ++i) deltas[i] = float(d > 1 ? min_decay + (max_decay - min_decay) * double(i) / double(d - 1) : min_decay);
}

ParamDecls hyena_operator_params(const std::string& m, const HyenaShape& s, double resid_std, double activation_freq) {
  const int64_t d = s.d, O = s.O, E = s.E, S = s.max_len, W = s.W;
  const std::string f = m + "filter_fn.";
  ParamDecls p{normal(m + "in_proj.weight", {3 * d, d}, 0.02),
               constant(m + "in_proj.bias", {3 * d}, 0.0f),
               uniform(m + "short_filter.weight", {3 * d, 1, W}, 1.0 / std::sqrt(double(W))),
               uniform(m + "short_filter.bias", {3 * d}, 1.0 / std::sqrt(double(W))),
               normal(m + "out_proj.weight", {d, d}, resid_std),
               constant(m + "out_proj.bias", {d}, 0.0f),
               normal(f + "bias", {d}, 1.0)};
  p.push_back({f + "pos_emb.z", {1, S, E}, false, [S, E](Rng&, float* out) {
                 std::vector<float> t(static_cast<size_t>(S));
                 hyena_positional_grid(S, E, out, t.data());
               }});
  p.push_back({f + "pos_emb.t", {1, S, 1}, true, [S, E](Rng&, float* out) {
                 std::vector<float> z(static_cast<size_t>(S * E));
                 hyena_positional_grid(S, E, z.data(), out);
               }});
  p.push_back({f + "modulation.deltas", {1, 1, d}, true, [d](Rng&, float* out) { hyena_default_deltas(d, out); }});
  for (int64_t k = 0; k <= s.inner; ++k) {
    const std::string lin = f + "implicit_filter." + std::to_string(2 * k) + ".";
    const int64_t in = k == 0 ? E : O, out = k == s.inner ? d : O;
    p.push_back(uniform(lin + "weight", {out, in}, 1.0 / std::sqrt(double(in))));
    if (k < s.inner) p.push_back(uniform(lin + "bias", {out}, 1.0 / std::sqrt(double(in))));
  }
  p.push_back(constant(f + "implicit_filter.1.freq", {1, O}, float(activation_freq)));
  return p;
}

ParamDecls gelu_mlp_params(const std::string& m, int64_t d, int64_t d_inner, double resid_std) {
  return {normal(m + "fc1.weight", {d_inner, d}, 0.02), constant(m + "fc1.bias", {d_inner}, 0.0f),
          normal(m + "fc2.weight", {d, d_inner}, resid_std), constant(m + "fc2.bias", {d}, 0.0f)};
}

}  // namespace longseq::nn
