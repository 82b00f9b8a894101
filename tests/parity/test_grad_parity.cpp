// Training gradients against the official PyTorch autograd (../shared/fixtures/*/grads.safetensors:
// mean next-token cross-entropy over positions 0..L-2 and d loss / d parameter for every stored
// Parameter, tied and shared parameters carrying their total gradient). Both precisions run: the
// float64 path must match the float64 reference to float32 rounding; the float32 path must stay
// within 2x the official float32 run's error (+1e-6 of the tensor's scale) per tensor.
#include "core/model_dir.h"
#include "core/train/grad_model.h"
#include "tests/testing.h"

#include <cstdio>

using namespace longseq;
using namespace longseq::train;
using namespace longseq::testing;

namespace {

template <class T>
void check_case(const std::string& name) {
  LONGSEQ_REQUIRE_FIXTURE(dir, name);
  if (!std::filesystem::exists(dir / "grads.safetensors")) GTEST_SKIP() << "no grads.safetensors";
  const auto gm = load_grad_model<T>(dir);
  const auto io = SafetensorsFile::open(dir / "io.safetensors");
  const auto grads = SafetensorsFile::open(dir / "grads.safetensors");
  const Tensor ids_t = io.view("input_ids").select(0, 0);
  const int64_t L = ids_t.size(0);
  std::vector<int64_t> ids(static_cast<size_t>(L)), targets(static_cast<size_t>(L), -1);
  for (int64_t i = 0; i < L; ++i) ids[size_t(i)] = ids_t.data<int64_t>()[i];
  for (int64_t i = 0; i + 1 < L; ++i) targets[size_t(i)] = ids[size_t(i + 1)];
  std::vector<T> grad(size_t(gm->params().size()), T(0));
  const double scale = 1.0 / double(L - 1);
  const double loss = gm->lm_loss(ids, targets, scale, grad.data()) * scale;
  const double ref_loss = grads.load_f32("loss").to_vector()[0], f32_loss = grads.load_f32("loss_f32").to_vector()[0];
  std::printf("%s (%s): loss %.9f  ref %.9f  official f32 %.9f\n", name.c_str(), sizeof(T) == 8 ? "float64" : "float32", loss,
              ref_loss, f32_loss);
  EXPECT_LE(std::abs(loss - ref_loss), 2 * std::abs(f32_loss - ref_loss) + 1e-6);
  int checked = 0;
  for (const auto& p : gm->params().list()) {
    const std::string key = "grad." + p.name;
    if (!p.trainable) {
      EXPECT_FALSE(grads.contains(key)) << key << " is a buffer here but has a reference gradient";
      continue;
    }
    ASSERT_TRUE(grads.contains(key)) << "no reference gradient for " << p.name;
    const auto ref = grads.load_f32(key).to_vector(), f32 = grads.load_f32("grad_f32." + p.name).to_vector();
    const std::vector<T> got(grad.begin() + p.offset, grad.begin() + p.offset + p.numel);
    ASSERT_EQ(got.size(), ref.size()) << p.name;
    double max_abs = 0, official = 0, scale_ref = 0, num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      const double e = double(got[i]) - double(ref[i]);
      max_abs = std::max(max_abs, std::abs(e));
      official = std::max(official, std::abs(double(f32[i]) - double(ref[i])));
      scale_ref = std::max(scale_ref, std::abs(double(ref[i])));
      num += e * e;
      den += double(ref[i]) * double(ref[i]);
    }
    const double rel_l2 = std::sqrt(num / std::max(den, 1e-300));
    // float64 against the float64 reference rounded to float32: half an ulp of each value.
    const double bound = sizeof(T) == 8 ? 1e-7 * scale_ref : 2 * official + 1e-6 * scale_ref;
    std::printf("  %-62s max_abs %.3e (official f32 %.3e, max |ref| %.3e) rel_l2 %.2e\n", p.name.c_str(), max_abs, official,
                scale_ref, rel_l2);
    EXPECT_LE(max_abs, bound) << p.name;
    ++checked;
  }
  EXPECT_GT(checked, 10);
}

}  // namespace

TEST(GradParity, MambaTinyFloat64) { check_case<double>("mamba_tiny"); }
TEST(GradParity, MambaTinyFloat32) { check_case<float>("mamba_tiny"); }
TEST(GradParity, HyenaTinyFloat64) { check_case<double>("hyena_tiny"); }
TEST(GradParity, HyenaTinyFloat32) { check_case<float>("hyena_tiny"); }
