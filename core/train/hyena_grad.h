// HyenaDNA forward + backward of one sequence for training (the Hugging Face port's math, as in
// core/models/hyena.cpp): LayerNorms, in_proj, short depthwise conv, gating, the FFT long
// convolution with its skip bias, the implicit filter MLP (Sin with one learnable `freq` per layer,
// used three times; exponential modulation), out_proj and the GELU MLP. pos_emb.t and
// modulation.deltas are buffers (no gradient), as in the original. Dropout is not applied (rate 0).
#pragma once

#include "core/models/hyena.h"
#include "core/train/grad_model.h"

namespace longseq::train {

template <class T>
class HyenaGrad final : public GradModel<T> {
 public:
  explicit HyenaGrad(const HyenaModel& model);
  int64_t activation_floats_per_token() const override;
  nlohmann::json config_json() const override;
  std::unique_ptr<GradModel<T>> clone() const override {
    auto c = std::make_unique<HyenaGrad<T>>(*this);
    c->device_.reset();  // each copy gets its own device buffers on first use
    return c;
  }
  // In float: the backbone on the device (core/train/hyena_grad_device.cpp), the implicit filter
  // MLP on the host (O(L x order x d), small next to the layers).
  void set_device(std::shared_ptr<DeviceOps> ops) override;
  std::string family() const override { return "hyenadna"; }
  int64_t d_model() const override { return cfg_.d_model; }

 private:
  struct LayerOffsets {
    int64_t n1w, n1b, n2w, n2b, in_w, in_b, sw, sb, out_w, out_b, fc1w, fc1b, fc2w, fc2b, fbias, z, t, deltas, freq;
    std::vector<int64_t> mlp_w, mlp_b;
  };
  struct Acts {
    std::vector<T> n1, mean1, rstd1, p, c, gv, k, f, yv, xmid, n2, mean2, rstd2, hfc, gl;
    std::vector<std::vector<T>> pre, post;  // implicit filter: pre-sin and post-sin activations
    std::vector<T> kk, mod;                 // filter before modulation, and the modulation
  };
  // exp(-t |deltas|) + shift (L, d): from buffers only, so fixed for a layer and length.
  void modulation(int64_t i, int64_t L, T* out);
  void filter_forward(int64_t i, int64_t L, Acts& a);
  void filter_backward(int64_t i, int64_t L, Acts& a, const std::vector<T>& dk, T* grad);
  void forward_layer(int64_t i, const T* x_in, int64_t L, Acts& a, T* x_out);
  void backward_layer(int64_t i, const T* x_in, int64_t L, Acts& a, T* dresid, T* grad);
  void check_input(std::span<const int64_t> ids) const;  // throws naming the problem
  void backbone_forward(std::span<const int64_t> ids) override;
  void backbone_backward(std::span<const int64_t> ids, T* grad) override;
  struct Device;  // device buffers: weights, gradients, activations (hyena_grad_device.cpp)
  void device_forward(std::span<const int64_t> ids);
  void device_backward(std::span<const int64_t> ids, T* grad);
  void device_filter_forward(int64_t i, int64_t L);   // into the device's k (L, d)
  void device_filter_backward(int64_t i, int64_t L);  // from the device's dk

  HyenaConfig cfg_;
  std::vector<LayerOffsets> layers_;
  int64_t emb_ = -1, lnf_w_ = -1, lnf_b_ = -1;
  std::vector<std::vector<T>> resid_;
  std::vector<Acts> acts_;
  std::vector<T> fin_mean_, fin_rstd_;
  std::shared_ptr<DeviceOps> ops_;
  std::shared_ptr<Device> device_;
};

}  // namespace longseq::train
