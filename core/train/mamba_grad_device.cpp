// MambaGrad's backbone on a device (DeviceOps): the forward keeps every layer's activations on the
// device (as the CPU path without recomputation; raw-audio models too, with their filterbank front
// end on the host and the pooling stages as GEMMs on the device), the backward writes each parameter's gradient
// into a device array laid out like the host's flat table, downloaded once per sequence and added
// into the host gradient. The same steps as MambaGrad::forward_layer / backward_layer, with the
// kernels' backward entries; the LM head and loss stay on the host (V is small for DNA).
#include "core/error.h"
#include "core/train/device_steps.h"
#include "core/train/mamba_grad.h"

#include <cmath>

namespace longseq::train {

template <class T>
struct MambaGrad<T>::Device {
  struct Layer {
    DeviceArray<float> resid, normed, mean, rstd, xz, xc, xdbl, delta, y, A;
  };
  DeviceArray<float> weights, grads, fin, fin_mean, fin_rstd, resid_out;
  DeviceArray<int64_t> ids;
  std::vector<Layer> layers;
  std::vector<DeviceArray<float>> stage_in;  // audio: each pooling stage's input (rows before pooling x pool_cols)
  // Backward temporaries.
  DeviceArray<float> dresid, dtmp, dy, dxz, dxc, ddelta, dxdbl, dnormed, dA, dstage;
  int64_t L = -1;  // input length the buffers are sized for
};

template <class T>
void MambaGrad<T>::set_device(std::shared_ptr<DeviceOps> ops) {
  if constexpr (!std::is_same_v<T, float>) {
    LS_CHECK(!ops, "device training runs in float only");
  } else {
    LS_CHECK(!ops || (cfg_.d_conv <= cuda::kConvMaxWidth && cfg_.d_state <= cuda::kScanMaxStates),
             "--device: d_conv {} or d_state {} exceeds the kernels' limits ({} and {}); use --device cpu", cfg_.d_conv, cfg_.d_state,
             cuda::kConvMaxWidth, cuda::kScanMaxStates);
  }
  ops_ = std::move(ops);
  device_.reset();
}

template <class T>
void MambaGrad<T>::device_forward(std::span<const int64_t> ids) {
  DeviceOps& o = *ops_;
  const int64_t L0 = int64_t(ids.size()), d = cfg_.d_model, D = cfg_.d_inner, N = cfg_.d_state, R = cfg_.dt_rank, X = R + 2 * N;
  const int64_t n = cfg_.n_layer, P = this->table_.size(), W = cfg_.d_conv;
  LS_CHECK(L0 >= 1, "mamba training: empty sequence");
  if (this->audio_)
    LS_CHECK(L0 % this->audio_->stride() == 0, "audio model: {} samples is not a multiple of the pooling stride {}", L0,
             this->audio_->stride());
  for (int64_t id : ids) LS_CHECK(id >= 0 && id < this->vocab_, "token id {} outside the vocabulary of {}", id, this->vocab_);
  // Rows entering each layer (audio pooling shortens them) and entering each stage's pool.
  std::vector<int64_t> rows(static_cast<size_t>(n + 1)), stage_rows(pool_.size());
  int64_t L = filters_ > 0 ? L0 / pool_[0] : L0;
  for (int64_t i = 0; i < n; ++i) {
    if (const int64_t s = stage_opened_by(i); s >= 0) {
      stage_rows[size_t(s)] = L;
      if (s > 0 || filters_ == 0) L /= pool_[size_t(s)];
    }
    rows[size_t(i)] = L;
  }
  rows[size_t(n)] = L;
  if (!device_) {
    device_ = std::make_shared<Device>();
    device_->weights = DeviceArray<float>(o, P);
    device_->grads = DeviceArray<float>(o, P);
  }
  Device& dv = *device_;
  if (dv.L != L0) {  // activation buffers for this input length
    const auto arr = [&](int64_t size) { return DeviceArray<float>(o, size); };
    dv.layers.clear();
    for (int64_t i = 0; i < n; ++i) {
      const int64_t Li = rows[size_t(i)];
      dv.layers.push_back({arr(Li * d), arr(Li * d), arr(Li), arr(Li), arr(Li * 2 * D), arr(Li * D), arr(Li * X), arr(Li * D),
                           arr(Li * D), arr(D * N)});
    }
    dv.stage_in.clear();
    for (size_t s = 0; s < pool_.size(); ++s) dv.stage_in.push_back(arr(stage_rows[s] * pool_cols(int64_t(s))));
    dv.fin = arr(L * d), dv.fin_mean = arr(L), dv.fin_rstd = arr(L), dv.resid_out = arr(L * d), dv.ids = DeviceArray<int64_t>(o, L0);
    // Backward temporaries for the longest layer; dresid also holds a stage input's gradient.
    int64_t Lmax = 0, stage_max = 0;
    for (int64_t i = 0; i <= n; ++i) Lmax = std::max(Lmax, rows[size_t(i)]);
    for (size_t s2 = 0; s2 < pool_.size(); ++s2) stage_max = std::max(stage_max, stage_rows[s2] * pool_cols(int64_t(s2)));
    dv.dresid = arr(std::max(Lmax * d, stage_max)), dv.dtmp = arr(Lmax * d), dv.dy = arr(Lmax * D), dv.dxz = arr(Lmax * 2 * D);
    dv.dxc = arr(Lmax * D), dv.ddelta = arr(Lmax * D), dv.dxdbl = arr(Lmax * X), dv.dnormed = arr(Lmax * d), dv.dA = arr(D * N);
    dv.dstage = arr(std::max<int64_t>(stage_max, 1));
    dv.L = L0;
  }
  o.to_device(dv.weights.get(), this->weights_.data(), P);
  const DeviceSteps steps{o, dv.weights.get(), dv.grads.get()};
  const auto w = [&](int64_t off) { return steps.w(off); };
  // The first input: a filterbank front end runs on the host (a few MFLOP per clip), embeddings on the device.
  float* first = pool_.empty() ? dv.layers[0].resid.get() : dv.stage_in[0].get();
  if (filters_ > 0) {
    frames_.resize(size_t(rows[0] * frame_));
    audio_frames<T>(ids, pool_[0], mat(frames_.data(), rows[0], frame_));
    fb_y_.assign(size_t(rows[0] * 2 * filters_), T(0));
    linear_forward<T>(mat<const T>(frames_.data(), rows[0], frame_), this->w(fb_w_), nullptr, mat(fb_y_.data(), rows[0], 2 * filters_));
    std::vector<T> bands(static_cast<size_t>(rows[0] * filters_));
    log_power_forward<T>(mat<const T>(fb_y_.data(), rows[0], 2 * filters_), mat(bands.data(), rows[0], filters_));
    if (band_norm_) center_columns<T>(mat(bands.data(), rows[0], filters_));
    o.to_device(first, bands.data(), rows[0] * filters_);
  } else {
    o.ids_to_device(dv.ids.get(), ids.data(), L0);
    o.embedding({.tokens = L0, .dim = d, .vocab = this->vocab_, .ids = dv.ids.get(), .table = w(emb_), .out = first, .out_r = d});
  }
  const auto norm = [&](int64_t wo, int64_t bo, int64_t Li, const float* x, float* y, float* mean, float* rstd) {
    steps.norm_forward(Li, d, cfg_.rms_norm, cfg_.norm_eps, wo, bo, x, y, mean, rstd);
  };
  std::vector<float> A(static_cast<size_t>(D * N));
  for (int64_t i = 0; i < n; ++i) {
    const LayerOffsets& lo = layers_[size_t(i)];
    typename Device::Layer& a = dv.layers[size_t(i)];
    const int64_t Li = rows[size_t(i)];
    if (const int64_t s = stage_opened_by(i); s >= 0)  // down-pool: the stage input (rows, cols) read as (Li, pool_cols)
      o.linear(dv.stage_in[size_t(s)].get(), pool_cols(s), w(pool_w_[size_t(s)]), w(pool_b_[size_t(s)]), a.resid.get(), d, Li, pool_cols(s),
               d);
    const float* A_log = this->weights_.data() + lo.A_log;
    for (int64_t k = 0; k < D * N; ++k) A[size_t(k)] = -std::exp(A_log[k]);
    o.to_device(a.A.get(), A.data(), D * N);
    norm(lo.norm_w, lo.norm_b, Li, a.resid.get(), a.normed.get(), a.mean.get(), a.rstd.get());
    o.linear(a.normed.get(), d, w(lo.in_w), w(lo.in_b), a.xz.get(), 2 * D, Li, d, 2 * D);
    o.conv1d({.batch = 1, .length = Li, .channels = D, .width = W, .x = a.xz.get(), .x_b = 0, .x_l = 2 * D, .weight = w(lo.conv_w),
              .bias = w(lo.conv_b), .silu = true, .out = a.xc.get(), .out_b = 0, .out_l = D});
    o.linear(a.xc.get(), D, w(lo.x_w), nullptr, a.xdbl.get(), X, Li, D, X);
    o.linear(a.xdbl.get(), X, w(lo.dt_w), nullptr, a.delta.get(), D, Li, R, D);
    o.scan({.batch = 1, .length = Li, .channels = D, .states = N, .u = a.xc.get(), .u_b = 0, .u_l = D, .delta = a.delta.get(), .delta_b = 0,
            .delta_l = D, .Bm = a.xdbl.get() + R, .B_b = 0, .B_l = X, .Cm = a.xdbl.get() + R + N, .C_b = 0, .C_l = X, .z = a.xz.get() + D,
            .z_b = 0, .z_l = 2 * D, .A = a.A.get(), .Dskip = w(lo.Dskip), .delta_bias = w(lo.dt_b), .softplus = true, .y = a.y.get(),
            .y_b = 0, .y_l = D});
    const int64_t next_stage = i + 1 < n ? stage_opened_by(i + 1) : -1;
    float* next = i + 1 == n ? dv.resid_out.get() : next_stage >= 0 ? dv.stage_in[size_t(next_stage)].get() : dv.layers[size_t(i + 1)].resid.get();
    o.linear(a.y.get(), D, w(lo.out_w), w(lo.out_b), next, d, Li, D, d);
    o.add(next, a.resid.get(), Li * d);  // block output = input + branch
  }
  norm(norm_f_w_, norm_f_b_, L, dv.resid_out.get(), dv.fin.get(), dv.fin_mean.get(), dv.fin_rstd.get());
  lens_ = rows;
  this->fin_.resize(size_t(L * d));
  this->dfin_.resize(size_t(L * d));
  o.to_host(this->fin_.data(), dv.fin.get(), L * d);
}

template <class T>
void MambaGrad<T>::device_backward(std::span<const int64_t> ids, T* grad) {
  DeviceOps& o = *ops_;
  Device& dv = *device_;
  const int64_t d = cfg_.d_model, D = cfg_.d_inner, N = cfg_.d_state, R = cfg_.dt_rank, X = R + 2 * N, n = cfg_.n_layer;
  const int64_t P = this->table_.size(), W = cfg_.d_conv;
  LS_CHECK(int64_t(ids.size()) == dv.L, "mamba training: backward of {} tokens after a forward of {}", ids.size(), dv.L);
  o.zero(dv.grads.get(), P);
  const DeviceSteps steps{o, dv.weights.get(), dv.grads.get()};
  const auto w = [&](int64_t off) { return steps.w(off); };
  const auto gr = [&](int64_t off) { return steps.g(off); };
  const auto norm_backward = [&](int64_t M, int64_t wo, int64_t bo, const float* x, const float* mean, const float* rstd, const float* dy,
                                 float* dx) { steps.norm_backward(M, d, cfg_.rms_norm, cfg_.norm_eps, wo, bo, x, mean, rstd, dy, dx); };
  const int64_t L = lens_[size_t(n)];
  o.to_device(dv.dtmp.get(), this->dfin_.data(), L * d);
  norm_backward(L, norm_f_w_, norm_f_b_, dv.resid_out.get(), dv.fin_mean.get(), dv.fin_rstd.get(), dv.dtmp.get(), dv.dresid.get());
  for (int64_t i = n - 1; i >= 0; --i) {
    const LayerOffsets& lo = layers_[size_t(i)];
    const typename Device::Layer& a = dv.layers[size_t(i)];
    const int64_t Li = lens_[size_t(i)];
    steps.linear_backward(Li, a.y.get(), D, D, lo.out_w, lo.out_b, d, dv.dresid.get(), d, dv.dy.get(), D, 0.0f);
    o.scan_backward({.fwd = {.batch = 1, .length = Li, .channels = D, .states = N, .u = a.xc.get(), .u_b = 0, .u_l = D,
                             .delta = a.delta.get(), .delta_b = 0, .delta_l = D, .Bm = a.xdbl.get() + R, .B_b = 0, .B_l = X,
                             .Cm = a.xdbl.get() + R + N, .C_b = 0, .C_l = X, .z = a.xz.get() + D, .z_b = 0, .z_l = 2 * D,
                             .A = a.A.get(), .Dskip = w(lo.Dskip), .delta_bias = w(lo.dt_b), .softplus = true},
                     .dy = dv.dy.get(), .dy_b = 0, .dy_l = D, .du = dv.dxc.get(), .du_b = 0, .du_l = D, .ddelta = dv.ddelta.get(),
                     .ddelta_b = 0, .ddelta_l = D, .dz = dv.dxz.get() + D, .dz_b = 0, .dz_l = 2 * D, .dB = dv.dxdbl.get() + R,
                     .dB_b = 0, .dB_l = X, .dC = dv.dxdbl.get() + R + N, .dC_b = 0, .dC_l = X, .dA = dv.dA.get(),
                     .dDskip = gr(lo.Dskip), .ddelta_bias = gr(lo.dt_b)});
    o.multiply_rows({.rows = 1, .cols = D * N, .a = dv.dA.get(), .b = a.A.get(), .out = gr(lo.A_log)});  // A = -exp(A_log): dA_log = dA A
    steps.linear_backward(Li, a.xdbl.get(), X, R, lo.dt_w, -1, D, dv.ddelta.get(), D, dv.dxdbl.get(), X, 0.0f);
    steps.linear_backward(Li, a.xc.get(), D, D, lo.x_w, -1, X, dv.dxdbl.get(), X, dv.dxc.get(), D, 1.0f);
    o.conv1d_backward({.fwd = {.batch = 1, .length = Li, .channels = D, .width = W, .x = a.xz.get(), .x_b = 0, .x_l = 2 * D,
                               .weight = w(lo.conv_w), .bias = w(lo.conv_b), .silu = true},
                       .dout = dv.dxc.get(), .dout_b = 0, .dout_l = D, .dx = dv.dxz.get(), .dx_b = 0, .dx_l = 2 * D,
                       .dweight = gr(lo.conv_w), .dbias = gr(lo.conv_b)});
    steps.linear_backward(Li, a.normed.get(), d, d, lo.in_w, lo.in_b, 2 * D, dv.dxz.get(), 2 * D, dv.dnormed.get(), d, 0.0f);
    norm_backward(Li, lo.norm_w, lo.norm_b, a.resid.get(), a.mean.get(), a.rstd.get(), dv.dnormed.get(), dv.dtmp.get());
    o.add(dv.dresid.get(), dv.dtmp.get(), Li * d);  // the residual path carries dresid through unchanged
    if (const int64_t s = stage_opened_by(i); s >= 0) {  // back through the down-pool into the stage input
      const int64_t cols = pool_cols(s);
      const bool stem = s == 0 && filters_ > 0, need_dx = !stem || learn_filters_;
      steps.linear_backward(Li, dv.stage_in[size_t(s)].get(), cols, cols, pool_w_[size_t(s)], pool_b_[size_t(s)], d, dv.dresid.get(), d,
                      need_dx ? dv.dstage.get() : nullptr, cols, 0.0f);
      if (need_dx) o.copy(dv.dresid.get(), dv.dstage.get(), Li * cols);  // the previous layer's output gradient (or the stem's)
    }
  }
  if (filters_ == 0) {
    o.embedding_backward({.tokens = int64_t(ids.size()), .dim = d, .vocab = this->vocab_, .ids = dv.ids.get(), .dout = dv.dresid.get(),
                          .dout_r = d, .dtable = gr(emb_)});
  } else if (learn_filters_) {  // the filterbank's backward on the host, where its forward ran
    const int64_t rows0 = lens_[0];
    std::vector<float> dbands(static_cast<size_t>(rows0 * filters_)), dy(static_cast<size_t>(rows0 * 2 * filters_), 0.0f);
    o.to_host(dbands.data(), dv.dresid.get(), rows0 * filters_);
    if (band_norm_) center_columns<T>(mat(dbands.data(), rows0, filters_));
    log_power_backward<T>(mat<const T>(fb_y_.data(), rows0, 2 * filters_), mat<const T>(dbands.data(), rows0, filters_),
                          mat(dy.data(), rows0, 2 * filters_));
    train::linear_backward<T>(mat<const T>(frames_.data(), rows0, frame_), this->w(fb_w_), mat<const T>(dy.data(), rows0, 2 * filters_), nullptr,
                       this->g(grad, fb_w_), nullptr);
  }
  steps.add_grads_to(grad, P);
}

template void MambaGrad<float>::set_device(std::shared_ptr<DeviceOps>);
template void MambaGrad<double>::set_device(std::shared_ptr<DeviceOps>);
template void MambaGrad<float>::device_forward(std::span<const int64_t>);  // float only: set_device refuses double
template void MambaGrad<float>::device_backward(std::span<const int64_t>, float*);

}  // namespace longseq::train
