// AdamW against PyTorch's update written out in double (decoupled decay only on the decay group,
// buffers untouched), the warmup + cosine schedule, global-norm clipping, and optimizer state that
// saves and restores to an identical continuation.
#include "core/train/optimizer.h"
#include "tests/testing.h"

#include <cmath>

using namespace longseq;
using namespace longseq::train;
using namespace longseq::testing;

namespace {

ParamTable small_table() {
  ParamTable t;
  t.add("layers.0.linear.weight", {3, 4}, true);  // decays
  t.add("layers.0.linear.bias", {3}, true);       // no decay (vector)
  t.add("layers.0.mixer.A_log", {3, 4}, true);    // no decay (by name)
  t.add("layers.0.pos_emb.t", {1, 5, 1}, false);  // buffer
  return t;
}

}  // namespace

TEST(Optimizer, ParameterGroups) {
  const ParamTable t = small_table();
  EXPECT_TRUE(t.find("layers.0.linear.weight").decay);
  EXPECT_FALSE(t.find("layers.0.linear.bias").decay);
  EXPECT_FALSE(t.find("layers.0.mixer.A_log").decay);
  EXPECT_FALSE(t.find("layers.0.pos_emb.t").trainable);
  int64_t end = 0;
  for (const ParamInfo& p : t.list()) {
    EXPECT_EQ(p.offset % ParamTable::kPadTo, 0) << p.name;  // every tensor aligned in the weights
    EXPECT_GE(p.offset, end) << p.name;
    end = p.offset + p.numel;
  }
  EXPECT_EQ(t.size(), end);
}

TEST(Optimizer, AdamWMatchesPyTorchFormula) {
  const ParamTable t = small_table();
  const AdamWOptions o{.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
  AdamW adam(t, o);
  std::vector<float> w = random_vector(size_t(t.size()), 1);
  std::vector<double> ref(w.begin(), w.end()), m(w.size(), 0.0), v(w.size(), 0.0);
  for (int step = 1; step <= 4; ++step) {
    const std::vector<float> g = random_vector(w.size(), uint64_t(10 + step));
    const double lr = o.lr * step / 4;
    adam.step(w, g, lr);
    for (const auto& p : t.list()) {
      if (!p.trainable) continue;
      for (int64_t i = p.offset; i < p.offset + p.numel; ++i) {
        double& x = ref[size_t(i)];
        if (p.decay) x -= lr * o.weight_decay * x;
        m[size_t(i)] = o.beta1 * m[size_t(i)] + (1 - o.beta1) * g[size_t(i)];
        v[size_t(i)] = o.beta2 * v[size_t(i)] + (1 - o.beta2) * double(g[size_t(i)]) * g[size_t(i)];
        const double mh = m[size_t(i)] / (1 - std::pow(o.beta1, step)), vh = v[size_t(i)] / (1 - std::pow(o.beta2, step));
        x -= lr * mh / (std::sqrt(vh) + o.eps);
      }
    }
  }
  for (size_t i = 0; i < w.size(); ++i) EXPECT_NEAR(w[i], ref[i], 2e-6 * (1 + std::abs(ref[i]))) << i;
  const auto& buf = t.find("layers.0.pos_emb.t");
  const auto init = random_vector(size_t(t.size()), 1);
  for (int64_t i = buf.offset; i < buf.offset + buf.numel; ++i) EXPECT_EQ(w[size_t(i)], init[size_t(i)]);
}

TEST(Optimizer, StateRoundTripContinuesIdentically) {
  TempDir tmp;
  const ParamTable t = small_table();
  AdamW a(t, {}), b(t, {});
  std::vector<float> wa = random_vector(size_t(t.size()), 2), wb = wa;
  for (int s = 0; s < 3; ++s) a.step(wa, random_vector(wa.size(), uint64_t(s)), 1e-3);
  a.save(tmp / "opt.safetensors");
  b.load(tmp / "opt.safetensors");
  EXPECT_EQ(b.steps(), 3);
  wb = wa;
  const auto g = random_vector(wa.size(), 99);
  a.step(wa, g, 1e-3);
  b.step(wb, g, 1e-3);
  EXPECT_EQ(wa, wb);
  ParamTable other;
  other.add("x", {7}, true);
  AdamW c(other, {});
  EXPECT_THROW(c.load(tmp / "opt.safetensors"), Error);
}

TEST(Optimizer, WarmupCosineSchedule) {
  EXPECT_DOUBLE_EQ(scheduled_lr(1.0, 0, 10, 110, 0.1), 0.1);
  EXPECT_DOUBLE_EQ(scheduled_lr(1.0, 9, 10, 110, 0.1), 1.0);
  EXPECT_NEAR(scheduled_lr(1.0, 10, 10, 110, 0.1), 1.0, 1e-12);
  EXPECT_NEAR(scheduled_lr(1.0, 60, 10, 110, 0.1), 0.55, 1e-12);  // halfway down the cosine
  EXPECT_NEAR(scheduled_lr(1.0, 110, 10, 110, 0.1), 0.1, 1e-12);
  EXPECT_NEAR(scheduled_lr(1.0, 500, 10, 110, 0.1), 0.1, 1e-12);
  for (int s = 10; s < 110; ++s) EXPECT_GE(scheduled_lr(1.0, s, 10, 110, 0.1), scheduled_lr(1.0, s + 1, 10, 110, 0.1));
}

TEST(Optimizer, ClipGradNorm) {
  std::vector<float> g = {3, 4};
  EXPECT_DOUBLE_EQ(clip_grad_norm(g, 10), 5.0);
  EXPECT_EQ(g, (std::vector<float>{3, 4}));
  EXPECT_DOUBLE_EQ(clip_grad_norm(g, 1), 5.0);
  EXPECT_NEAR(std::hypot(g[0], g[1]), 1.0, 1e-6);
  EXPECT_NEAR(g[0] / g[1], 0.75, 1e-6);
}
