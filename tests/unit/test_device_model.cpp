// Inference and training on a device (core/nn/device_backend.cpp under LayerLanguageModel and
// GradModel) run through the emulated device
// (tests/unit/emu_ops.h: the CUDA kernel source on the CPU) against the float64 model oracle and
// the CPU model: whole sequence, chunked streaming (chunks of 1, 7 and more than the sequence),
// shared-prefix continuation scores, RMSNorm and LayerNorm variants; and the CLI-facing errors.
#include "core/families/family.h"
#include "core/fileio.h"
#include "core/backend.h"
#include "core/models/layer_model.h"
#include "core/train/grad_model.h"
#include "tests/oracles.h"
#include "tests/testing.h"
#include "tests/unit/emu_ops.h"

using namespace longseq;
using namespace longseq::testing;

namespace {

MambaConfig device_config(bool rms) {
  MambaConfig c;
  c.d_model = 24;
  c.n_layer = 2;
  c.vocab_size = 12;
  c.padded_vocab = 16;
  c.d_state = 8;
  c.d_inner = 48;
  c.dt_rank = 2;
  c.rms_norm = rms;
  return c;
}

Tensor test_ids(int64_t L, int64_t V, uint64_t seed) {
  std::vector<int64_t> ids(static_cast<size_t>(L));
  for (int64_t t = 0; t < L; ++t) ids[size_t(t)] = int64_t((uint64_t(t) * 2654435761u + seed * 97) % uint64_t(V));
  return Tensor::from_ids(ids);
}

// Every trainable tensor of a device run's float gradient against the CPU trainer's float64 one.
void expect_grads_match(const train::GradModel<double>& m64, const std::vector<float>& g32, const std::vector<double>& g64) {
  for (const train::ParamInfo& info : m64.params().list()) {
    if (!info.trainable) continue;
    const auto e = compare(std::vector<float>(g32.begin() + info.offset, g32.begin() + info.offset + info.numel),
                           std::vector<double>(g64.begin() + info.offset, g64.begin() + info.offset + info.numel));
    EXPECT_LE(e.max_abs, 1e-4 * std::max(1e-3, e.max_ref)) << info.name << " max_abs " << e.max_abs << " max_ref " << e.max_ref;
    EXPECT_LE(e.rel_l2, 1e-4) << info.name << " rel_l2 " << e.rel_l2;
  }
}

// One language-model sequence (next-token targets) through both models; the float one may run on a device.
void expect_lm_step_matches(train::GradModel<double>& m64, train::GradModel<float>& m32, const Tensor& ids) {
  const std::span<const int64_t> id(ids.data<int64_t>(), size_t(ids.size(0)));
  std::vector<int64_t> targets(id.begin() + 1, id.end());
  targets.push_back(-1);
  if (targets.size() == 1) targets[0] = id[0];  // L = 1: still one counted position
  const int64_t P = m64.params().size();
  std::vector<double> g64(static_cast<size_t>(P), 0.0);
  std::vector<float> g32(static_cast<size_t>(P), 0.0f);
  const double loss64 = m64.lm_loss(id, targets, 1.0, g64.data()), loss32 = m32.lm_loss(id, targets, 1.0, g32.data());
  EXPECT_NEAR(loss32, loss64, 1e-5 * std::abs(loss64));
  expect_grads_match(m64, g32, g64);
}

}  // namespace

TEST(DeviceModel, EmulatedMambaMatchesTheFloat64Oracle) {
  for (bool rms : {true, false}) {
    SCOPED_TRACE(::testing::Message() << "rms " << rms);
    const MambaConfig cfg = device_config(rms);
    const auto cpu = random_mamba(cfg, rms ? 31 : 32);
    std::map<std::string, std::vector<float>> params;
    for (const auto& [k, v] : named_parameters(*cpu)) params[k] = v.to_vector();
    const Tensor ids = test_ids(61, cfg.vocab_size, 5);
    std::vector<int64_t> id_vec(size_t(ids.size(0)));
    for (int64_t t = 0; t < ids.size(0); ++t) id_vec[size_t(t)] = ids.data<int64_t>()[t];
    const std::vector<double> ref = mamba_oracle(cfg, params, id_vec);
    const auto cpu_logits = cpu->forward(ids, {.chunk = 4096}).logits.to_vector();
    const auto dev_model = cpu->on_device(std::make_shared<EmuOps>());
    const LanguageModel& dev = *dev_model;
    for (int64_t chunk : {int64_t(1), int64_t(7), int64_t(40)}) {
      SCOPED_TRACE(::testing::Message() << "chunk " << chunk);
      // Token by token (decode) on the first 9 tokens: the logits of a prefix are the oracle's first rows.
      const int64_t L = chunk == 1 ? 9 : ids.size(0), V = cfg.padded_vocab;
      const auto got = streamed_logits(dev, ids.slice(0, 0, L), chunk);
      const std::vector<double> want(ref.begin(), ref.begin() + L * V);
      const std::vector<float> cpu_want(cpu_logits.begin(), cpu_logits.begin() + L * V);
      const auto e = compare(got, want);
      SCOPED_TRACE(::testing::Message() << "vs oracle max_abs " << e.max_abs << " rel_l2 " << e.rel_l2);
      EXPECT_LE(e.max_abs, 1e-5 * std::max(1.0, e.max_ref));
      EXPECT_LE(e.rel_l2, 1e-5);
      const auto ec = compare(got, cpu_want);
      EXPECT_LE(ec.max_abs, 1e-5 * std::max(1.0, ec.max_ref)) << "vs CPU model";
    }
    const auto whole = dev.forward(ids, {.chunk = 4096}).logits.to_vector();
    EXPECT_LE(compare(whole, ref).rel_l2, 1e-5);
  }
}

TEST(DeviceModel, EmulatedContinuationScoresEqualTheCpuModel) {
  // The variant scorer's path: the prefix runs once, each suffix from a copy of the device state.
  const MambaConfig cfg = device_config(true);
  const auto cpu = random_mamba(cfg, 41);
  const auto dev_model = cpu->on_device(std::make_shared<EmuOps>());
  const LanguageModel& dev = *dev_model;
  std::vector<int64_t> prefix(37);
  for (size_t i = 0; i < prefix.size(); ++i) prefix[i] = int64_t((i * 5 + 1) % 12);
  const std::vector<std::vector<int64_t>> suffixes{{1, 2, 3}, {4}, std::vector<int64_t>(20, 7)};
  const ContinuationScores want = cpu->score_continuations(prefix, suffixes), got = dev.score_continuations(prefix, suffixes);
  EXPECT_NEAR(got.prefix, want.prefix, 1e-4 * std::max(1.0, std::abs(want.prefix)));
  ASSERT_EQ(got.suffix.size(), want.suffix.size());
  for (size_t s = 0; s < got.suffix.size(); ++s) EXPECT_NEAR(got.suffix[s], want.suffix[s], 1e-4 * std::max(1.0, std::abs(want.suffix[s]))) << s;
}

TEST(DeviceModel, HiddenStatesAndFinalStatesMatchTheCpu) {
  // The layers' outputs the parity fixtures compare (hidden states per block, the final norm's
  // output, each mixer's final conv and SSM state) come from the device as from the CPU.
  const MambaConfig cfg = device_config(true);
  const auto cpu = random_mamba(cfg, 51);
  const auto dev = cpu->on_device(std::make_shared<EmuOps>());
  const Tensor ids = test_ids(23, 12, 1);
  const ForwardOutputs want = cpu->forward(ids, {.hidden = true, .chunk = 5}), got = dev->forward(ids, {.hidden = true, .chunk = 7});
  ASSERT_EQ(got.hidden.size(), want.hidden.size());
  for (size_t i = 0; i < want.hidden.size(); ++i)
    EXPECT_LE(compare(got.hidden[i].to_vector(), want.hidden[i].to_vector()).max_abs, 1e-5) << "hidden " << i;
  EXPECT_LE(compare(got.final_hidden.to_vector(), want.final_hidden.to_vector()).max_abs, 1e-5);
  ASSERT_EQ(got.extra.size(), 2 * want.hidden.size());
  for (size_t k = 0; k < want.extra.size(); ++k) {
    EXPECT_EQ(got.extra[k].first, want.extra[k].first);
    EXPECT_LE(compare(got.extra[k].second.to_vector(), want.extra[k].second.to_vector()).max_abs, 1e-5) << want.extra[k].first;
  }
}

TEST(DeviceModel, RefusesWhatItCannotRun) {
  const MambaConfig cfg = device_config(true);
  EXPECT_THROW(make_device_model(random_mamba(cfg, 52), "tpu"), Error);
  if (cuda_device_count() == 0) {
    EXPECT_THROW(make_device_model(random_mamba(cfg, 53), "cuda"), Error);
  }
  EXPECT_EQ(make_device_model(random_mamba(cfg, 54), "cpu")->family(), "mamba");
  MambaConfig wide = cfg;
  wide.d_conv = cuda::kConvMaxWidth + 1;
  EXPECT_THROW(random_mamba(wide, 55)->on_device(std::make_shared<EmuOps>()), Error);  // the conv kernels' width
  wide.d_conv = cuda::kConvRegisterWidth + 1;  // within the width, but SiLU is fused only up to 4 taps
  EXPECT_THROW(random_mamba(wide, 56)->on_device(std::make_shared<EmuOps>())->forward(test_ids(9, cfg.vocab_size, 1), {}), Error);
}

TEST(DeviceModel, EmulatedHyenaMatchesTheFloat64Oracle) {
  // HyenaDNA on the emulated device (FFTW in cuFFT's place): L = 1, odd lengths, d = 16 (channel
  // blocks of 5 in the emulated FFT conv), against the float64 oracle (direct convolution) and the
  // CPU model; the second run of a length reuses the device filter spectrum.
  HyenaConfig c;
  c.d_model = 16, c.n_layer = 2, c.d_inner = 64, c.vocab_size = 12, c.padded_vocab = 16, c.max_seq_len = 160, c.filter_order = 16;
  c.activation_freq = 10;
  const auto cpu = random_hyena(c, 61);
  std::map<std::string, std::vector<float>> params;
  for (const auto& [k, v] : named_parameters(*cpu)) params[k] = v.to_vector();
  const auto dev_model = cpu->on_device(std::make_shared<EmuOps>());
  const LanguageModel& dev = *dev_model;
  for (int64_t L : {int64_t(1), int64_t(37), int64_t(37), int64_t(130)}) {
    SCOPED_TRACE(::testing::Message() << "L " << L);
    const Tensor ids = test_ids(L, c.vocab_size, uint64_t(L));
    const std::vector<double> ref = hyena_oracle(c, params, std::vector<int64_t>(ids.data<int64_t>(), ids.data<int64_t>() + L));
    const auto got = dev.forward(ids, {}).logits.to_vector();
    const auto e = compare(got, ref);
    EXPECT_LE(e.max_abs, 1e-5 * std::max(1.0, e.max_ref)) << "max_abs " << e.max_abs;
    EXPECT_LE(e.rel_l2, 1e-5) << "rel_l2 " << e.rel_l2;
    EXPECT_LE(compare(got, cpu->forward(ids, {}).logits.to_vector()).rel_l2, 1e-5) << "vs CPU model";
    EXPECT_EQ(streamed_logits(dev, ids, 16), got);  // streamed in chunks of 16: the same window
  }
  EXPECT_THROW(dev.forward(test_ids(161, 12, 1), {}), Error);  // longer than max_seq_len
}

TEST(DeviceModel, EmulatedMambaTrainingMatchesFloat64Gradients) {
  // One training sequence through the device backbone (emulated) against the CPU trainer's float64
  // gradients: every parameter tensor, RMSNorm and LayerNorm models, two lengths in a row (the
  // device buffers are re-sized), the loss too.
  for (bool rms : {true, false}) {
    const MambaConfig cfg = device_config(rms);
    const auto cpu = random_mamba(cfg, rms ? 71 : 72);
    auto m64 = train::make_grad_model<double>(*cpu);
    auto m32 = train::make_grad_model<float>(*cpu);
    m32->set_device(std::make_shared<EmuOps>());
    for (int64_t L : {int64_t(37), int64_t(20)}) {
      SCOPED_TRACE(::testing::Message() << "rms " << rms << " L " << L);
      const Tensor ids = test_ids(L, cfg.vocab_size, uint64_t(L));
      expect_lm_step_matches(*m64, *m32, ids);
    }
  }
  auto m64 = train::make_grad_model<double>(*random_mamba(device_config(true), 73));
  EXPECT_THROW(m64->set_device(std::make_shared<EmuOps>()), Error);  // the device path trains in float only
}

TEST(DeviceModel, EmulatedHyenaTrainingMatchesFloat64Gradients) {
  // HyenaDNA training on the emulated device (FFTW in cuFFT's place; channel blocks of 5 over d =
  // 16 and 3 d = 48): every tensor's gradient, the implicit filter's (learnable freq included)
  // through dk from the device, against the CPU trainer's float64 gradients; L = 1, odd lengths and
  // a length change (buffers and spectra re-made).
  HyenaConfig c;
  c.d_model = 16, c.n_layer = 2, c.d_inner = 32, c.vocab_size = 12, c.padded_vocab = 16, c.max_seq_len = 64, c.filter_order = 8;
  c.activation_freq = 10;
  const auto cpu = random_hyena(c, 91);
  auto m64 = train::make_grad_model<double>(*cpu);
  auto m32 = train::make_grad_model<float>(*cpu);
  m32->set_device(std::make_shared<EmuOps>());
  for (int64_t L : {int64_t(37), int64_t(1), int64_t(20), int64_t(20)}) {
    SCOPED_TRACE(::testing::Message() << "L " << L);
    expect_lm_step_matches(*m64, *m32, test_ids(L, c.vocab_size, uint64_t(L)));
  }
  EXPECT_THROW(m32->lm_loss(std::vector<int64_t>(65, 1), std::vector<int64_t>(65, 1), 1.0, nullptr), Error);  // over max_seq_len
}

TEST(DeviceModel, EmulatedAudioClassifierMatchesTheCpu) {
  // Raw-audio classifiers on the device: the filterbank front end (learned, band-normalised; on the
  // host) with two pooling stages (GEMMs on the device), and the embedding stem. Class probabilities
  // equal the CPU model's, and one training example's gradients equal the CPU trainer's float64
  // gradients tensor by tensor (pools, filterbank and every layer). The stages wrap any backbone:
  // Mamba blocks, and HyenaDNA blocks with the filterbank.
  MambaConfig c = device_config(true);
  c.vocab_size = 256, c.padded_vocab = 256, c.n_layer = 2;
  HyenaConfig h;
  h.d_model = 16, h.n_layer = 2, h.d_inner = 32, h.vocab_size = 256, h.padded_vocab = 256, h.max_seq_len = 64, h.filter_order = 8;
  h.activation_freq = 10;
  for (const auto& [hyena, filterbank] : {std::pair{false, true}, std::pair{false, false}, std::pair{true, true}}) {
    SCOPED_TRACE(::testing::Message() << (hyena ? "hyenadna" : "mamba") << ", filterbank " << filterbank);
    const std::unique_ptr<LanguageModel> base = hyena ? std::unique_ptr<LanguageModel>(random_hyena(h, 81))
                                                      : std::unique_ptr<LanguageModel>(random_mamba(c, 81));
    auto cpu = train::make_grad_model<float>(*base);
    auto m64 = train::make_grad_model<double>(*base);
    const train::AudioSpec spec{.sample_rate = 8000, .clip_samples = 96, .pool = {4, 3}, .filters = filterbank ? 5 : 0,
                                .frame = filterbank ? 8 : 0, .learn_filters = filterbank, .band_norm = filterbank};
    cpu->set_audio(spec, 3);
    cpu->add_classifier({"a", "b", "c"});
    m64->set_audio(spec, 3);
    m64->add_classifier({"a", "b", "c"});
    for (const char* name : {"classifier.weight", "classifier.bias"}) {  // a zero head would make every backbone agree
      const train::ParamInfo& info = cpu->params().find(name);
      const auto v = random_vector(size_t(info.numel), 82);
      std::copy(v.begin(), v.end(), cpu->weights().begin() + info.offset);
    }
    std::copy(cpu->weights().begin(), cpu->weights().end(), m64->weights().begin());
    auto dev = cpu->clone();
    dev->set_device(std::make_shared<EmuOps>());
    std::vector<int64_t> ids(96);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = int64_t((i * 37 + 11) % 256);
    const auto want = train::class_probabilities(*cpu, ids), got = train::class_probabilities(*dev, ids);
    ASSERT_EQ(got.size(), want.size());
    for (size_t k = 0; k < got.size(); ++k) EXPECT_NEAR(got[k], want[k], 1e-5) << k;
    EXPECT_GT(std::abs(want[0] - want[1]) + std::abs(want[1] - want[2]), 1e-3);  // not the uniform answer of a blind head
    std::vector<double> g64(static_cast<size_t>(m64->params().size()), 0.0);
    std::vector<float> g32(g64.size(), 0.0f);
    const double l64 = m64->class_loss(ids, 1, 1.0, g64.data()), l32 = dev->class_loss(ids, 1, 1.0, g32.data());
    EXPECT_NEAR(l32, l64, 1e-5 * std::max(1.0, std::abs(l64)));
    expect_grads_match(*m64, g32, g64);
  }
}

TEST(DeviceModel, EmulatedHybridMatchesTheCpu) {
  // A Mamba/Hyena stripe from config.json alone on the emulated device: logits equal the CPU's,
  // one training sequence's gradients equal the float64 ones tensor by tensor, with and without
  // recomputation.
  TempDir tmp;
  const nlohmann::json stripe = {{"model_type", "longseq-hybrid"}, {"d_model", 8}, {"n_layer", 2}, {"vocab_size", 12},
                                 {"layers", {"hyena", "mamba"}}, {"mamba", {{"d_state", 4}, {"d_conv", 4}}},
                                 {"hyena", {{"d_inner", 16}, {"max_seq_len", 32}, {"filter_order", 8}}}};
  write_text_atomic(tmp / "stripe.json", stripe.dump());
  const std::shared_ptr<const LanguageModel> cpu = new_model_from_config(tmp / "stripe.json", 41);
  const auto dev = family_named("hybrid").on_device(cpu, std::make_shared<EmuOps>());
  const Tensor ids = test_ids(19, 12, 3);
  const auto want = cpu->forward(ids, {}).logits.to_vector(), got = dev->forward(ids, {}).logits.to_vector();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4) << i;
  auto m64 = train::make_grad_model<double>(*cpu);
  auto m32 = train::make_grad_model<float>(*cpu);
  m32->set_device(std::make_shared<EmuOps>());
  expect_lm_step_matches(*m64, *m32, test_ids(13, 12, 5));
  m32->set_recompute(true);  // the same layers re-run inside the backward, on the device too
  expect_lm_step_matches(*m64, *m32, test_ids(13, 12, 5));
}

TEST(DeviceModel, EmulatedCaduceusMatchesTheCpu) {
  // Caduceus-PS (BiMamba in reverse-complement wrappers, the half swap, the derived token table) and
  // -PH on the emulated device: logits equal the CPU model's, and one training sequence's gradients
  // equal the float64 ones tensor by tensor.
  for (const bool rcps : {true, false}) {
    const nlohmann::json config = {{"model_type", "caduceus"}, {"d_model", 8}, {"n_layer", 2}, {"vocab_size", 12}, {"rcps", rcps},
                                   {"complement_map", {{"7", 10}, {"8", 9}, {"9", 8}, {"10", 7}}},
                                   {"ssm_cfg", {{"d_state", 4}, {"d_conv", 4}, {"expand", 2}}}};
    const std::shared_ptr<const LanguageModel> cpu = new_model_from_json(config, 61);
    const auto dev = family_named("caduceus").on_device(cpu, std::make_shared<EmuOps>());
    const Tensor ids = test_ids(23, 12, 7);
    const auto want = cpu->forward(ids, {}).logits.to_vector(), got = dev->forward(ids, {}).logits.to_vector();
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4) << (rcps ? "PS " : "PH ") << i;
    auto m64 = train::make_grad_model<double>(*cpu);
    auto m32 = train::make_grad_model<float>(*cpu);
    m32->set_device(std::make_shared<EmuOps>());
    expect_lm_step_matches(*m64, *m32, test_ids(13, 12, 5));
  }
}

TEST(DeviceModel, EmulatedStripedHyena2MatchesTheCpu) {
  // Every StripedHyena 2 block on the emulated device (attention with rotary and its KV cache, hcs
  // and hcm through the shared-memory conv kernels past 4 taps, hcl through the modal kernels):
  // logits equal the CPU model's for the whole window and streamed in chunks of 1 and 7 (the KV
  // cache growing, the FIR and modal states carried), and one training sequence's gradients equal
  // the float64 ones tensor by tensor (hcl through the explicit filter and the FFT convolution).
  const nlohmann::json config = {{"hidden_size", 16}, {"num_layers", 4}, {"vocab_size", 12}, {"num_attention_heads", 2},
                                 {"hcs_layer_idxs", {0}}, {"hcm_layer_idxs", {1}}, {"hcl_layer_idxs", {2}}, {"attn_layer_idxs", {3}},
                                 {"short_filter_length", 3}, {"hcs_filter_length", 7}, {"hcs_filter_groups", 4},
                                 {"hcm_filter_length", 12}, {"hcm_filter_groups", 8}, {"hcl_filter_groups", 16}, {"state_size", 5},
                                 {"inner_mlp_size", 24}, {"eps", 1e-6}, {"use_interpolated_rotary_pos_emb", true},
                                 {"rotary_emb_scaling_factor", 4}, {"evo2_style_activations", true}, {"max_seqlen", 64},
                                 {"tie_embeddings", true}, {"column_split", true}, {"interleave", true}};
  const std::shared_ptr<const LanguageModel> cpu = new_model_from_json(config, 71);
  EXPECT_NE(family_named("stripedhyena2").device_support(), "");
  const auto dev = family_named("stripedhyena2").on_device(cpu, std::make_shared<EmuOps>());
  const Tensor ids = test_ids(29, 12, 9);
  const auto want = cpu->forward(ids, {}).logits.to_vector();
  for (const int64_t chunk : {int64_t(29), int64_t(1), int64_t(7)}) {
    const auto got = dev->forward(ids, {.chunk = chunk}).logits.to_vector();
    ASSERT_EQ(got.size(), want.size());
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(double(got[i]) - want[i]));
    EXPECT_LE(worst, 1e-4) << "chunk " << chunk;
  }
  auto m64 = train::make_grad_model<double>(*cpu);
  auto m32 = train::make_grad_model<float>(*cpu);
  m32->set_device(std::make_shared<EmuOps>());
  expect_lm_step_matches(*m64, *m32, test_ids(21, 12, 5));
  // With a sliding window of 4 keys: streamed token by token on the device (the cache trimmed on the
  // device) equals the CPU model, and the training step's gradients the float64 ones.
  nlohmann::json windowed = config;
  windowed["sliding_window"] = 4;
  const std::shared_ptr<const LanguageModel> wcpu = new_model_from_json(windowed, 71);
  const auto wdev = family_named("stripedhyena2").on_device(wcpu, std::make_shared<EmuOps>());
  const auto wwant = wcpu->forward(ids, {}).logits.to_vector(), wgot = wdev->forward(ids, {.chunk = 1}).logits.to_vector();
  ASSERT_EQ(wgot.size(), wwant.size());
  for (size_t i = 0; i < wgot.size(); ++i) EXPECT_NEAR(wgot[i], wwant[i], 1e-4) << i;
  auto w64 = train::make_grad_model<double>(*wcpu);
  auto w32 = train::make_grad_model<float>(*wcpu);
  w32->set_device(std::make_shared<EmuOps>());
  expect_lm_step_matches(*w64, *w32, test_ids(21, 12, 5));
}

TEST(DeviceModel, Bf16KeptWeightsRunOnTheDeviceAndTrainThroughAFloatCopy) {
  // A StripedHyena 2 model saved with bf16 weights loads with its linear weights kept bf16 (an
  // inference model). Moved to the (emulated) device it runs through a float copy and gives the CPU
  // model's logits; its trainable copy holds every weight in float, and one training step's
  // gradients equal the float64 ones.
  const nlohmann::json config = {{"hidden_size", 16}, {"num_layers", 2}, {"vocab_size", 12}, {"num_attention_heads", 2},
                                 {"hcm_layer_idxs", {0}}, {"attn_layer_idxs", {1}}, {"short_filter_length", 3},
                                 {"hcs_filter_length", 7}, {"hcs_filter_groups", 4}, {"hcm_filter_length", 12}, {"hcm_filter_groups", 8},
                                 {"hcl_filter_groups", 16}, {"state_size", 5}, {"inner_mlp_size", 24}, {"max_seqlen", 64},
                                 {"tie_embeddings", true}, {"column_split", true}, {"interleave", true}};
  TempDir tmp;
  save_model(*new_model_from_json(config, 72), tmp.path() / "f32");
  std::filesystem::create_directories(tmp.path() / "bf16");
  std::filesystem::copy_file(tmp.path() / "f32" / "config.json", tmp.path() / "bf16" / "config.json");
  std::vector<std::pair<std::string, Tensor>> tensors;
  const auto f32 = SafetensorsFile::open(tmp.path() / "f32" / "model.safetensors");
  for (const auto& t : f32.tensors()) tensors.emplace_back(t.name, f32.view(t.name).to(DType::BF16));
  write_safetensors(tmp.path() / "bf16" / "model.safetensors", tensors, {});
  const std::shared_ptr<const LanguageModel> cpu = load_language_model(ModelDir::open(tmp.path() / "bf16"));
  const auto& layers = dynamic_cast<const LayerLanguageModel&>(*cpu).layers();
  ASSERT_TRUE(layers.holds_bf16());
  EXPECT_EQ(layers.bf16_weights().size(), 10u);  // Wqkv, out_proj, projections, out_filter_dense, 2 x (l1, l2, l3)
  const auto dev = family_named("stripedhyena2").on_device(cpu, std::make_shared<EmuOps>());
  const Tensor ids = test_ids(23, 12, 4);
  const auto want = cpu->forward(ids, {}).logits.to_vector(), got = dev->forward(ids, {.chunk = 5}).logits.to_vector();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4) << i;
  auto m32 = train::make_grad_model<float>(*cpu);
  EXPECT_FALSE(m32->holds_bf16());
  EXPECT_EQ(m32->parameter_count(), layers.parameter_count());
  auto m64 = train::make_grad_model<double>(*cpu);
  expect_lm_step_matches(*m64, *m32, test_ids(21, 12, 5));
}
