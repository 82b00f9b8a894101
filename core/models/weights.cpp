#include "core/models/weights.h"

#include "core/error.h"

namespace longseq {

Tensor WeightLoader::get(const std::string& name, const Shape& shape, bool keep_bf16) {
  if (!file_.contains(name))
    fail("{}: missing tensor '{}' (the checkpoint does not match its config.json, or is not this model family)",
         file_.path().string(), name);
  const TensorInfo& info = file_.info(name);
  if (info.shape != shape)
    fail("{}: tensor '{}' has shape {} but the config implies {} (config.json and weights disagree)", file_.path().string(),
         name, shape_str(info.shape), shape_str(shape));
  used_.insert(name);
  return file_.load_weight(name, keep_bf16);
}

void WeightLoader::check_all_used(const std::string& family) const {
  for (const auto& t : file_.tensors())
    // longseq's additions (classifier head, audio pooling and filterbank) are loaded by the training model
    if (!used_.count(t.name) && !t.name.starts_with("classifier.") && !t.name.starts_with("backbone.pool.") &&
        t.name != "backbone.filterbank.weight")
      fail("{}: unexpected tensor '{}' for a {} model with this config (wrong config.json, or an unsupported variant)",
           file_.path().string(), t.name, family);
}

}  // namespace longseq
