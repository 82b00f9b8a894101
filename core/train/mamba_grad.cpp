#include "core/train/mamba_grad.h"

#include "core/error.h"
#include "core/random.h"

#include <fmt/format.h>

#include <cmath>

namespace longseq::train {

namespace {

constexpr int64_t kScanChunk = 256;  // tokens per recomputed scan chunk in the backward

template <class T>
void zero(std::vector<T>& v, size_t n) {
  v.assign(n, T(0));
}

}  // namespace

template <class T>
MambaGrad<T>::MambaGrad(const MambaModel& model) : cfg_(model.config()) {
  auto named = model.named_parameters();
  named.front().first = "backbone.embedding.weight";  // checkpoints are written in the state-spaces format
  cfg_.format = MambaConfig::Format::StateSpaces;
  this->load_from(named, {});
  this->vocab_ = model.vocab_size();
  emb_ = this->off("backbone.embedding.weight");
  this->lm_head_ = cfg_.tie_embeddings ? emb_ : this->off("lm_head.weight");
  norm_f_w_ = this->off("backbone.norm_f.weight");
  norm_f_b_ = this->off("backbone.norm_f.bias");
  for (int64_t i = 0; i < cfg_.n_layer; ++i) {
    const std::string b = fmt::format("backbone.layers.{}.", i), m = b + "mixer.";
    layers_.push_back({this->off(b + "norm.weight"), this->off(b + "norm.bias"), this->off(m + "in_proj.weight"),
                       this->off(m + "in_proj.bias"), this->off(m + "conv1d.weight"), this->off(m + "conv1d.bias"),
                       this->off(m + "x_proj.weight"), this->off(m + "dt_proj.weight"), this->off(m + "dt_proj.bias"),
                       this->off(m + "A_log"), this->off(m + "D"), this->off(m + "out_proj.weight"),
                       this->off(m + "out_proj.bias")});
  }
}

template <class T>
nlohmann::json MambaGrad<T>::config_json() const {
  return mamba_config_json(cfg_);
}

template <class T>
int64_t MambaGrad<T>::activation_floats_per_token() const {
  const int64_t d = cfg_.d_model, D = cfg_.d_inner, N = cfg_.d_state, R = cfg_.dt_rank;
  const int64_t per_layer = d /*resid*/ + d /*normed*/ + 2 * D + D + (R + 2 * N) + D + D;
  const int64_t head = 2 * d + (this->audio_ ? 0 : 2 * this->vocab_);
  if (pool_.empty()) return (this->recompute_ ? d * cfg_.n_layer + (per_layer - d) : per_layer * cfg_.n_layer) + head;
  // Audio: per input sample; a stage's layers run on 1/stride of the positions, pool inputs are kept.
  double floats = 0;
  int64_t stride = 1;
  for (int64_t i = 0; i < cfg_.n_layer; ++i) {
    if (const int64_t s = stage_opened_by(i); s >= 0) {  // the pool's input (with the filterbank: frames, outputs, bands)
      floats += s == 0 && filters_ > 0 ? double(frame_ + 3 * filters_) / double(pool_[0]) : double(d) / double(stride);
      stride *= pool_[size_t(s)];
    }
    floats += double(this->recompute_ ? d : per_layer) / double(stride);
  }
  if (this->recompute_) floats += double(per_layer - d) / double(pool_.front());
  return int64_t(std::ceil(floats + double(head) / double(stride)));
}

template <class T>
void MambaGrad<T>::norm_forward(int64_t wo, int64_t bo, Mat<const T> x, Mat<T> y, T* mean, T* rstd) {
  if (cfg_.rms_norm)
    rms_norm_forward<T>(x, this->w(wo), cfg_.norm_eps, y, rstd);
  else
    layer_norm_forward<T>(x, this->w(wo), this->w(bo), cfg_.norm_eps, y, mean, rstd);
}

template <class T>
void MambaGrad<T>::norm_backward(int64_t wo, int64_t bo, Mat<const T> x, const T* mean, const T* rstd, Mat<const T> dy,
                                 Mat<T> dx, T* grad) {
  if (cfg_.rms_norm)
    rms_norm_backward<T>(x, this->w(wo), rstd, dy, dx, this->g(grad, wo));
  else
    layer_norm_backward<T>(x, this->w(wo), mean, rstd, dy, dx, this->g(grad, wo), this->g(grad, bo));
}

template <class T>
void MambaGrad<T>::forward_layer(int64_t i, const T* resid_in, int64_t L, Acts& a) {
  const LayerOffsets& o = layers_[size_t(i)];
  const int64_t d = cfg_.d_model, D = cfg_.d_inner, N = cfg_.d_state, R = cfg_.dt_rank, X = R + 2 * N;
  a.normed.resize(size_t(L * d));
  a.mean.resize(size_t(L));
  a.rstd.resize(size_t(L));
  a.xz.resize(size_t(L * 2 * D));
  a.xc.resize(size_t(L * D));
  a.xdbl.resize(size_t(L * X));
  a.delta.resize(size_t(L * D));
  a.y.resize(size_t(L * D));
  a.states.resize(size_t(scan_chunks(L, kScanChunk) * D * N));
  a.A.resize(size_t(D * N));
  const T* A_log = this->w(o.A_log);
  for (int64_t k = 0; k < D * N; ++k) a.A[size_t(k)] = -std::exp(A_log[k]);

  norm_forward(o.norm_w, o.norm_b, mat(resid_in, L, d), mat(a.normed.data(), L, d), a.mean.data(), a.rstd.data());
  const Mat<T> xz = mat(a.xz.data(), L, 2 * D), xdbl = mat(a.xdbl.data(), L, X);
  linear_forward<T>(mat<const T>(a.normed.data(), L, d), this->w(o.in_w), this->w(o.in_b), xz);
  causal_conv1d_forward<T>({.x = xz.cols_slice(0, D), .w = this->w(o.conv_w), .b = this->w(o.conv_b), .W = cfg_.d_conv, .silu = true},
                           mat(a.xc.data(), L, D));
  linear_forward<T>(mat<const T>(a.xc.data(), L, D), this->w(o.x_w), nullptr, xdbl);
  linear_forward<T>(xdbl.cols_slice(0, R), this->w(o.dt_w), nullptr, mat(a.delta.data(), L, D));
  const ScanGrad<T> scan{.u = mat<const T>(a.xc.data(), L, D), .delta = mat<const T>(a.delta.data(), L, D),
                         .B = xdbl.cols_slice(R, N), .C = xdbl.cols_slice(R + N, N), .z = xz.cols_slice(D, D),
                         .A = a.A.data(), .Dskip = this->w(o.Dskip), .delta_bias = this->w(o.dt_b), .softplus = true,
                         .chunk = kScanChunk};
  selective_scan_forward<T>(scan, mat(a.y.data(), L, D), a.states.data(), nullptr);
}

template <class T>
void MambaGrad<T>::backward_layer(int64_t i, const T* resid_in, int64_t L, Acts& a, T* dresid, T* grad) {
  const LayerOffsets& o = layers_[size_t(i)];
  const int64_t d = cfg_.d_model, D = cfg_.d_inner, N = cfg_.d_state, R = cfg_.dt_rank, X = R + 2 * N;
  std::vector<T> dy(size_t(L * D), T(0)), dxz(size_t(L * 2 * D), T(0)), dxc(size_t(L * D), T(0)), ddelta(size_t(L * D), T(0)),
      dxdbl(size_t(L * X), T(0)), dnormed(size_t(L * d), T(0)), dA(size_t(D * N), T(0));
  Mat<T> dy_m = mat(dy.data(), L, D), dxz_m = mat(dxz.data(), L, 2 * D), dxc_m = mat(dxc.data(), L, D),
         dxdbl_m = mat(dxdbl.data(), L, X), dnormed_m = mat(dnormed.data(), L, d);
  // out_proj (the residual branch: dresid flows on unchanged and into the mixer)
  linear_backward<T>(mat<const T>(a.y.data(), L, D), this->w(o.out_w), mat<const T>(dresid, L, d), &dy_m, this->g(grad, o.out_w),
                     this->g(grad, o.out_b));
  const Mat<T> xz = mat(a.xz.data(), L, 2 * D), xdbl = mat(a.xdbl.data(), L, X);
  const ScanGrad<T> scan{.u = mat<const T>(a.xc.data(), L, D), .delta = mat<const T>(a.delta.data(), L, D),
                         .B = xdbl.cols_slice(R, N), .C = xdbl.cols_slice(R + N, N), .z = xz.cols_slice(D, D),
                         .A = a.A.data(), .Dskip = this->w(o.Dskip), .delta_bias = this->w(o.dt_b), .softplus = true,
                         .chunk = kScanChunk};
  selective_scan_backward<T>(scan, a.states.data(), dy_m,
                             {.du = dxc_m, .ddelta = mat(ddelta.data(), L, D), .dB = dxdbl_m.cols_slice(R, N),
                              .dC = dxdbl_m.cols_slice(R + N, N), .dz = dxz_m.cols_slice(D, D), .dA = dA.data(),
                              .dDskip = this->g(grad, o.Dskip), .ddelta_bias = this->g(grad, o.dt_b)});
  if (T* gA = this->g(grad, o.A_log))  // A = -exp(A_log): dA_log = dA * A
    for (int64_t k = 0; k < D * N; ++k) gA[k] += dA[size_t(k)] * a.A[size_t(k)];
  Mat<T> ddt_in = dxdbl_m.cols_slice(0, R);
  linear_backward<T>(xdbl.cols_slice(0, R), this->w(o.dt_w), mat<const T>(ddelta.data(), L, D), &ddt_in, this->g(grad, o.dt_w),
                     nullptr);
  linear_backward<T>(mat<const T>(a.xc.data(), L, D), this->w(o.x_w), dxdbl_m, &dxc_m, this->g(grad, o.x_w), nullptr);
  Mat<T> dx_in = dxz_m.cols_slice(0, D);
  causal_conv1d_backward<T>({.x = xz.cols_slice(0, D), .w = this->w(o.conv_w), .b = this->w(o.conv_b), .W = cfg_.d_conv, .silu = true},
                            dxc_m, dx_in, this->g(grad, o.conv_w), this->g(grad, o.conv_b), nullptr);
  linear_backward<T>(mat<const T>(a.normed.data(), L, d), this->w(o.in_w), dxz_m, &dnormed_m, this->g(grad, o.in_w),
                     this->g(grad, o.in_b));
  norm_backward(o.norm_w, o.norm_b, mat(resid_in, L, d), a.mean.data(), a.rstd.data(), dnormed_m, mat(dresid, L, d), grad);
}

template <class T>
void MambaGrad<T>::add_pooling(const AudioSpec& spec, uint64_t seed) {
  const int64_t d = cfg_.d_model, stages = int64_t(spec.pool.size());
  LS_CHECK(stages >= 1 && cfg_.n_layer % stages == 0, "{} layers cannot be split evenly into {} pooling stages; make n_layer a multiple",
           cfg_.n_layer, stages);
  pool_ = spec.pool;
  filters_ = spec.filters;
  frame_ = spec.frame;
  learn_filters_ = spec.learn_filters;
  band_norm_ = spec.band_norm;
  if (filters_ > 0) {
    fb_w_ = this->table_.add("backbone.filterbank.weight", {2 * filters_, frame_}, learn_filters_);
    this->weights_.resize(size_t(this->table_.size()));
    filterbank_init<T>(filters_, frame_, double(spec.sample_rate), this->w(fb_w_));
  }
  Rng rng(seed ^ 0x706f6f6cull);
  for (int64_t s = 0; s < stages; ++s) {
    const int64_t fan_in = pool_cols(s);
    const std::string b = fmt::format("backbone.pool.{}.", s);
    pool_w_.push_back(this->table_.add(b + "weight", {d, fan_in}, true));
    pool_b_.push_back(this->table_.add(b + "bias", {d}, true));
    this->weights_.resize(size_t(this->table_.size()));
    const double bound = 1.0 / std::sqrt(double(fan_in));  // torch.nn.Linear's default
    for (int64_t k = 0; k < d * fan_in + d; ++k) this->weights_[size_t(pool_w_.back() + k)] = T(rng.uniform(-bound, bound));
  }
}

template <class T>
int64_t MambaGrad<T>::stage_opened_by(int64_t i) const {
  if (pool_.empty()) return -1;
  const int64_t per_stage = cfg_.n_layer / int64_t(pool_.size());
  return i % per_stage == 0 ? i / per_stage : -1;
}

template <class T>
void MambaGrad<T>::backbone_forward(std::span<const int64_t> ids) {
  if constexpr (std::is_same_v<T, float>)
    if (ops_) return device_forward(ids);
  const int64_t L0 = int64_t(ids.size()), d = cfg_.d_model, n = cfg_.n_layer;
  LS_CHECK(L0 >= 1, "mamba training: empty sequence");
  if (this->audio_)
    LS_CHECK(L0 % this->audio_->stride() == 0, "audio model: {} samples is not a multiple of the pooling stride {}", L0,
             this->audio_->stride());
  for (int64_t id : ids) LS_CHECK(id >= 0 && id < this->vocab_, "token id {} outside the vocabulary of {}", id, this->vocab_);
  resid_.resize(size_t(n + 1));
  lens_.assign(size_t(n + 1), L0);
  pooled_in_.resize(pool_.size());
  acts_.resize(this->recompute_ ? 1 : size_t(n));
  std::vector<T> x;
  int64_t L = L0;
  if (filters_ > 0) {  // filterbank front end: frames -> filter pairs -> log power, (L / hop, filters)
    L = L0 / pool_[0];
    frames_.resize(size_t(L * frame_));
    audio_frames<T>(ids, pool_[0], mat(frames_.data(), L, frame_));
    fb_y_.assign(size_t(L * 2 * filters_), T(0));
    linear_forward<T>(mat<const T>(frames_.data(), L, frame_), this->w(fb_w_), nullptr, mat(fb_y_.data(), L, 2 * filters_));
    x.resize(size_t(L * filters_));
    log_power_forward<T>(mat<const T>(fb_y_.data(), L, 2 * filters_), mat(x.data(), L, filters_));
    if (band_norm_) center_columns<T>(mat(x.data(), L, filters_));
  } else {
    x.resize(size_t(L0 * d));
    embedding_forward<T>(ids, this->w(emb_), this->vocab_, mat(x.data(), L0, d));
  }
  for (int64_t i = 0; i <= n; ++i) {
    if (const int64_t s = i < n ? stage_opened_by(i) : -1; s >= 0) {  // down-pool: (L, d) as (L/p, p d) -> (L/p, d)
      pooled_in_[size_t(s)] = std::move(x);
      if (s > 0 || filters_ == 0) L /= pool_[size_t(s)];
      x.assign(size_t(L * d), T(0));
      linear_forward<T>(mat<const T>(pooled_in_[size_t(s)].data(), L, pool_cols(s)), this->w(pool_w_[size_t(s)]),
                        this->w(pool_b_[size_t(s)]), mat(x.data(), L, d));
    }
    lens_[size_t(i)] = L;
    resid_[size_t(i)] = std::move(x);
    if (i == n) break;
    Acts& a = acts_[this->recompute_ ? 0 : size_t(i)];
    forward_layer(i, resid_[size_t(i)].data(), L, a);
    x = resid_[size_t(i)];
    branch_.resize(size_t(L * d));
    const LayerOffsets& o = layers_[size_t(i)];
    linear_forward<T>(mat<const T>(a.y.data(), L, cfg_.d_inner), this->w(o.out_w), this->w(o.out_b), mat(branch_.data(), L, d));
    for (int64_t k = 0; k < L * d; ++k) x[size_t(k)] += branch_[size_t(k)];
  }
  this->fin_.resize(size_t(L * d));
  fin_mean_.resize(size_t(L));
  fin_rstd_.resize(size_t(L));
  this->dfin_.resize(size_t(L * d));
  norm_forward(norm_f_w_, norm_f_b_, mat<const T>(resid_[size_t(n)].data(), L, d), mat(this->fin_.data(), L, d), fin_mean_.data(),
               fin_rstd_.data());
}

template <class T>
void MambaGrad<T>::backbone_backward(std::span<const int64_t> ids, T* grad) {
  if constexpr (std::is_same_v<T, float>)
    if (ops_) return device_backward(ids, grad);
  const int64_t d = cfg_.d_model, n = cfg_.n_layer;
  int64_t L = lens_[size_t(n)];
  std::vector<T> dresid(size_t(L * d), T(0));
  norm_backward(norm_f_w_, norm_f_b_, mat<const T>(resid_[size_t(n)].data(), L, d), fin_mean_.data(), fin_rstd_.data(),
                mat<const T>(this->dfin_.data(), L, d), mat(dresid.data(), L, d), grad);
  for (int64_t i = n - 1; i >= 0; --i) {
    Acts& a = acts_[this->recompute_ ? 0 : size_t(i)];
    if (this->recompute_) forward_layer(i, resid_[size_t(i)].data(), L, a);
    backward_layer(i, resid_[size_t(i)].data(), L, a, dresid.data(), grad);
    if (const int64_t s = stage_opened_by(i); s >= 0) {
      const int64_t cols = pool_cols(s);
      const bool stem = s == 0 && filters_ > 0, need_dx = !stem || learn_filters_;
      std::vector<T> dx(need_dx ? size_t(L * cols) : 0, T(0));
      Mat<T> dx_m = mat(dx.data(), L, cols);
      linear_backward<T>(mat<const T>(pooled_in_[size_t(s)].data(), L, cols), this->w(pool_w_[size_t(s)]),
                         mat<const T>(dresid.data(), L, d), need_dx ? &dx_m : nullptr, this->g(grad, pool_w_[size_t(s)]),
                         this->g(grad, pool_b_[size_t(s)]));
      dresid = std::move(dx);
      if (!stem) L *= pool_[size_t(s)];
    }
  }
  if (filters_ == 0) {
    embedding_backward<T>(ids, mat<const T>(dresid.data(), L, d), this->g(grad, emb_));
  } else if (learn_filters_) {
    std::vector<T> dy(size_t(L * 2 * filters_), T(0));
    if (band_norm_) center_columns<T>(mat(dresid.data(), L, filters_));
    log_power_backward<T>(mat<const T>(fb_y_.data(), L, 2 * filters_), mat<const T>(dresid.data(), L, filters_),
                          mat(dy.data(), L, 2 * filters_));
    linear_backward<T>(mat<const T>(frames_.data(), L, frame_), this->w(fb_w_), mat<const T>(dy.data(), L, 2 * filters_), nullptr,
                       this->g(grad, fb_w_), nullptr);
  }
}

template class MambaGrad<float>;
template class MambaGrad<double>;

}  // namespace longseq::train
