#include "core/models/layer_model.h"

#include "core/error.h"

namespace longseq {

LayerLanguageModel::LayerLanguageModel(std::unique_ptr<train::GradModel<float>> model, int64_t max_length)
    : model_(std::move(model)), max_length_(max_length) {}

Tensor LayerLanguageModel::logits(std::span<const int64_t> ids) const {
  LS_CHECK(max_length_ == 0 || int64_t(ids.size()) <= max_length_,
           "{}: input of {} tokens exceeds the model's longest input {} (score a shorter window)", family(), ids.size(), max_length_);
  if (on_device_) {
    const std::lock_guard lock(mutex_);
    return model_->logits(ids);
  }
  std::unique_ptr<train::GradModel<float>> copy;
  {
    const std::lock_guard lock(mutex_);
    if (!spare_.empty()) {
      copy = std::move(spare_.back());
      spare_.pop_back();
    }
  }
  if (!copy) copy = model_->clone();  // the same weights and layers: the same logits in any copy
  const Tensor out = copy->logits(ids);
  const std::lock_guard lock(mutex_);
  spare_.push_back(std::move(copy));
  return out;
}

ForwardOutputs LayerLanguageModel::forward(const Tensor& ids, const ForwardOptions& options) const {
  LS_CHECK(!options.hidden, "{}: hidden states are not available for this family yet; run without them", family());
  LS_CHECK(ids.dim() == 1, "{}: expected 1-D token ids, got {}", family(), ids.describe());
  const Tensor id64 = ids.dtype() == DType::I64 ? ids.contiguous() : ids.to(DType::I64);
  ForwardOutputs out;
  out.logits = logits(std::span<const int64_t>(id64.data<int64_t>(), size_t(id64.size(0))));
  return out;
}

void LayerLanguageModel::stream_logits(int64_t length, const IdSource& source, int64_t chunk, const LogitsSink& sink) const {
  LS_CHECK(chunk >= 1, "chunk must be >= 1, got {}", chunk);
  Tensor ids = Tensor::empty({length}, DType::I64);
  for (int64_t t0 = 0; t0 < length; t0 += chunk) {
    Tensor part = ids.slice(0, t0, std::min(chunk, length - t0));
    source(t0, part);
  }
  if (length == 0) return;
  const Tensor lg = logits(std::span<const int64_t>(ids.data<int64_t>(), size_t(length)));
  for (int64_t t0 = 0; t0 < length; t0 += chunk) sink(t0, lg.slice(0, t0, std::min(chunk, length - t0)));
}

std::unique_ptr<LayerLanguageModel> LayerLanguageModel::on_device(std::shared_ptr<DeviceOps> ops) const {
  auto copy = model_->clone();
  copy->set_device(std::move(ops));
  auto out = std::make_unique<LayerLanguageModel>(std::move(copy), max_length_);
  out->on_device_ = true;
  return out;
}

}  // namespace longseq
