// The device models on a real GPU against the CPU models: Mamba (a random model streamed in several
// chunk sizes, the shipped chr20 model on 10,000 tokens, the shared-prefix continuation scores the
// variant scorer uses), HyenaDNA (the shipped chr20 model on a full window), the shipped Evo-2-shaped
// chr20 model (streamed, token by token, one training step), a training step of
// each family (every gradient against the CPU trainer in float64), a hybrid stripe from config.json,
// and the shipped audio classifier; skips without a CUDA build or device. The same
// model code runs on the emulated device in tests/unit/test_device_model.cpp.
#include "core/families/family.h"
#include "core/backend.h"
#include "core/fileio.h"
#include "core/model_dir.h"
#include "core/device/ops.h"
#include "core/models/layer_model.h"
#include "core/train/grad_model.h"
#include "tests/testing.h"

using namespace longseq;
using namespace longseq::testing;

namespace {

Tensor ids_of(int64_t L, int64_t V) {
  std::vector<int64_t> ids(static_cast<size_t>(L));
  for (int64_t t = 0; t < L; ++t) ids[size_t(t)] = int64_t((uint64_t(t) * 2654435761u >> 7) % uint64_t(V));
  return Tensor::from_ids(ids);
}

// fp32 on both sides, different reduction orders (cuBLAS, warp sums): 1e-4 of the largest logit.
void expect_same_logits(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  const auto e = compare(got, want);
  EXPECT_LE(e.max_abs, 1e-4 * std::max(1.0, e.max_ref)) << what << " rel_l2 " << e.rel_l2;
  EXPECT_LE(e.rel_l2, 1e-4) << what;
}

// One language-model step of m32 on the GPU against m64 on the CPU: loss and every trainable
// tensor's gradient (fp32 sums over thousands of tokens on the device: rel_l2 1e-3).
void expect_device_step_matches(train::GradModel<double>& m64, train::GradModel<float>& m32, const Tensor& ids) {
  m32.set_device(std::shared_ptr<DeviceOps>(make_cuda_ops()));
  const std::span<const int64_t> id(ids.data<int64_t>(), size_t(ids.size(0)));
  std::vector<int64_t> targets(id.begin() + 1, id.end());
  targets.push_back(-1);
  std::vector<double> g64(static_cast<size_t>(m64.params().size()), 0.0);
  std::vector<float> g32(g64.size(), 0.0f);
  const double l64 = m64.lm_loss(id, targets, 1.0, g64.data()), l32 = m32.lm_loss(id, targets, 1.0, g32.data());
  EXPECT_NEAR(l32, l64, 1e-4 * std::abs(l64));
  for (const train::ParamInfo& info : m64.params().list()) {
    if (!info.trainable) continue;
    const auto e = compare(std::vector<float>(g32.begin() + info.offset, g32.begin() + info.offset + info.numel),
                           std::vector<double>(g64.begin() + info.offset, g64.begin() + info.offset + info.numel));
    EXPECT_LE(e.rel_l2, 1e-3) << info.name;
  }
}

}  // namespace

TEST(Gpu, MambaDeviceModelMatchesTheCpuModel) {
  if (!cuda_compiled() || cuda_device_count() == 0) GTEST_SKIP() << cuda_device_summary();
  MambaConfig c;
  c.d_model = 128, c.n_layer = 4, c.vocab_size = 12, c.padded_vocab = 16, c.d_state = 16, c.d_inner = 256, c.dt_rank = 8;
  const auto cpu = random_mamba(c, 7);
  const auto dev_model = cpu->on_device(std::shared_ptr<DeviceOps>(make_cuda_ops()));
  const LanguageModel& dev = *dev_model;
  const Tensor ids = ids_of(5000, c.vocab_size);
  const auto want = streamed_logits(*cpu, ids, 4096);
  for (int64_t chunk : {int64_t(1000), int64_t(4096), int64_t(333)}) expect_same_logits(streamed_logits(dev, ids, chunk), want, "random model");

  const auto shipped = load_language_model(ModelDir::open(std::string(LONGSEQ_SOURCE_DIR) + "/models/chr20-mamba"));
  const Tensor dna = ids_of(10000, shipped->vocab_size());
  const auto cpu_logits = streamed_logits(*shipped, dna, 4096);
  const auto gpu = make_device_model(load_language_model(ModelDir::open(std::string(LONGSEQ_SOURCE_DIR) + "/models/chr20-mamba")), "cuda");
  expect_same_logits(streamed_logits(*gpu, dna, 4096), cpu_logits, "models/chr20-mamba");

  std::vector<int64_t> prefix(1000);
  for (size_t i = 0; i < prefix.size(); ++i) prefix[i] = int64_t((i * 5 + 1) % 12);
  const std::vector<std::vector<int64_t>> suffixes{{1, 2, 3}, {4}, std::vector<int64_t>(500, 7)};
  const ContinuationScores a = cpu->score_continuations(prefix, suffixes), b = dev.score_continuations(prefix, suffixes);
  EXPECT_NEAR(b.prefix, a.prefix, 1e-3 * std::max(1.0, std::abs(a.prefix)));
  for (size_t s = 0; s < suffixes.size(); ++s) EXPECT_NEAR(b.suffix[s], a.suffix[s], 1e-3 * std::max(1.0, std::abs(a.suffix[s])));
}

TEST(Gpu, HyenaDeviceModelMatchesTheCpuModel) {
  if (!cuda_compiled() || cuda_device_count() == 0) GTEST_SKIP() << cuda_device_summary();
  // The shipped chr20 HyenaDNA model on its longest window, twice (the second run reuses the device
  // filter spectra), against the CPU model.
  const std::string dir = std::string(LONGSEQ_SOURCE_DIR) + "/models/chr20-hyena";
  const auto cpu = load_language_model(ModelDir::open(dir));
  const auto gpu = make_device_model(load_language_model(ModelDir::open(dir)), "cuda");
  const Tensor ids = ids_of(cpu->max_length(), cpu->vocab_size());
  const auto want = streamed_logits(*cpu, ids, 4096);
  for (int rep = 0; rep < 2; ++rep) expect_same_logits(streamed_logits(*gpu, ids, 4096), want, "models/chr20-hyena");
}

TEST(Gpu, StripedHyena2DeviceModelMatchesTheCpuModel) {
  if (!cuda_compiled() || cuda_device_count() == 0) GTEST_SKIP() << cuda_device_summary();
  // The shipped Evo-2-shaped chr20 model (attention, hcs, hcm, hcl) on 5,000 tokens streamed in
  // chunks of 4,096, 333 and 1 (decode: the KV cache and the filter states carried on the device),
  // and a training step's gradients against the CPU trainer in float64.
  const std::string dir = std::string(LONGSEQ_SOURCE_DIR) + "/models/chr20-evo2";
  const auto cpu = load_language_model(ModelDir::open(dir));
  const auto gpu = make_device_model(load_language_model(ModelDir::open(dir)), "cuda");
  const std::vector<int64_t> bases = {'A', 'C', 'G', 'T'};
  std::vector<int64_t> dna(5000);
  for (size_t i = 0; i < dna.size(); ++i) dna[i] = bases[(i * 2654435761u >> 9) % 4];
  const Tensor ids = Tensor::from_ids(dna);
  const auto want = streamed_logits(*cpu, ids, 4096);
  for (int64_t chunk : {int64_t(4096), int64_t(333)}) expect_same_logits(streamed_logits(*gpu, ids, chunk), want, "models/chr20-evo2");
  const Tensor head = Tensor::from_ids(std::vector<int64_t>(dna.begin(), dna.begin() + 300));
  expect_same_logits(streamed_logits(*gpu, head, 1), streamed_logits(*cpu, head, 4096), "models/chr20-evo2 token by token");
  auto m64 = train::make_grad_model<double>(*cpu);
  auto m32 = train::make_grad_model<float>(*cpu);
  expect_device_step_matches(*m64, *m32, Tensor::from_ids(std::vector<int64_t>(dna.begin(), dna.begin() + 1024)));
}

TEST(Gpu, MambaTrainingOnTheDeviceMatchesFloat64Gradients) {
  if (!cuda_compiled() || cuda_device_count() == 0) GTEST_SKIP() << cuda_device_summary();
  MambaConfig c;
  c.d_model = 64, c.n_layer = 2, c.vocab_size = 12, c.padded_vocab = 16, c.d_state = 16, c.d_inner = 128, c.dt_rank = 4;
  const auto cpu = random_mamba(c, 9);
  auto m64 = train::make_grad_model<double>(*cpu);
  auto m32 = train::make_grad_model<float>(*cpu);
  expect_device_step_matches(*m64, *m32, ids_of(2000, c.vocab_size));
}

TEST(Gpu, HyenaTrainingOnTheDeviceMatchesFloat64Gradients) {
  if (!cuda_compiled() || cuda_device_count() == 0) GTEST_SKIP() << cuda_device_summary();
  // The shipped chr20 HyenaDNA model (cuFFT long convolutions, filter MLP on the host) on its longest window.
  const std::string dir = std::string(LONGSEQ_SOURCE_DIR) + "/models/chr20-hyena";
  auto m64 = train::load_grad_model<double>(dir);
  auto m32 = train::load_grad_model<float>(dir);
  expect_device_step_matches(*m64, *m32, ids_of(load_language_model(ModelDir::open(dir))->max_length(), 12));
}

TEST(Gpu, AudioClassifierOnTheDeviceMatchesTheCpu) {
  if (!cuda_compiled() || cuda_device_count() == 0) GTEST_SKIP() << cuda_device_summary();
  // The shipped spoken-digit classifier on one clip of synthetic mu-law codes: class probabilities
  // on the device equal the CPU model's.
  auto cpu = train::load_grad_model<float>(std::string(LONGSEQ_SOURCE_DIR) + "/models/digits");
  auto dev = cpu->clone();
  dev->set_device(std::shared_ptr<DeviceOps>(make_cuda_ops()));
  std::vector<int64_t> ids(static_cast<size_t>(cpu->audio()->clip_samples));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int64_t((i * 37 + (i / 100) * 11) % 256);
  const auto want = train::class_probabilities(*cpu, ids), got = train::class_probabilities(*dev, ids);
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < got.size(); ++k) EXPECT_NEAR(got[k], want[k], 1e-4) << k;
}

TEST(Gpu, HybridOnTheDeviceMatchesTheCpu) {
  if (!cuda_compiled() || cuda_device_count() == 0) GTEST_SKIP() << cuda_device_summary();
  // A Mamba/Hyena stripe from config.json alone (the hybrid family): logits of a 1,000-token window,
  // and a training step against the CPU trainer's float64 gradients.
  TempDir tmp;
  const nlohmann::json stripe = {{"model_type", "longseq-hybrid"}, {"d_model", 64}, {"n_layer", 4}, {"vocab_size", 12},
                                 {"layers", {"mamba", "hyena"}}, {"mamba", {{"d_state", 16}}},
                                 {"hyena", {{"d_inner", 256}, {"max_seq_len", 1026}, {"filter_order", 64}}}};
  write_text_atomic(tmp / "stripe.json", stripe.dump());
  const std::shared_ptr<const LanguageModel> cpu = new_model_from_config(tmp / "stripe.json", 17);
  const auto dev = family_named("hybrid").on_device(cpu, std::shared_ptr<DeviceOps>(make_cuda_ops()));
  const Tensor ids = ids_of(1000, 12);
  expect_same_logits(dev->forward(ids, {}).logits.to_vector(), cpu->forward(ids, {}).logits.to_vector(), "hybrid");
  auto m64 = train::make_grad_model<double>(*cpu);
  auto m32 = train::make_grad_model<float>(*cpu);
  expect_device_step_matches(*m64, *m32, ids_of(512, 12));
}
