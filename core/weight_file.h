// A model's stored tensors by name, whatever the file: safetensors (zero-copy views of the mapping)
// or a PyTorch checkpoint (core/torch_checkpoint.h: zip or legacy torch.save, also split in parts).
// Families, `info` and `convert` read weights only through this, so every family loads both formats
// the same way, with the same errors.
#pragma once

#include "core/safetensors.h"

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace longseq {

class WeightFile {
 public:
  // Opens `path` by its content: a safetensors file, or a PyTorch checkpoint (a state dict, or a
  // training checkpoint holding one under "state_dict" or "model"). Throws longseq::Error naming the
  // file and the problem (see SafetensorsFile::open and read_torch_checkpoint).
  static WeightFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  // "safetensors", "pytorch zip" or "pytorch legacy".
  const std::string& format() const { return format_; }
  // Tensors: safetensors in file order; a checkpoint in its state dict's order (TensorInfo::begin/end
  // are then [0, bytes of the tensor)).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // safetensors metadata; a checkpoint's is empty.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Checkpoint entries that are not tensors and were skipped (e.g. Transformer Engine's
  // `*._extra_state`).
  const std::vector<std::string>& skipped() const { return skipped_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // Throws naming the file when `name` is absent.
  const TensorInfo& info(const std::string& name) const;
  // The tensor in its stored dtype (a view where the file allows: strided for a checkpoint).
  Tensor view(const std::string& name) const;
  // The tensor as contiguous F32 (converted from F16/BF16/F64); throws for integer tensors and for
  // any non-finite value, naming the tensor and the index. A converted tensor's file pages are
  // released (release_file_pages), so a model loaded in float is not also resident as stored.
  Tensor load_f32(const std::string& name) const;
  // The same, except that a BF16 tensor stays BF16 (contiguous; a view where the file allows) when
  // keep_bf16.
  Tensor load_weight(const std::string& name, bool keep_bf16) const;

 private:
  std::filesystem::path path_;
  std::string format_;
  std::optional<SafetensorsFile> safetensors_;
  std::map<std::string, Tensor> checkpoint_;  // name -> view, for a PyTorch checkpoint
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  std::vector<std::string> skipped_;
};

}  // namespace longseq
