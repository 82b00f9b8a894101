// AdamW with the originals' parameter groups (decay on weight matrices only: see ParamInfo::decay),
// linear warmup + cosine learning-rate schedule, and global-norm gradient clipping. Arithmetic is
// element-wise and the norm is summed serially in double, so a step is bit-identical on any thread
// count. State (m, v, step) is saved and restored with a checkpoint for exact resumption.
#pragma once

#include "core/train/grad_model.h"

#include <filesystem>
#include <span>
#include <vector>

namespace longseq::train {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.1;
};

// lr(step) for step = 0, 1, ...: linear warmup from 0 over `warmup` steps, then cosine decay to
// min_ratio * lr at `total` steps (constant after).
double scheduled_lr(double lr, int64_t step, int64_t warmup, int64_t total, double min_ratio);

// Scales grad so its global L2 norm is at most max_norm (<= 0: no clipping). Returns the norm
// before clipping.
double clip_grad_norm(std::vector<float>& grad, double max_norm);

class AdamW {
 public:
  AdamW(const ParamTable& table, AdamWOptions options);
  // One update of `weights` from `grad` at learning rate lr; buffers (not trainable) are untouched.
  void step(std::span<float> weights, const std::vector<float>& grad, double lr);
  int64_t steps() const { return t_; }
  // optimizer.safetensors: adam.m, adam.v (flat, the weights' layout) and the step count.
  void save(const std::filesystem::path& path) const;
  // Throws naming the file when it does not match this model's parameter layout.
  void load(const std::filesystem::path& path);

 private:
  std::vector<ParamInfo> params_;
  AdamWOptions o_;
  std::vector<float> m_, v_;
  int64_t t_ = 0;
};

}  // namespace longseq::train
