// Loads a model's tensors by name with expected shapes, and at the end insists that every stored
// tensor was used: a missing, extra or wrongly shaped tensor is an error naming it and the file.
#pragma once

#include "core/weight_file.h"

#include <set>
#include <string>

namespace longseq {

class WeightLoader {
 public:
  explicit WeightLoader(const WeightFile& file) : file_(file) {}
  bool has(const std::string& name) const { return file_.contains(name); }
  // F32 view (zero-copy for F32 files) with shape checked against `shape`.
  Tensor get(const std::string& name, const Shape& shape) { return get(name, shape, false); }
  // The same, kept BF16 (zero-copy where the file allows) when stored BF16 and keep_bf16.
  Tensor get(const std::string& name, const Shape& shape, bool keep_bf16);
  // Marks a stored tensor as known without loading it (e.g. a duplicate of a tied weight).
  void ignore(const std::string& name) { used_.insert(name); }
  // Throws naming the first unused tensor.
  void check_all_used(const std::string& family) const;

 private:
  const WeightFile& file_;
  std::set<std::string> used_;
};

}  // namespace longseq
