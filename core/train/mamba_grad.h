// Mamba-1 forward + backward of one sequence for training (mamba_ssm's Block/Mamba math, as in
// core/models/mamba.cpp). Saved per layer and token: the block input, in_proj output (x | z), conv
// output, x_proj output, delta and the gated scan output (d + 6 D + R + 2N floats), plus the scan's
// states at chunk starts; with recompute on, only block inputs are kept and each layer is re-run
// in the backward. Audio models (set_audio) add SaShiMi-style down-pooling before each stage.
#pragma once

#include "core/models/mamba.h"
#include "core/train/grad_model.h"

namespace longseq::train {

template <class T>
class MambaGrad final : public GradModel<T> {
 public:
  explicit MambaGrad(const MambaModel& model);
  int64_t activation_floats_per_token() const override;
  nlohmann::json config_json() const override;
  std::unique_ptr<GradModel<T>> clone() const override {
    auto c = std::make_unique<MambaGrad<T>>(*this);
    c->device_.reset();  // each copy gets its own device buffers on first use
    return c;
  }
  // Language-model Mamba (not audio) in float: the backbone on the device (core/train/mamba_grad_device.cpp).
  void set_device(std::shared_ptr<DeviceOps> ops) override;
  std::string family() const override { return "mamba"; }
  int64_t d_model() const override { return cfg_.d_model; }

 private:
  struct LayerOffsets {
    int64_t norm_w, norm_b, in_w, in_b, conv_w, conv_b, x_w, dt_w, dt_b, A_log, Dskip, out_w, out_b;
  };
  struct Acts {  // one layer's saved activations
    std::vector<T> normed, mean, rstd, xz, xc, xdbl, delta, y, states, A;
  };
  void forward_layer(int64_t i, const T* resid_in, int64_t L, Acts& a);
  // dresid (L, d): gradient of the block output on entry, of its input on return.
  void backward_layer(int64_t i, const T* resid_in, int64_t L, Acts& a, T* dresid, T* grad);
  void add_pooling(const AudioSpec& spec, uint64_t seed) override;
  // Stage 0's input width: filterbank bands, or pool[0] embedded samples.
  int64_t pool_cols(int64_t s) const { return s == 0 && filters_ > 0 ? filters_ : pool_[size_t(s)] * cfg_.d_model; }
  // The pooling stage that layer i opens, or -1.
  int64_t stage_opened_by(int64_t i) const;
  void backbone_forward(std::span<const int64_t> ids) override;
  void backbone_backward(std::span<const int64_t> ids, T* grad) override;
  struct Device;  // device buffers: weights, gradients, activations (mamba_grad_device.cpp)
  void device_forward(std::span<const int64_t> ids);
  void device_backward(std::span<const int64_t> ids, T* grad);
  void norm_forward(int64_t w, int64_t b, Mat<const T> x, Mat<T> y, T* mean, T* rstd);
  void norm_backward(int64_t w, int64_t b, Mat<const T> x, const T* mean, const T* rstd, Mat<const T> dy, Mat<T> dx, T* grad);

  MambaConfig cfg_;
  std::vector<LayerOffsets> layers_;
  int64_t emb_ = -1, norm_f_w_ = -1, norm_f_b_ = -1;
  std::vector<std::vector<T>> resid_;  // block inputs, n_layer + 1 (the last is the final residual)
  std::vector<int64_t> lens_;          // sequence length at each block input (pooling shortens it)
  std::vector<int64_t> pool_, pool_w_, pool_b_;  // audio models: factor and parameter offsets per stage
  std::vector<std::vector<T>> pooled_in_;        // each pool's input (L_before, d), kept for the backward
  int64_t fb_w_ = -1, filters_ = 0, frame_ = 0;  // filterbank front end (audio): weight offset, bands, frame length
  bool learn_filters_ = false, band_norm_ = false;
  std::vector<T> frames_, fb_y_;                 // its input frames (L/hop, frame) and filter outputs (L/hop, 2 filters)
  std::vector<Acts> acts_;
  std::vector<T> branch_, fin_mean_, fin_rstd_;
  std::shared_ptr<DeviceOps> ops_;
  std::shared_ptr<Device> device_;
};

}  // namespace longseq::train
