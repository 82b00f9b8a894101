#include "core/train/hyena_grad.h"

#include "core/error.h"

#include <fmt/format.h>

#include <cmath>

namespace longseq::train {

namespace {

constexpr double kBlockNormEps = 1e-5;   // nn.LayerNorm default inside the blocks (as the port)
constexpr double kModulationShift = 0.05;

template <class T>
T gelu_tanh(T x) {
  const T k = T(0.7978845608028654);
  return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
}
template <class T>
T gelu_tanh_grad(T x) {
  const T k = T(0.7978845608028654), th = std::tanh(k * (x + T(0.044715) * x * x * x));
  return T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * k * (T(1) + T(3 * 0.044715) * x * x);
}

}  // namespace

template <class T>
HyenaGrad<T>::HyenaGrad(const HyenaModel& model) : cfg_(model.config()) {
  const auto named = model.named_parameters();
  std::vector<std::string> buffers;
  for (const auto& [name, t] : named)
    if (name.ends_with("pos_emb.t") || name.ends_with("modulation.deltas") || (!cfg_.train_freq && name.ends_with(".freq")))
      buffers.push_back(name);
  this->load_from(named, buffers);
  this->vocab_ = model.vocab_size();
  const std::string bb = "hyena.backbone.";
  emb_ = this->off(bb + "embeddings.word_embeddings.weight");
  this->lm_head_ = this->off("lm_head.weight") >= 0 ? this->off("lm_head.weight") : emb_;
  lnf_w_ = this->off(bb + "ln_f.weight");
  lnf_b_ = this->off(bb + "ln_f.bias");
  for (int64_t i = 0; i < cfg_.n_layer; ++i) {
    const std::string b = fmt::format("{}layers.{}.", bb, i), m = b + "mixer.", f = m + "filter_fn.";
    LayerOffsets o{this->off(b + "norm1.weight"), this->off(b + "norm1.bias"), this->off(b + "norm2.weight"),
                   this->off(b + "norm2.bias"), this->off(m + "in_proj.weight"), this->off(m + "in_proj.bias"),
                   this->off(m + "short_filter.weight"), this->off(m + "short_filter.bias"), this->off(m + "out_proj.weight"),
                   this->off(m + "out_proj.bias"), this->off(b + "mlp.fc1.weight"), this->off(b + "mlp.fc1.bias"),
                   this->off(b + "mlp.fc2.weight"), this->off(b + "mlp.fc2.bias"), this->off(f + "bias"),
                   this->off(f + "pos_emb.z"), this->off(f + "pos_emb.t"), this->off(f + "modulation.deltas"),
                   this->off(f + "implicit_filter.1.freq"), {}, {}};
    for (int64_t k = 0; k < cfg_.num_inner_mlps + 2; ++k) {
      const std::string lin = f + "implicit_filter." + std::to_string(2 * k) + ".";
      o.mlp_w.push_back(this->off(lin + "weight"));
      o.mlp_b.push_back(this->off(lin + "bias"));
    }
    layers_.push_back(std::move(o));
  }
}

template <class T>
nlohmann::json HyenaGrad<T>::config_json() const {
  return hyena_config_json(cfg_);
}

template <class T>
int64_t HyenaGrad<T>::activation_floats_per_token() const {
  const int64_t d = cfg_.d_model, di = cfg_.d_inner, O = cfg_.filter_order;
  const int64_t per_layer = d /*resid*/ + d + 3 * d + 3 * d + 5 * d + d + d + 2 * di + 2 * d /*kk, mod*/ +
                            2 * O * (cfg_.num_inner_mlps + 1);
  return (this->recompute_ ? d * cfg_.n_layer + (per_layer - d) : per_layer * cfg_.n_layer) + 2 * d + 2 * this->vocab_;
}

template <class T>
void HyenaGrad<T>::filter_forward(int64_t i, int64_t L, Acts& a) {
  const LayerOffsets& o = layers_[size_t(i)];
  const int64_t d = cfg_.d_model, O = cfg_.filter_order, E = cfg_.emb_dim, inner = int64_t(o.mlp_w.size()) - 1;
  const T* freq = this->w(o.freq);
  a.pre.resize(size_t(inner));
  a.post.resize(size_t(inner));
  Mat<const T> h = mat<const T>(this->w(o.z), L, E);  // rows [:L] of the max_seq_len grid
  for (int64_t j = 0; j < inner; ++j) {
    a.pre[size_t(j)].resize(size_t(L * O));
    a.post[size_t(j)].resize(size_t(L * O));
    linear_forward<T>(h, this->w(o.mlp_w[size_t(j)]), this->w(o.mlp_b[size_t(j)]), mat(a.pre[size_t(j)].data(), L, O));
    for (int64_t r = 0; r < L; ++r)
      for (int64_t c = 0; c < O; ++c) a.post[size_t(j)][size_t(r * O + c)] = std::sin(freq[c] * a.pre[size_t(j)][size_t(r * O + c)]);
    h = mat<const T>(a.post[size_t(j)].data(), L, O);
  }
  a.kk.resize(size_t(L * d));
  a.mod.resize(size_t(L * d));
  a.k.resize(size_t(L * d));
  linear_forward<T>(h, this->w(o.mlp_w.back()), nullptr, mat(a.kk.data(), L, d));
  modulation(i, L, a.mod.data());
  for (int64_t k = 0; k < L * d; ++k) a.k[size_t(k)] = a.kk[size_t(k)] * a.mod[size_t(k)];
}

template <class T>
void HyenaGrad<T>::modulation(int64_t i, int64_t L, T* out) {
  const LayerOffsets& o = layers_[size_t(i)];
  const int64_t d = cfg_.d_model;
  const T *t = this->w(o.t), *deltas = this->w(o.deltas);
  for (int64_t r = 0; r < L; ++r)
    for (int64_t c = 0; c < d; ++c) out[r * d + c] = std::exp(-t[r] * std::abs(deltas[c])) + T(kModulationShift);
}

template <class T>
void HyenaGrad<T>::filter_backward(int64_t i, int64_t L, Acts& a, const std::vector<T>& dk, T* grad) {
  const LayerOffsets& o = layers_[size_t(i)];
  const int64_t d = cfg_.d_model, O = cfg_.filter_order, E = cfg_.emb_dim, inner = int64_t(o.mlp_w.size()) - 1;
  const T* freq = this->w(o.freq);
  T* dfreq = this->g(grad, o.freq);
  std::vector<T> dkk(static_cast<size_t>(L * d)), dh(size_t(L * O), T(0)), dpre(static_cast<size_t>(L * O));
  for (int64_t k = 0; k < L * d; ++k) dkk[size_t(k)] = dk[size_t(k)] * a.mod[size_t(k)];
  Mat<T> dh_m = mat(dh.data(), L, O);
  linear_backward<T>(mat<const T>(a.post[size_t(inner - 1)].data(), L, O), this->w(o.mlp_w.back()), mat<const T>(dkk.data(), L, d),
                     &dh_m, this->g(grad, o.mlp_w.back()), nullptr);
  std::vector<double> sfreq(static_cast<size_t>(O), 0.0);  // summed over L rows and the three uses
  for (int64_t j = inner - 1; j >= 0; --j) {
    const std::vector<T>& pre = a.pre[size_t(j)];
    for (int64_t r = 0; r < L; ++r)
      for (int64_t c = 0; c < O; ++c) {
        const size_t k = size_t(r * O + c);
        const T cs = std::cos(freq[c] * pre[k]) * dh[k];
        dpre[k] = cs * freq[c];
        sfreq[size_t(c)] += double(cs * pre[k]);
      }
    const bool first = j == 0;
    std::vector<T> dprev(size_t(L * (first ? E : O)), T(0));
    Mat<T> dprev_m = mat(dprev.data(), L, first ? E : O);
    const Mat<const T> in = first ? mat<const T>(this->w(o.z), L, E) : mat<const T>(a.post[size_t(j - 1)].data(), L, O);
    linear_backward<T>(in, this->w(o.mlp_w[size_t(j)]), mat<const T>(dpre.data(), L, O), &dprev_m,
                       this->g(grad, o.mlp_w[size_t(j)]), this->g(grad, o.mlp_b[size_t(j)]));
    if (first) {
      if (T* dz = this->g(grad, o.z))
        for (int64_t k = 0; k < L * E; ++k) dz[k] += dprev[size_t(k)];
    } else {
      dh.swap(dprev);
    }
  }
  if (dfreq)
    for (int64_t c = 0; c < O; ++c) dfreq[c] += T(sfreq[size_t(c)]);
}

template <class T>
void HyenaGrad<T>::forward_layer(int64_t i, const T* x_in, int64_t L, Acts& a, T* x_out) {
  const LayerOffsets& o = layers_[size_t(i)];
  const int64_t d = cfg_.d_model, di = cfg_.d_inner;
  for (auto* v : {&a.n1, &a.gv, &a.f, &a.yv, &a.xmid, &a.n2}) v->resize(size_t(L * d));
  for (auto* v : {&a.mean1, &a.rstd1, &a.mean2, &a.rstd2}) v->resize(size_t(L));
  a.p.resize(size_t(L * 3 * d));
  a.c.resize(size_t(L * 3 * d));
  a.hfc.resize(size_t(L * di));
  a.gl.resize(size_t(L * di));
  layer_norm_forward<T>(mat(x_in, L, d), this->w(o.n1w), this->w(o.n1b), kBlockNormEps, mat(a.n1.data(), L, d), a.mean1.data(),
                        a.rstd1.data());
  linear_forward<T>(mat<const T>(a.n1.data(), L, d), this->w(o.in_w), this->w(o.in_b), mat(a.p.data(), L, 3 * d));
  causal_conv1d_forward<T>({.x = mat<const T>(a.p.data(), L, 3 * d), .w = this->w(o.sw), .b = this->w(o.sb),
                            .W = cfg_.short_filter_order, .silu = false},
                           mat(a.c.data(), L, 3 * d));
  for (int64_t r = 0; r < L; ++r)
    for (int64_t c = 0; c < d; ++c) a.gv[size_t(r * d + c)] = a.c[size_t(r * 3 * d + d + c)] * a.c[size_t(r * 3 * d + 2 * d + c)];
  filter_forward(i, L, a);
  fft_causal_conv_forward<T>(mat<const T>(a.gv.data(), L, d), mat<const T>(a.k.data(), L, d), mat(a.f.data(), L, d));
  const T* fb = this->w(o.fbias);
  for (int64_t r = 0; r < L; ++r)
    for (int64_t c = 0; c < d; ++c) {
      const size_t k = size_t(r * d + c);
      a.f[k] += fb[c] * a.gv[k];
      a.yv[k] = a.f[k] * a.c[size_t(r * 3 * d + c)];
    }
  linear_forward<T>(mat<const T>(a.yv.data(), L, d), this->w(o.out_w), this->w(o.out_b), mat(a.xmid.data(), L, d));
  for (int64_t k = 0; k < L * d; ++k) a.xmid[size_t(k)] += x_in[k];
  layer_norm_forward<T>(mat<const T>(a.xmid.data(), L, d), this->w(o.n2w), this->w(o.n2b), kBlockNormEps, mat(a.n2.data(), L, d),
                        a.mean2.data(), a.rstd2.data());
  linear_forward<T>(mat<const T>(a.n2.data(), L, d), this->w(o.fc1w), this->w(o.fc1b), mat(a.hfc.data(), L, di));
  for (int64_t k = 0; k < L * di; ++k) a.gl[size_t(k)] = gelu_tanh(a.hfc[size_t(k)]);
  if (x_out) {
    linear_forward<T>(mat<const T>(a.gl.data(), L, di), this->w(o.fc2w), this->w(o.fc2b), mat(x_out, L, d));
    for (int64_t k = 0; k < L * d; ++k) x_out[k] += a.xmid[size_t(k)];
  }
}

template <class T>
void HyenaGrad<T>::backward_layer(int64_t i, const T* x_in, int64_t L, Acts& a, T* dresid, T* grad) {
  const LayerOffsets& o = layers_[size_t(i)];
  const int64_t d = cfg_.d_model, di = cfg_.d_inner;
  std::vector<T> dgl(size_t(L * di), T(0)), dn(size_t(L * d), T(0)), dyv(size_t(L * d), T(0)), dc(size_t(L * 3 * d), T(0)),
      df(size_t(L * d)), dgv(size_t(L * d), T(0)), dk(size_t(L * d), T(0)), dp(size_t(L * 3 * d), T(0));
  Mat<T> dgl_m = mat(dgl.data(), L, di), dn_m = mat(dn.data(), L, d), dyv_m = mat(dyv.data(), L, d), dgv_m = mat(dgv.data(), L, d),
         dk_m = mat(dk.data(), L, d), dp_m = mat(dp.data(), L, 3 * d);
  // MLP branch: dresid is the gradient of x_out and (through the residual) of x_mid.
  linear_backward<T>(mat<const T>(a.gl.data(), L, di), this->w(o.fc2w), mat<const T>(dresid, L, d), &dgl_m, this->g(grad, o.fc2w),
                     this->g(grad, o.fc2b));
  for (int64_t k = 0; k < L * di; ++k) dgl[size_t(k)] *= gelu_tanh_grad(a.hfc[size_t(k)]);
  linear_backward<T>(mat<const T>(a.n2.data(), L, d), this->w(o.fc1w), mat<const T>(dgl.data(), L, di), &dn_m, this->g(grad, o.fc1w),
                     this->g(grad, o.fc1b));
  layer_norm_backward<T>(mat<const T>(a.xmid.data(), L, d), this->w(o.n2w), a.mean2.data(), a.rstd2.data(), dn_m, mat(dresid, L, d),
                         this->g(grad, o.n2w), this->g(grad, o.n2b));
  // Mixer branch.
  linear_backward<T>(mat<const T>(a.yv.data(), L, d), this->w(o.out_w), mat<const T>(dresid, L, d), &dyv_m, this->g(grad, o.out_w),
                     this->g(grad, o.out_b));
  const T* fb = this->w(o.fbias);
  T* dfb = this->g(grad, o.fbias);
  std::vector<double> sfb(static_cast<size_t>(d), 0.0);
  for (int64_t r = 0; r < L; ++r)
    for (int64_t c = 0; c < d; ++c) {
      const size_t k = size_t(r * d + c);
      df[k] = dyv[k] * a.c[size_t(r * 3 * d + c)];
      dc[size_t(r * 3 * d + c)] = dyv[k] * a.f[k];  // x0
      dgv[k] = fb[c] * df[k];
      sfb[size_t(c)] += double(df[k] * a.gv[k]);
    }
  if (dfb)
    for (int64_t c = 0; c < d; ++c) dfb[c] += T(sfb[size_t(c)]);
  fft_causal_conv_backward<T>(mat<const T>(a.gv.data(), L, d), mat<const T>(a.k.data(), L, d), mat<const T>(df.data(), L, d), &dgv_m,
                              &dk_m);
  filter_backward(i, L, a, dk, grad);
  for (int64_t r = 0; r < L; ++r)
    for (int64_t c = 0; c < d; ++c) {
      const size_t k = size_t(r * d + c), x1 = size_t(r * 3 * d + d + c), v = x1 + size_t(d);
      dc[x1] = dgv[k] * a.c[v];
      dc[v] = dgv[k] * a.c[x1];
    }
  causal_conv1d_backward<T>({.x = mat<const T>(a.p.data(), L, 3 * d), .w = this->w(o.sw), .b = this->w(o.sb),
                             .W = cfg_.short_filter_order, .silu = false},
                            mat<const T>(dc.data(), L, 3 * d), dp_m, this->g(grad, o.sw), this->g(grad, o.sb), nullptr);
  std::fill(dn.begin(), dn.end(), T(0));
  linear_backward<T>(mat<const T>(a.n1.data(), L, d), this->w(o.in_w), mat<const T>(dp.data(), L, 3 * d), &dn_m,
                     this->g(grad, o.in_w), this->g(grad, o.in_b));
  layer_norm_backward<T>(mat(x_in, L, d), this->w(o.n1w), a.mean1.data(), a.rstd1.data(), dn_m, mat(dresid, L, d),
                         this->g(grad, o.n1w), this->g(grad, o.n1b));
}

template <class T>
void HyenaGrad<T>::check_input(std::span<const int64_t> ids) const {
  const int64_t L = int64_t(ids.size());
  LS_CHECK(L >= 1, "hyenadna training: empty sequence");
  LS_CHECK(L <= cfg_.max_seq_len, "hyenadna training: sequence of {} tokens exceeds max_seq_len {} (use a shorter --length)", L,
           cfg_.max_seq_len);
  for (int64_t id : ids) LS_CHECK(id >= 0 && id < this->vocab_, "token id {} outside the vocabulary of {}", id, this->vocab_);
}

template <class T>
void HyenaGrad<T>::backbone_forward(std::span<const int64_t> ids) {
  check_input(ids);
  if constexpr (std::is_same_v<T, float>)
    if (ops_) return device_forward(ids);
  const int64_t L = int64_t(ids.size()), d = cfg_.d_model, n = cfg_.n_layer;
  resid_.resize(size_t(n + 1));
  acts_.resize(this->recompute_ ? 1 : size_t(n));
  for (auto& r : resid_) r.resize(size_t(L * d));
  embedding_forward<T>(ids, this->w(emb_), this->vocab_, mat(resid_[0].data(), L, d));
  for (int64_t i = 0; i < n; ++i)
    forward_layer(i, resid_[size_t(i)].data(), L, acts_[this->recompute_ ? 0 : size_t(i)], resid_[size_t(i + 1)].data());
  this->fin_.resize(size_t(L * d));
  fin_mean_.resize(size_t(L));
  fin_rstd_.resize(size_t(L));
  this->dfin_.resize(size_t(L * d));
  layer_norm_forward<T>(mat<const T>(resid_[size_t(n)].data(), L, d), this->w(lnf_w_), this->w(lnf_b_), cfg_.layer_norm_eps,
                        mat(this->fin_.data(), L, d), fin_mean_.data(), fin_rstd_.data());
}

template <class T>
void HyenaGrad<T>::backbone_backward(std::span<const int64_t> ids, T* grad) {
  if constexpr (std::is_same_v<T, float>)
    if (ops_) return device_backward(ids, grad);
  const int64_t L = int64_t(ids.size()), d = cfg_.d_model, n = cfg_.n_layer;
  std::vector<T> dresid(size_t(L * d), T(0));
  layer_norm_backward<T>(mat<const T>(resid_[size_t(n)].data(), L, d), this->w(lnf_w_), fin_mean_.data(), fin_rstd_.data(),
                         mat<const T>(this->dfin_.data(), L, d), mat(dresid.data(), L, d), this->g(grad, lnf_w_), this->g(grad, lnf_b_));
  for (int64_t i = n - 1; i >= 0; --i) {
    Acts& a = acts_[this->recompute_ ? 0 : size_t(i)];
    if (this->recompute_) forward_layer(i, resid_[size_t(i)].data(), L, a, nullptr);
    backward_layer(i, resid_[size_t(i)].data(), L, a, dresid.data(), grad);
  }
  embedding_backward<T>(ids, mat<const T>(dresid.data(), L, d), this->g(grad, emb_));
}

template class HyenaGrad<float>;
template class HyenaGrad<double>;

}  // namespace longseq::train
