#include "core/train/optimizer.h"

#include "core/error.h"
#include "core/safetensors.h"

#include <cmath>
#include <numbers>

namespace longseq::train {

double scheduled_lr(double lr, int64_t step, int64_t warmup, int64_t total, double min_ratio) {
  if (warmup > 0 && step < warmup) return lr * double(step + 1) / double(warmup);
  if (total <= warmup) return lr;
  const double progress = std::min(1.0, double(step - warmup) / double(total - warmup));
  return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + std::cos(std::numbers::pi * progress)));
}

double clip_grad_norm(std::vector<float>& grad, double max_norm) {
  double ss = 0;
  for (float g : grad) ss += double(g) * double(g);
  const double norm = std::sqrt(ss);
  if (max_norm > 0 && norm > max_norm) {
    const float s = float(max_norm / (norm + 1e-6));
    for (float& g : grad) g *= s;
  }
  return norm;
}

AdamW::AdamW(const ParamTable& table, AdamWOptions options)
    : params_(table.list()), o_(options), m_(static_cast<size_t>(table.size()), 0.0f), v_(static_cast<size_t>(table.size()), 0.0f) {}

void AdamW::step(std::span<float> weights, const std::vector<float>& grad, double lr) {
  LS_ASSERT(weights.size() == m_.size() && grad.size() == m_.size());
  ++t_;
  const double c1 = 1 - std::pow(o_.beta1, double(t_)), c2 = 1 - std::pow(o_.beta2, double(t_));
  const float b1 = float(o_.beta1), b2 = float(o_.beta2);
  for (const ParamInfo& p : params_) {
    if (!p.trainable) continue;
    const float decay = p.decay ? float(1 - lr * o_.weight_decay) : 1.0f;
    const float step = float(lr / c1), denom_scale = float(1 / std::sqrt(c2)), eps = float(o_.eps);
#pragma omp parallel for schedule(static) if (p.numel > (1 << 16))
    for (int64_t i = p.offset; i < p.offset + p.numel; ++i) {
      const float g = grad[size_t(i)];
      float& m = m_[size_t(i)];
      float& v = v_[size_t(i)];
      m = b1 * m + (1 - b1) * g;
      v = b2 * v + (1 - b2) * g * g;
      float& w = weights[size_t(i)];
      w = w * decay - step * m / (std::sqrt(v) * denom_scale + eps);
    }
  }
}

void AdamW::save(const std::filesystem::path& path) const {
  const int64_t n = int64_t(m_.size());
  write_safetensors(path, {{"adam.m", Tensor::from_vector(m_, {n})}, {"adam.v", Tensor::from_vector(v_, {n})}},
                    {{"step", std::to_string(t_)}, {"format", "longseq-adamw"}});
}

void AdamW::load(const std::filesystem::path& path) {
  const auto f = SafetensorsFile::open(path);
  for (const char* name : {"adam.m", "adam.v"}) {
    LS_CHECK(f.contains(name), "{}: no '{}' (not a longseq optimizer state; resume from a complete checkpoint)", path.string(), name);
    LS_CHECK(f.info(name).shape == Shape{int64_t(m_.size())},
             "{}: '{}' has shape {} but the model has {} parameters (the checkpoint belongs to another model)", path.string(), name,
             shape_str(f.info(name).shape), m_.size());
  }
  m_ = f.load_f32("adam.m").to_vector();
  v_ = f.load_f32("adam.v").to_vector();
  const auto& meta = f.metadata();
  const auto it = meta.find("step");
  LS_CHECK(it != meta.end(), "{}: no 'step' in the metadata (incomplete checkpoint)", path.string());
  t_ = std::stoll(it->second);
}

}  // namespace longseq::train
