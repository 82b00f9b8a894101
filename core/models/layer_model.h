// A language model that runs its layers through the training model's forward (core/train/
// grad_model.h: the layers of core/nn on a backend), for families described only by their layers
// (e.g. the hybrid family). A window is one pass (not streamed chunk by chunk: a family whose layers
// are all recurrent streams through its own inference class until the layers carry state); hidden
// states are not exposed yet. Calls from several threads (the variant scorer's) each take a copy of
// the model from a pool, since a copy holds its activations; on a device they are serialised through
// one copy (DeviceOps calls are not thread-safe).
#pragma once

#include "core/models/lm.h"
#include "core/train/grad_model.h"

#include <memory>
#include <mutex>
#include <vector>

namespace longseq {

class LayerLanguageModel final : public LanguageModel {
 public:
  // max_length: the longest input the layers accept (0: unlimited).
  LayerLanguageModel(std::unique_ptr<train::GradModel<float>> model, int64_t max_length);

  std::string family() const override { return model_->family(); }
  int64_t vocab_size() const override { return model_->vocab_size(); }
  int64_t n_layer() const override { return model_->blocks(); }
  int64_t d_model() const override { return model_->d_model(); }
  int64_t max_length() const override { return max_length_; }
  ForwardOutputs forward(const Tensor& ids, const ForwardOptions& options) const override;
  void stream_logits(int64_t length, const IdSource& ids, int64_t chunk, const LogitsSink& sink) const override;
  using LanguageModel::stream_logits;

  const train::GradModel<float>& layers() const { return *model_; }
  // config.json + model.safetensors (the layers' names), each atomically.
  void save(const std::filesystem::path& dir) const { model_->save(dir); }
  // The same model on `ops` (a copy of the weights on the device).
  std::unique_ptr<LayerLanguageModel> on_device(std::shared_ptr<DeviceOps> ops) const;

 private:
  Tensor logits(std::span<const int64_t> ids) const;
  std::unique_ptr<train::GradModel<float>> model_;
  int64_t max_length_;
  bool on_device_ = false;
  mutable std::mutex mutex_;                                       // guards spare_ (and model_ on a device)
  mutable std::vector<std::unique_ptr<train::GradModel<float>>> spare_;  // idle copies for concurrent callers
};

}  // namespace longseq
