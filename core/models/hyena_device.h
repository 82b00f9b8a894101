// A HyenaDNA model running on a device (DeviceOps): weights copied once; a window of L tokens runs
// as on the CPU (the long convolution is global in L, so a window is one pass, not a stream of
// chunks): LayerNorm, in_proj, short conv, x1 * v, FFT long convolution with the D skip and the x0
// gate, out_proj, MLP, residuals. The implicit filter k (L, d) of each layer is computed on the host
// by HyenaModel::filter and its spectrum kept on the device per (layer, L) (memory: d x (n/2 + 1)
// complex per layer and length). Device memory otherwise O(L x (3 d + d_inner)). Same results as
// HyenaModel within fp32 rounding. Not yet: hidden states.
#pragma once

#include "core/device/ops.h"
#include "core/models/hyena.h"

#include <map>
#include <mutex>

namespace longseq {

class HyenaDeviceModel final : public LanguageModel {
 public:
  HyenaDeviceModel(std::shared_ptr<const HyenaModel> model, std::shared_ptr<DeviceOps> ops);
  ~HyenaDeviceModel() override;

  std::string family() const override { return model_->family(); }
  int64_t vocab_size() const override { return model_->vocab_size(); }
  int64_t n_layer() const override { return model_->n_layer(); }
  int64_t d_model() const override { return model_->d_model(); }
  int64_t max_length() const override { return model_->max_length(); }
  ForwardOutputs forward(const Tensor& ids, const ForwardOptions& options) const override;
  void stream_logits(int64_t length, const IdSource& ids, int64_t chunk, const LogitsSink& sink) const override;
  using LanguageModel::stream_logits;

  struct Weights;

 private:
  // Logits (L, V) of one window on the host.
  Tensor run(std::span<const int64_t> ids) const;
  const cuda::CFloat* spectrum(int64_t layer, int64_t L) const;

  std::shared_ptr<const HyenaModel> model_;
  std::shared_ptr<DeviceOps> ops_;
  std::unique_ptr<Weights> w_;
  mutable std::mutex mutex_;
  mutable std::map<std::pair<int64_t, int64_t>, DeviceArray<float>> spectra_;  // (layer, L) -> spectrum
};

}  // namespace longseq
