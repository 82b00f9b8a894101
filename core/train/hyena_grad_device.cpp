// HyenaGrad's backbone on a device (DeviceOps): the same steps as HyenaGrad::forward_layer /
// backward_layer and filter_forward / filter_backward with the kernels' entries (LayerNorms, GEMMs,
// the short depthwise conv, the FFT long convolution with its gate and skip bias, GELU, the implicit
// filter's Sin with one frequency per column), every layer's activations kept on the device. The
// modulation depends on buffers only, so it is made on the host once per (layer, L). Gradients land
// in a device array laid out like the host's flat table, downloaded once per sequence; the LM head
// and loss stay on the host.
#include "core/error.h"
#include "kernels/fft_size.h"
#include "core/train/device_steps.h"
#include "core/train/hyena_grad.h"

#include <algorithm>

namespace longseq::train {

template <class T>
struct HyenaGrad<T>::Device {
  struct Layer {
    DeviceArray<float> resid, n1, mean1, rstd1, p, c, gv, yv, xmid, n2, mean2, rstd2, hfc, gl, spec, mod;
    std::vector<DeviceArray<float>> pre, post;  // the filter MLP's activations before and after each Sin
  };
  DeviceArray<float> weights, grads, resid_out, fin, fin_mean, fin_rstd, k;
  DeviceArray<int64_t> ids;
  std::vector<Layer> layers;
  DeviceArray<float> dresid, dtmp, dgl, dn, dyv, dgv, dk, dc, dp, dh, dpre, cos_dy, dfreq;  // backward temporaries
  int64_t L = -1, nfft = 0;  // input length the buffers are sized for, and its FFT size
  const cuda::CFloat* spectrum(const Layer& a) const { return reinterpret_cast<const cuda::CFloat*>(a.spec.get()); }
};

template <class T>
void HyenaGrad<T>::set_device(std::shared_ptr<DeviceOps> ops) {
  if constexpr (!std::is_same_v<T, float>) {
    LS_CHECK(!ops, "device training runs in float only");
  } else {
    LS_CHECK(!ops || cfg_.short_filter_order <= cuda::kConvMaxWidth,
             "--device: short_filter_order {} exceeds the conv kernel's limit {}; use --device cpu", cfg_.short_filter_order,
             cuda::kConvMaxWidth);
  }
  ops_ = std::move(ops);
  device_.reset();
}

// The implicit filter into dv.k (L, d): z[:L] -> (Linear, Sin) x inner -> Linear -> x modulation.
template <class T>
void HyenaGrad<T>::device_filter_forward(int64_t i, int64_t L) {
  DeviceOps& o = *ops_;
  Device& dv = *device_;
  typename Device::Layer& a = dv.layers[size_t(i)];
  const LayerOffsets& lo = layers_[size_t(i)];
  const int64_t d = cfg_.d_model, O = cfg_.filter_order, inner = int64_t(a.pre.size());
  const DeviceSteps steps{o, dv.weights.get(), dv.grads.get()};
  const float* h = steps.w(lo.z);  // rows [:L] of the max_seq_len grid
  int64_t width = cfg_.emb_dim;
  for (int64_t j = 0; j < inner; ++j) {
    o.linear(h, width, steps.w(lo.mlp_w[size_t(j)]), steps.w(lo.mlp_b[size_t(j)]), a.pre[size_t(j)].get(), O, L, width, O);
    o.sin_columns({.rows = L, .cols = O, .x = a.pre[size_t(j)].get(), .freq = steps.w(lo.freq), .y = a.post[size_t(j)].get()});
    h = a.post[size_t(j)].get(), width = O;
  }
  o.linear(h, O, steps.w(lo.mlp_w.back()), nullptr, dv.k.get(), d, L, O, d);
  o.multiply_rows({.rows = L, .cols = d, .a = dv.k.get(), .lda = d, .b = a.mod.get(), .ldb = d, .out = dv.k.get(), .ldo = d});
}

// From dv.dk (overwritten): the filter MLP's gradients, freq's summed over its uses, z's rows [:L].
template <class T>
void HyenaGrad<T>::device_filter_backward(int64_t i, int64_t L) {
  DeviceOps& o = *ops_;
  Device& dv = *device_;
  const typename Device::Layer& a = dv.layers[size_t(i)];
  const LayerOffsets& lo = layers_[size_t(i)];
  const int64_t d = cfg_.d_model, O = cfg_.filter_order, E = cfg_.emb_dim, inner = int64_t(a.pre.size());
  const DeviceSteps steps{o, dv.weights.get(), dv.grads.get()};
  o.multiply_rows({.rows = L, .cols = d, .a = dv.dk.get(), .lda = d, .b = a.mod.get(), .ldb = d, .out = dv.dk.get(), .ldo = d});
  steps.linear_backward(L, a.post[size_t(inner - 1)].get(), O, O, lo.mlp_w.back(), -1, d, dv.dk.get(), d, dv.dh.get(), O, 0.0f);
  for (int64_t j = inner - 1; j >= 0; --j) {
    const float* pre = a.pre[size_t(j)].get();
    o.sin_columns_backward({.rows = L, .cols = O, .x = pre, .freq = steps.w(lo.freq), .dy = dv.dh.get(), .dx = dv.dpre.get(),
                            .cos_dy = dv.cos_dy.get()});
    if (float* dfreq = steps.g(lo.freq)) {  // d freq[c] += sum over rows of cos(freq x) dy x
      o.multiply_rows({.rows = L, .cols = O, .a = dv.cos_dy.get(), .lda = O, .b = pre, .ldb = O, .out = dv.cos_dy.get(), .ldo = O});
      o.column_sums(dv.cos_dy.get(), O, L, O, dv.dfreq.get());
      o.add(dfreq, dv.dfreq.get(), O);
    }
    const bool first = j == 0;
    steps.linear_backward(L, first ? steps.w(lo.z) : a.post[size_t(j - 1)].get(), first ? E : O, first ? E : O, lo.mlp_w[size_t(j)],
                          lo.mlp_b[size_t(j)], O, dv.dpre.get(), O, first ? steps.g(lo.z) : dv.dh.get(), first ? E : O, 0.0f);
  }
}

template <class T>
void HyenaGrad<T>::device_forward(std::span<const int64_t> ids) {
  DeviceOps& o = *ops_;
  const int64_t L = int64_t(ids.size()), d = cfg_.d_model, di = cfg_.d_inner, n = cfg_.n_layer, P = this->table_.size();
  const int64_t W = cfg_.short_filter_order, O = cfg_.filter_order;
  if (!device_) {
    device_ = std::make_shared<Device>();
    device_->weights = DeviceArray<float>(o, P);
    device_->grads = DeviceArray<float>(o, P);
  }
  Device& dv = *device_;
  if (dv.L != L) {  // activation buffers for this input length
    const auto arr = [&](int64_t size) { return DeviceArray<float>(o, size); };
    dv.nfft = fft_fast_size(std::max<int64_t>(2 * L - 1, 2));
    dv.layers.clear();
    std::vector<float> mod(static_cast<size_t>(L * d));
    for (int64_t i = 0; i < n; ++i) {
      dv.layers.push_back({arr(L * d), arr(L * d), arr(L), arr(L), arr(L * 3 * d), arr(L * 3 * d), arr(L * d), arr(L * d), arr(L * d),
                           arr(L * d), arr(L), arr(L), arr(L * di), arr(L * di), arr(2 * d * (dv.nfft / 2 + 1)), arr(L * d), {}, {}});
      typename Device::Layer& a = dv.layers.back();
      for (size_t j = 0; j + 1 < layers_[size_t(i)].mlp_w.size(); ++j) {
        a.pre.push_back(arr(L * O));
        a.post.push_back(arr(L * O));
      }
      modulation(i, L, mod.data());
      o.to_device(a.mod.get(), mod.data(), L * d);
    }
    dv.resid_out = arr(L * d), dv.fin = arr(L * d), dv.fin_mean = arr(L), dv.fin_rstd = arr(L), dv.k = arr(L * d);
    dv.ids = DeviceArray<int64_t>(o, L);
    dv.dresid = arr(L * d), dv.dtmp = arr(L * d), dv.dgl = arr(L * di), dv.dn = arr(L * d), dv.dyv = arr(L * d), dv.dgv = arr(L * d);
    dv.dk = arr(L * d), dv.dc = arr(L * 3 * d), dv.dp = arr(L * 3 * d);
    dv.dh = arr(L * O), dv.dpre = arr(L * O), dv.cos_dy = arr(L * O), dv.dfreq = arr(O);
    dv.L = L;
  }
  o.to_device(dv.weights.get(), this->weights_.data(), P);
  const DeviceSteps steps{o, dv.weights.get(), dv.grads.get()};
  const auto w = [&](int64_t off) { return steps.w(off); };
  o.ids_to_device(dv.ids.get(), ids.data(), L);
  o.embedding({.tokens = L, .dim = d, .vocab = this->vocab_, .ids = dv.ids.get(), .table = w(emb_), .out = dv.layers[0].resid.get(), .out_r = d});
  for (int64_t i = 0; i < n; ++i) {
    const LayerOffsets& lo = layers_[size_t(i)];
    typename Device::Layer& a = dv.layers[size_t(i)];
    steps.norm_forward(L, d, false, HyenaModel::kBlockNormEps, lo.n1w, lo.n1b, a.resid.get(), a.n1.get(), a.mean1.get(), a.rstd1.get());
    o.linear(a.n1.get(), d, w(lo.in_w), w(lo.in_b), a.p.get(), 3 * d, L, d, 3 * d);  // x0 | x1 | v
    o.conv1d({.batch = 1, .length = L, .channels = 3 * d, .width = W, .x = a.p.get(), .x_b = 0, .x_l = 3 * d, .weight = w(lo.sw),
              .bias = w(lo.sb), .silu = false, .out = a.c.get(), .out_b = 0, .out_l = 3 * d});
    o.multiply_rows({.rows = L, .cols = d, .a = a.c.get() + d, .lda = 3 * d, .b = a.c.get() + 2 * d, .ldb = 3 * d, .out = a.gv.get(), .ldo = d});
    device_filter_forward(i, L);
    o.fft_filter_spectrum(dv.k.get(), d, L, d, reinterpret_cast<cuda::CFloat*>(a.spec.get()));
    o.fft_conv({.batch = 1, .length = L, .channels = d, .u = {a.gv.get(), 0, d}, .gate = {a.c.get(), 0, 3 * d}, .bias = w(lo.fbias),
                .filter = {L, d, dv.nfft, dv.spectrum(a)}, .y = a.yv.get(), .y_b = 0, .y_l = d});
    o.linear(a.yv.get(), d, w(lo.out_w), w(lo.out_b), a.xmid.get(), d, L, d, d);
    o.add(a.xmid.get(), a.resid.get(), L * d);
    steps.norm_forward(L, d, false, HyenaModel::kBlockNormEps, lo.n2w, lo.n2b, a.xmid.get(), a.n2.get(), a.mean2.get(), a.rstd2.get());
    o.linear(a.n2.get(), d, w(lo.fc1w), w(lo.fc1b), a.hfc.get(), di, L, d, di);
    o.activation({.kind = cuda::Activation::gelu_tanh, .n = L * di, .x = a.hfc.get(), .out = a.gl.get()});
    float* next = i + 1 == n ? dv.resid_out.get() : dv.layers[size_t(i + 1)].resid.get();
    o.linear(a.gl.get(), di, w(lo.fc2w), w(lo.fc2b), next, d, L, di, d);
    o.add(next, a.xmid.get(), L * d);
  }
  steps.norm_forward(L, d, false, cfg_.layer_norm_eps, lnf_w_, lnf_b_, dv.resid_out.get(), dv.fin.get(), dv.fin_mean.get(), dv.fin_rstd.get());
  this->fin_.resize(size_t(L * d));
  this->dfin_.resize(size_t(L * d));
  o.to_host(this->fin_.data(), dv.fin.get(), L * d);
}

template <class T>
void HyenaGrad<T>::device_backward(std::span<const int64_t> ids, T* grad) {
  DeviceOps& o = *ops_;
  Device& dv = *device_;
  const int64_t L = int64_t(ids.size()), d = cfg_.d_model, di = cfg_.d_inner, n = cfg_.n_layer, P = this->table_.size();
  const int64_t W = cfg_.short_filter_order;
  LS_CHECK(L == dv.L, "hyenadna training: backward of {} tokens after a forward of {}", L, dv.L);
  o.zero(dv.grads.get(), P);
  const DeviceSteps steps{o, dv.weights.get(), dv.grads.get()};
  const auto w = [&](int64_t off) { return steps.w(off); };
  // dtmp carries a LayerNorm's input gradient, which the residual path adds into dresid.
  const auto block_norm_backward = [&](int64_t wo, int64_t bo, const float* x, const float* mean, const float* rstd) {
    steps.norm_backward(L, d, false, HyenaModel::kBlockNormEps, wo, bo, x, mean, rstd, dv.dn.get(), dv.dtmp.get());
    o.add(dv.dresid.get(), dv.dtmp.get(), L * d);
  };
  o.to_device(dv.dtmp.get(), this->dfin_.data(), L * d);
  steps.norm_backward(L, d, false, cfg_.layer_norm_eps, lnf_w_, lnf_b_, dv.resid_out.get(), dv.fin_mean.get(), dv.fin_rstd.get(),
                      dv.dtmp.get(), dv.dresid.get());
  for (int64_t i = n - 1; i >= 0; --i) {
    const LayerOffsets& lo = layers_[size_t(i)];
    const typename Device::Layer& a = dv.layers[size_t(i)];
    // MLP branch: dresid is the gradient of the block output and, through the residual, of x_mid.
    steps.linear_backward(L, a.gl.get(), di, di, lo.fc2w, lo.fc2b, d, dv.dresid.get(), d, dv.dgl.get(), di, 0.0f);
    o.activation_backward({.kind = cuda::Activation::gelu_tanh, .n = L * di, .x = a.hfc.get(), .dy = dv.dgl.get(), .out = dv.dgl.get()});
    steps.linear_backward(L, a.n2.get(), d, d, lo.fc1w, lo.fc1b, di, dv.dgl.get(), di, dv.dn.get(), d, 0.0f);
    block_norm_backward(lo.n2w, lo.n2b, a.xmid.get(), a.mean2.get(), a.rstd2.get());
    // Mixer branch: out_proj, then the long convolution (gate x0, skip bias) back to x1 * v and the filter.
    steps.linear_backward(L, a.yv.get(), d, d, lo.out_w, lo.out_b, d, dv.dresid.get(), d, dv.dyv.get(), d, 0.0f);
    o.fft_conv_backward({.fwd = {.batch = 1, .length = L, .channels = d, .u = {a.gv.get(), 0, d}, .gate = {a.c.get(), 0, 3 * d},
                                 .bias = w(lo.fbias), .filter = {L, d, dv.nfft, dv.spectrum(a)}},
                         .dy = {dv.dyv.get(), 0, d}, .du = dv.dgv.get(), .du_b = 0, .du_l = d, .dk = dv.dk.get(), .dk_l = d,
                         .dgate = dv.dc.get(), .dgate_b = 0, .dgate_l = 3 * d, .dbias = steps.g(lo.fbias)});
    device_filter_backward(i, L);
    o.multiply_rows({.rows = L, .cols = d, .a = dv.dgv.get(), .lda = d, .b = a.c.get() + 2 * d, .ldb = 3 * d, .out = dv.dc.get() + d, .ldo = 3 * d});
    o.multiply_rows({.rows = L, .cols = d, .a = dv.dgv.get(), .lda = d, .b = a.c.get() + d, .ldb = 3 * d, .out = dv.dc.get() + 2 * d, .ldo = 3 * d});
    o.conv1d_backward({.fwd = {.batch = 1, .length = L, .channels = 3 * d, .width = W, .x = a.p.get(), .x_b = 0, .x_l = 3 * d,
                               .weight = w(lo.sw), .bias = w(lo.sb), .silu = false},
                       .dout = dv.dc.get(), .dout_b = 0, .dout_l = 3 * d, .dx = dv.dp.get(), .dx_b = 0, .dx_l = 3 * d,
                       .dweight = steps.g(lo.sw), .dbias = steps.g(lo.sb)});
    steps.linear_backward(L, a.n1.get(), d, d, lo.in_w, lo.in_b, 3 * d, dv.dp.get(), 3 * d, dv.dn.get(), d, 0.0f);
    block_norm_backward(lo.n1w, lo.n1b, a.resid.get(), a.mean1.get(), a.rstd1.get());
  }
  o.embedding_backward({.tokens = L, .dim = d, .vocab = this->vocab_, .ids = dv.ids.get(), .dout = dv.dresid.get(), .dout_r = d,
                        .dtable = steps.g(emb_)});
  steps.add_grads_to(grad, P);
}

template void HyenaGrad<float>::set_device(std::shared_ptr<DeviceOps>);
template void HyenaGrad<double>::set_device(std::shared_ptr<DeviceOps>);
template void HyenaGrad<float>::device_forward(std::span<const int64_t>);  // float only: set_device refuses double
template void HyenaGrad<float>::device_backward(std::span<const int64_t>, float*);
template void HyenaGrad<float>::device_filter_forward(int64_t, int64_t);
template void HyenaGrad<float>::device_filter_backward(int64_t, int64_t);

}  // namespace longseq::train
