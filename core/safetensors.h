// safetensors I/O. The reader maps the file and hands out zero-copy tensor views that keep the mapping
// alive; it validates the whole header up front so that a corrupt file fails at open() with the file
// and tensor named, never later with a crash. The writer is atomic (temp file + rename).
#pragma once

#include "core/tensor.h"

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace longseq {

struct TensorInfo {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin = 0;  // byte range inside the data section
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  // Maps and validates `path`. Throws longseq::Error naming the file (and tensor) when the file is
  // missing, truncated, has a malformed or inconsistent header, an unknown dtype, out-of-range or
  // overlapping byte ranges.
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  // Tensors in file order (by byte offset).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // Throws naming the file when `name` is absent.
  const TensorInfo& info(const std::string& name) const;

  // The tensor in its stored dtype: a zero-copy view of the mapping when suitably aligned, otherwise
  // an aligned copy. The view keeps the file mapped for as long as it lives.
  Tensor view(const std::string& name) const;
  // The tensor as F32: zero-copy for F32, converted copy for F16/BF16/F64. Throws for integer dtypes,
  // and when any value is NaN or infinite (naming the tensor and the index): weights are loaded
  // through here, and a non-finite weight would turn every result into NaN.
  Tensor load_f32(const std::string& name) const;

 private:
  std::filesystem::path path_;
  std::shared_ptr<const void> mapping_;
  const std::byte* data_ = nullptr;  // start of the data section
  uint64_t data_bytes_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// `t` (a floating-point tensor named `name` in `file`) as contiguous F32: itself when it already is,
// else a converted copy. Throws for an integer dtype, and for a NaN or infinity (naming the tensor and
// the index): weights are loaded through here, and a non-finite weight would turn every result into
// NaN.
Tensor finite_f32(const Tensor& t, const std::filesystem::path& file, const std::string& name);
// The same, except that a BF16 tensor stays BF16 (contiguous: itself or a copy) when keep_bf16.
Tensor finite_weight(const Tensor& t, const std::filesystem::path& file, const std::string& name, bool keep_bf16);

// Writes tensors (any strides; written contiguous, in the official writer's layout order: larger
// dtypes first, then by name) and string metadata to `path` atomically: a temp file in the same
// directory is written, flushed and renamed over `path`, so readers never see a partial file.
// Throws longseq::Error on duplicate names or I/O failure (the temp file is removed).
void write_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace longseq
