#include "core/weight_file.h"

#include "core/error.h"
#include "core/torch_checkpoint.h"

namespace longseq {

WeightFile WeightFile::open(const std::filesystem::path& path) {
  WeightFile w;
  w.path_ = path;
  const auto parts = torch_checkpoint_parts(path);
  if (parts.size() > 1 || looks_like_torch_checkpoint(path)) {
    TorchCheckpoint c = read_torch_checkpoint(path);
    w.format_ = "pytorch " + c.format;
    w.skipped_ = std::move(c.skipped);
    for (auto& [name, t] : c.tensors) {
      w.tensors_.push_back(TensorInfo{name, t.dtype(), t.shape(), 0, t.nbytes()});
      w.checkpoint_.emplace(name, std::move(t));
    }
  } else {
    w.safetensors_.emplace(SafetensorsFile::open(path));
    w.format_ = "safetensors";
    w.tensors_ = w.safetensors_->tensors();
    w.metadata_ = w.safetensors_->metadata();
  }
  for (size_t i = 0; i < w.tensors_.size(); ++i) w.index_[w.tensors_[i].name] = i;
  return w;
}

const TensorInfo& WeightFile::info(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) fail("{}: no tensor named '{}' (is this the right model/file?)", path_.string(), name);
  return tensors_[it->second];
}

Tensor WeightFile::view(const std::string& name) const {
  if (safetensors_) return safetensors_->view(name);
  info(name);  // throws naming the file
  return checkpoint_.at(name);
}

Tensor WeightFile::load_f32(const std::string& name) const { return load_weight(name, false); }

Tensor WeightFile::load_weight(const std::string& name, bool keep_bf16) const {
  const Tensor stored = view(name);
  Tensor t = finite_weight(stored, path_, name, keep_bf16);
  if (t.storage() != stored.storage()) release_file_pages(stored);  // converted: the file's bytes are not needed now
  return t;
}

}  // namespace longseq
