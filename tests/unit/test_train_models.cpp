// Whole tiny models of each family: the float64 training forward equals the inference model and the
// naive oracle, and the gradient of the mean next-token loss (and of a classifier head's loss) with
// respect to every parameter matches central finite differences; per-layer recomputation gives the
// same gradient; a saved checkpoint loads back to the same weights.
#include "audio/audio_dataset.h"
#include "core/families/family.h"
#include "core/fileio.h"
#include "core/nn/layers.h"
#include "core/families/hyena_config.h"
#include "core/families/mamba_config.h"
#include "core/ops/ops.h"
#include "core/random.h"
#include "core/safetensors.h"
#include "core/train/grad_model.h"
#include "tests/oracles.h"
#include "tests/testing.h"
#include "tests/unit/grad_check.h"

#include <map>

using namespace longseq;
using namespace longseq::train;
using namespace longseq::ops;
using namespace longseq::testing;

namespace {

MambaConfig tiny_mamba(bool rms = true) {
  MambaConfig c;
  c.d_model = 8;
  c.n_layer = 2;
  c.vocab_size = 12;
  c.padded_vocab = 16;
  c.d_state = 4;
  c.d_inner = 16;
  c.dt_rank = 2;
  c.rms_norm = rms;
  return c;
}

HyenaConfig tiny_hyena() {
  HyenaConfig c;
  c.d_model = 8;
  c.n_layer = 2;
  c.d_inner = 16;
  c.vocab_size = 12;
  c.padded_vocab = 16;
  c.max_seq_len = 16;
  c.emb_dim = 3;
  c.filter_order = 8;
  c.activation_freq = 10;
  return c;
}

std::vector<int64_t> ids_of(int64_t L, int64_t lo, int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<int64_t> ids(static_cast<size_t>(L));
  for (auto& i : ids) i = lo + int64_t(rng.below(uint64_t(n)));
  return ids;
}

std::vector<int64_t> next_token_targets(const std::vector<int64_t>& ids) {
  std::vector<int64_t> t(ids.size(), -1);
  for (size_t i = 0; i + 1 < ids.size(); ++i) t[i] = ids[i + 1];
  return t;
}

}  // namespace

TEST(TrainModels, MambaForwardMatchesOracleAndGradientsMatchFiniteDifferences) {
  for (const bool rms : {true, false}) {
    const auto model = random_mamba(tiny_mamba(rms), 3);
    auto gm = make_grad_model<double>(*model);
    const auto ids = ids_of(11, 0, 12, 4), targets = next_token_targets(ids);
    // Forward: the loss equals the float64 oracle's on the same (float) weights.
    std::map<std::string, std::vector<float>> p;
    for (const auto& [k, v] : named_parameters(*model)) p[k] = v.to_vector();
    const auto logits = mamba_oracle(tiny_mamba(rms), p, ids);
    double ref = 0;
    for (size_t t = 0; t + 1 < ids.size(); ++t) {
      const double* row = logits.data() + t * 16;
      double s = 0;
      for (int v = 0; v < 16; ++v) s += std::exp(row[v]);
      ref += std::log(s) - row[ids[t + 1]];
    }
    EXPECT_NEAR(gm->lm_loss(ids, targets, 1.0, nullptr), ref, 1e-10 * std::abs(ref));
    perturb(*gm, 5);
    const double scale = 1.0 / 10;
    check_model_gradients(rms ? "mamba rms" : "mamba layernorm", *gm,
                          [&](double* g) { return gm->lm_loss(ids, targets, scale, g) * scale; });
  }
}

TEST(TrainModels, HyenaForwardMatchesModelAndGradientsMatchFiniteDifferences) {
  const auto model = random_hyena(tiny_hyena(), 7);
  auto gm = make_grad_model<double>(*model);
  const auto ids = ids_of(13, 7, 5, 8), targets = next_token_targets(ids);
  const Tensor logits = model->forward(Tensor::from_ids(ids), {}).logits;
  std::vector<int64_t> next(ids.begin() + 1, ids.end());
  const double ref = -sum_next_logprobs(logits, next.data(), int64_t(next.size()));
  EXPECT_NEAR(gm->lm_loss(ids, targets, 1.0, nullptr), ref, 2e-6 * std::abs(ref));  // inference runs in float
  perturb(*gm, 9);
  check_model_gradients("hyena", *gm, [&](double* g) { return gm->lm_loss(ids, targets, 1.0 / 12, g) / 12; });
}

TEST(TrainModels, ClassifierHeadGradients) {
  for (const bool hyena : {false, true}) {
    auto gm = hyena ? make_grad_model<double>(*random_hyena(tiny_hyena(), 1))
                    : make_grad_model<double>(*random_mamba(tiny_mamba(), 1));
    gm->add_classifier({"a", "b", "c"});
    perturb(*gm, 11);
    const auto ids = ids_of(9, 7, 5, 12);
    std::vector<double> logits;
    gm->class_loss(ids, 2, 1.0, nullptr, &logits);
    ASSERT_EQ(logits.size(), 3u);
    check_model_gradients(hyena ? "hyena classifier" : "mamba classifier", *gm,
                          [&](double* g) { return gm->class_loss(ids, 2, 1.0, g); });
  }
}

namespace {
// A classifier's loss and gradient with and without per-step recomputation: the same bits
// (recompute is left off again).
void expect_recompute_identical(GradModel<float>& f, const std::vector<int64_t>& ids, int64_t label) {
  std::vector<float> a(size_t(f.params().size()), 0.0f), b = a;
  const double la = f.class_loss(ids, label, 1.0, a.data());
  f.set_recompute(true);
  EXPECT_EQ(f.class_loss(ids, label, 1.0, b.data()), la);
  EXPECT_EQ(a, b);
  f.set_recompute(false);
}
}  // namespace

TEST(TrainModels, RecomputeGivesTheSameGradient) {
  for (const bool hyena : {false, true}) {
    auto gm = hyena ? make_grad_model<float>(*random_hyena(tiny_hyena(), 2))
                    : make_grad_model<float>(*random_mamba(tiny_mamba(), 2));
    const auto ids = ids_of(15, 7, 5, 3), targets = next_token_targets(ids);
    std::vector<float> a(size_t(gm->params().size()), 0.0f), b = a;
    const double la = gm->lm_loss(ids, targets, 1.0, a.data());
    gm->set_recompute(true);
    const double lb = gm->lm_loss(ids, targets, 1.0, b.data());
    EXPECT_EQ(la, lb);
    EXPECT_EQ(a, b) << (hyena ? "hyena" : "mamba");
  }
}

TEST(TrainModels, CheckpointRoundTrip) {
  TempDir tmp;
  for (const bool hyena : {false, true}) {
    auto gm = hyena ? make_grad_model<float>(*random_hyena(tiny_hyena(), 4))
                    : make_grad_model<float>(*random_mamba(tiny_mamba(), 4));
    gm->add_classifier({"x", "y"});
    for (auto& w : gm->weights()) w *= 1.5f;
    const auto dir = tmp / (hyena ? "h" : "m");
    gm->save(dir);
    const auto back = load_grad_model<float>(dir);
    EXPECT_EQ(back->weights(), gm->weights());
    EXPECT_EQ(back->labels(), gm->labels());
    // The inference loader reads the same checkpoint (ignoring the classifier head).
    EXPECT_NO_THROW(load_language_model(ModelDir::open(dir)));
  }
}

// The raw-audio model: pooling stages between Mamba layers (lengths 12 -> 6 -> 2), FD gradients of
// every parameter (pools included), recomputation, and a checkpoint that only the training loader
// runs.
TEST(TrainModels, AudioPoolingStages) {
  MambaConfig c = tiny_mamba();
  c.vocab_size = 256;
  c.padded_vocab = 256;
  auto gm = make_grad_model<double>(*random_mamba(c, 5));
  const AudioSpec spec{.sample_rate = 8000, .clip_samples = 12, .pool = {2, 3}};
  gm->set_audio(spec, 3);
  gm->add_classifier({"a", "b", "c"});
  EXPECT_EQ(gm->output_length(12), 2);
  EXPECT_TRUE(gm->params().has("backbone.pool.1.weight"));
  EXPECT_EQ(gm->params().find("backbone.pool.1.weight").shape, (Shape{8, 24}));
  perturb(*gm, 13);
  const auto ids = ids_of(12, 0, 256, 14);
  check_model_gradients("mamba audio", *gm, [&](double* g) { return gm->class_loss(ids, 1, 1.0, g); });
  EXPECT_THROW(gm->class_loss(ids_of(10, 0, 256, 1), 0, 1.0, nullptr), Error);  // not a multiple of the stride 6
  EXPECT_THROW(gm->lm_loss(ids, ids, 1.0, nullptr), Error);

  // Recomputation gives the same gradient (float, the training precision, as RecomputeGivesTheSameGradient).
  TempDir tmp;
  auto f = make_grad_model<float>(*random_mamba(c, 6));
  f->set_audio(spec, 4);
  f->add_classifier({"x", "y"});
  expect_recompute_identical(*f, ids, 0);
  f->save(tmp / "audio");
  const auto back = load_grad_model<float>(tmp / "audio");
  ASSERT_TRUE(back->audio().has_value());
  EXPECT_EQ(back->audio()->pool, spec.pool);
  EXPECT_EQ(back->weights(), f->weights());
  EXPECT_THROW(load_language_model(ModelDir::open(tmp / "audio")), Error);  // pooling runs only in the training model
  // A vocabulary that cannot hold the mu-law codes, and layer counts that do not split into the stages, refuse.
  auto h = make_grad_model<float>(*random_hyena(tiny_hyena(), 1));
  EXPECT_THROW(h->set_audio(spec, 1), Error);
  auto odd = make_grad_model<float>(*random_mamba(c, 7));
  EXPECT_THROW(odd->set_audio({.sample_rate = 8000, .clip_samples = 24, .pool = {2, 2, 2}}, 1), Error);
}

// Any backbone: the same front end and pooling stages around HyenaDNA blocks (a Hyena operator and a
// GELU MLP per block), with FD gradients of every parameter and recomputation giving the same bits.
TEST(TrainModels, AudioStagesAroundHyenaBlocks) {
  HyenaConfig c = tiny_hyena();
  c.vocab_size = 256;
  c.padded_vocab = 256;
  auto gm = make_grad_model<double>(*random_hyena(c, 5));
  const AudioSpec spec{.sample_rate = 8000, .clip_samples = 24, .pool = {4, 3}, .filters = 3, .frame = 6, .learn_filters = true};
  gm->set_audio(spec, 3);
  gm->add_classifier({"a", "b"});
  EXPECT_EQ(gm->output_length(24), 2);
  perturb(*gm, 17);
  const auto ids = ids_of(24, 0, 256, 18);
  check_model_gradients("hyenadna audio", *gm, [&](double* g) { return gm->class_loss(ids, 1, 1.0, g); });
  auto f = make_grad_model<float>(*random_hyena(c, 6));
  f->set_audio(spec, 4);
  f->add_classifier({"x", "y"});
  expect_recompute_identical(*f, ids, 0);
}

// The filterbank front end: overlapping frames (6 samples every 4) -> learned (cos, sin) pairs -> log
// power -> band means removed -> the stage-0 pool; FD gradients of every parameter, the filterbank included, and a fixed
// filterbank that gets no gradient and survives save/load.
TEST(TrainModels, AudioFilterbankFrontEnd) {
  MambaConfig c = tiny_mamba();
  c.vocab_size = 256;
  c.padded_vocab = 256;
  auto gm = make_grad_model<double>(*random_mamba(c, 5));
  const AudioSpec spec{.sample_rate = 8000, .clip_samples = 24, .pool = {4, 3}, .filters = 3, .frame = 6, .learn_filters = true,
                       .band_norm = true};
  gm->set_audio(spec, 3);
  gm->add_classifier({"a", "b", "c"});
  EXPECT_EQ(gm->output_length(24), 2);
  EXPECT_EQ(gm->params().find("backbone.filterbank.weight").shape, (Shape{6, 6}));
  EXPECT_EQ(gm->params().find("backbone.pool.0.weight").shape, (Shape{8, 3}));
  perturb(*gm, 13);
  const auto ids = ids_of(24, 0, 256, 14);
  check_model_gradients("mamba filterbank", *gm, [&](double* g) { return gm->class_loss(ids, 2, 1.0, g); });

  TempDir tmp;
  auto f = make_grad_model<float>(*random_mamba(c, 6));
  AudioSpec fixed = spec;
  fixed.learn_filters = false;
  f->set_audio(fixed, 4);
  f->add_classifier({"x", "y"});
  const ParamInfo& fb = f->params().find("backbone.filterbank.weight");
  EXPECT_FALSE(fb.trainable);
  std::vector<float> g(size_t(f->params().size()), 0.0f);
  f->class_loss(ids, 1, 1.0, g.data());
  EXPECT_TRUE(std::all_of(g.begin() + fb.offset, g.begin() + fb.offset + fb.numel, [](float v) { return v == 0.0f; }));
  EXPECT_TRUE(std::any_of(g.begin(), g.end(), [](float v) { return v != 0.0f; }));
  f->save(tmp / "fb");
  const auto back = load_grad_model<float>(tmp / "fb");
  ASSERT_TRUE(back->audio().has_value());
  EXPECT_EQ(back->audio()->filters, 3);
  EXPECT_EQ(back->audio()->frame, 6);
  EXPECT_FALSE(back->audio()->learn_filters);
  EXPECT_TRUE(back->audio()->band_norm);
  EXPECT_EQ(back->weights(), f->weights());
  // A frame shorter than the hop would skip samples.
  auto bad = make_grad_model<float>(*random_mamba(c, 7));
  EXPECT_THROW(bad->set_audio({.sample_rate = 8000, .clip_samples = 24, .pool = {4, 3}, .filters = 3, .frame = 3}, 1), Error);
}

// The initial bands are a mel-spaced spectrogram: a sine at a band's centre (near 1 kHz) is loudest
// in that band, at its own power.
TEST(TrainModels, FilterbankInitResolvesATone) {
  const int64_t K = 40, F = 400, hop = 160, L = 1600;
  const double rate = 16000;
  std::vector<double> w(size_t(2 * K * F));
  filterbank_init<double>(K, F, rate, w.data());
  const auto mel = [](double f) { return 2595.0 * std::log10(1.0 + f / 700.0); };
  const double lo = mel(40.0), hi = mel(0.45 * rate);
  const int64_t want = std::llround((mel(1000.0) - lo) / (hi - lo) * double(K - 1));  // the band centred nearest 1 kHz
  const double f = 700.0 * (std::pow(10.0, (lo + (hi - lo) * double(want) / double(K - 1)) / 2595.0) - 1.0);
  std::vector<int64_t> codes(static_cast<size_t>(L));
  for (int64_t n = 0; n < L; ++n) codes[size_t(n)] = mu_law_encode(float(0.5 * std::sin(2 * M_PI * f * double(n) / rate)));
  const int64_t T = L / hop;
  std::vector<double> frames(size_t(T * F)), y(size_t(T * 2 * K), 0.0), z(size_t(T * K));
  audio_frames<double>(codes, hop, mat(frames.data(), T, F));
  linear_forward<double>(mat<const double>(frames.data(), T, F), w.data(), nullptr, mat(y.data(), T, 2 * K));
  log_power_forward<double>(mat<const double>(y.data(), T, 2 * K), mat(z.data(), T, K));
  const int64_t t = T - 1;  // a full frame
  const int64_t best = std::max_element(z.begin() + t * K, z.begin() + (t + 1) * K) - (z.begin() + t * K);
  EXPECT_EQ(best, want);
  const double power = std::exp(z[size_t(t * K + best)] * kLogPowerScale + kLogPowerShift) - kLogPowerEps;
  EXPECT_NEAR(power, 0.25, 0.25 * 0.05);  // amplitude 0.5 -> power 0.25 (mu-law rounding aside)
  EXPECT_LT(z[size_t(t * K)], z[size_t(t * K + best)] - 2.0);  // 40 Hz band: far below
}

// StripedHyena 2 (Evo 2) from its config keys: every block type (hcs, hcm, hcl, attention with
// interpolated rotary) and both MLP activations; the layers' backward against float64 finite
// differences; save writes the released layouts (per-head Wqkv rows, interleaved projections) and
// load reads them back to the same model; chunked inference equals the whole window.
TEST(TrainModels, StripedHyena2GradientsLayoutsAndChunks) {
  TempDir tmp;
  const nlohmann::json config = {{"hidden_size", 8}, {"num_layers", 4}, {"vocab_size", 16}, {"num_attention_heads", 2},
                                 {"hcs_layer_idxs", {0}}, {"hcm_layer_idxs", {1}}, {"hcl_layer_idxs", {2}}, {"attn_layer_idxs", {3}},
                                 {"short_filter_length", 3}, {"hcs_filter_length", 4}, {"hcs_filter_groups", 2},
                                 {"hcm_filter_length", 6}, {"hcm_filter_groups", 4}, {"hcl_filter_groups", 8}, {"state_size", 3},
                                 {"inner_mlp_size", 12}, {"eps", 1e-6}, {"use_interpolated_rotary_pos_emb", true},
                                 {"rotary_emb_scaling_factor", 4}, {"evo2_style_activations", true}, {"max_seqlen", 64},
                                 {"tie_embeddings", true}, {"column_split", true}, {"interleave", true}};
  write_text_atomic(tmp / "sh2.json", config.dump());
  const auto model = new_model_from_config(tmp / "sh2.json", 9);
  EXPECT_EQ(model->family(), "stripedhyena2");
  // Config errors name the key: an unknown block type (with the supported ones), a block in no list.
  const auto refused = [&](nlohmann::json bad, const std::string& needle) {
    try {
      (void)new_model_from_json(bad, 1);
      ADD_FAILURE() << "accepted " << bad.dump();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  nlohmann::json unknown = config;
  unknown["mamba_layer_idxs"] = {1};
  refused(unknown, "hcs, hcm, hcl and attn");
  nlohmann::json missing = config;
  missing["hcl_layer_idxs"] = nlohmann::json::array();
  refused(missing, "block 2 is in none");
  auto gm = make_grad_model<double>(*model);
  perturb(*gm, 10);
  const auto ids = ids_of(11, 0, 16, 3), targets = next_token_targets(ids);
  const double scale = 1.0 / 10;
  check_model_gradients("stripedhyena2", *gm, [&](double* g) { return gm->lm_loss(ids, targets, scale, g) * scale; });

  save_model(*model, tmp / "s");
  const auto back = load_language_model(ModelDir::open(tmp / "s"));
  const Tensor long_ids = Tensor::from_ids(ids_of(50, 0, 16, 4));
  const auto whole = model->forward(long_ids, {.chunk = 50}).logits.to_vector();
  EXPECT_EQ(back->forward(long_ids, {.chunk = 50}).logits.to_vector(), whole);
  // The file holds the released layouts, not the layers': a Wqkv row of head 0's k is the layers' K row 0.
  const auto file = SafetensorsFile::open(tmp / "s/model.safetensors");
  const auto layers = named_parameters(*model);
  const auto find = [&](const std::string& name) {
    for (const auto& [n, t] : layers)
      if (n == name) return t.to_vector();
    return std::vector<float>{};
  };
  const int64_t d = 8, hd = 4;
  const auto wqkv_file = file.load_f32("blocks.3.inner_mha_cls.Wqkv.weight").to_vector(), wqkv = find("blocks.3.inner_mha_cls.Wqkv.weight");
  ASSERT_EQ(wqkv.size(), size_t(3 * d * d));
  EXPECT_EQ(std::vector<float>(wqkv_file.begin() + hd * d, wqkv_file.begin() + 2 * hd * d), std::vector<float>(wqkv.begin() + d * d, wqkv.begin() + (d + hd) * d));
  const auto proj_file = file.load_f32("blocks.0.projections.weight").to_vector(), proj = find("blocks.0.projections.weight");
  EXPECT_EQ(std::vector<float>(proj_file.begin() + d, proj_file.begin() + 2 * d), std::vector<float>(proj.begin() + d * d, proj.begin() + (d + 1) * d));  // x1 of channel 0
  for (const int64_t chunk : {1, 7, 16}) {
    const auto got = model->forward(long_ids, {.chunk = chunk}).logits.to_vector();
    EXPECT_LE(compare(got, std::vector<double>(whole.begin(), whole.end())).max_abs, 1e-5) << "chunk " << chunk;
  }
  // Prefix sharing (the variant scorer's): the prefix runs once, each suffix continues a copy of
  // every state (KV caches included); the sums equal those of whole forward passes.
  const auto prefix = ids_of(30, 0, 16, 5);
  const std::vector<std::vector<int64_t>> suffixes = {ids_of(9, 0, 16, 6), ids_of(4, 0, 16, 7)};
  const ContinuationScores shared = model->score_continuations(prefix, suffixes);
  for (size_t s = 0; s < suffixes.size(); ++s) {
    std::vector<int64_t> all = prefix;
    all.insert(all.end(), suffixes[s].begin(), suffixes[s].end());
    const Tensor lg = model->forward(Tensor::from_ids(all), {}).logits;
    const int64_t V = model->vocab_size();
    double pre = 0, suf = 0;
    for (size_t t = 1; t < all.size(); ++t) {
      const float* row = lg.data<float>() + (t - 1) * V;
      double mx = row[0], z = 0;
      for (int64_t v = 0; v < V; ++v) mx = std::max(mx, double(row[v]));
      for (int64_t v = 0; v < V; ++v) z += std::exp(double(row[v]) - mx);
      (t < prefix.size() ? pre : suf) += double(row[all[t]]) - mx - std::log(z);
    }
    EXPECT_NEAR(shared.prefix, pre, 1e-4);
    EXPECT_NEAR(shared.suffix[s], suf, 1e-4) << "suffix " << s;
  }
}

TEST(TrainModels, StripedHyena2SlidingWindowStreamsInBoundedMemory) {
  // sliding_window (opt-in, approximate): a window past the length gives the exact model's logits
  // bit for bit; a short one (6 keys) gives the same logits whole and streamed in chunks of 1, 5 and
  // 13 tokens (its KV cache trimmed to the last 5 rows whenever it would pass 18), and its cache
  // stops growing at 3 windows of rows.
  nlohmann::json config = {{"hidden_size", 8}, {"num_layers", 2}, {"vocab_size", 16}, {"num_attention_heads", 2},
                           {"hcl_layer_idxs", {0}}, {"attn_layer_idxs", {1}}, {"short_filter_length", 3}, {"state_size", 3},
                           {"hcs_filter_length", 4}, {"hcs_filter_groups", 2}, {"hcm_filter_length", 6}, {"hcm_filter_groups", 4},
                           {"inner_mlp_size", 12}, {"evo2_style_activations", true}, {"max_seqlen", 64}};
  const Tensor ids = Tensor::from_ids(ids_of(61, 0, 16, 8));
  const auto exact = new_model_from_json(config, 12)->forward(ids, {.chunk = 61}).logits.to_vector();
  config["sliding_window"] = 1000;
  EXPECT_EQ(new_model_from_json(config, 12)->forward(ids, {.chunk = 61}).logits.to_vector(), exact);
  config["sliding_window"] = 6;
  const auto windowed = new_model_from_json(config, 12);
  const auto whole = windowed->forward(ids, {.chunk = 61}).logits.to_vector();
  EXPECT_GT(compare(whole, std::vector<double>(exact.begin(), exact.end())).max_abs, 1e-3) << "the window changed nothing";
  for (const int64_t chunk : {1, 5, 13}) {
    const auto got = windowed->forward(ids, {.chunk = chunk}).logits.to_vector();
    EXPECT_LE(compare(got, std::vector<double>(whole.begin(), whole.end())).max_abs, 1e-5) << "chunk " << chunk;
  }
  const nn::AttentionShape shape{.d = 8, .heads = 2, .kv_heads = 2, .window = 6};
  const auto layer = nn::make_attention<float>([](const std::string&) { return int64_t(0); }, "a.", shape);
  EXPECT_EQ(layer->state_size_at(10), layer->state_size_at(0) + 10 * 2 * 8);
  EXPECT_EQ(layer->state_size_at(1'000'000), layer->state_size_at(18));
}

// The hybrid family: blocks from config.json alone. A config listing only Mamba blocks reads a
// Mamba-1 model's own files (the same names) and gives its logits; a Mamba/Hyena stripe's gradients
// match finite differences; save + load gives back the same model.
TEST(TrainModels, HybridFromConfigAlone) {
  TempDir tmp;
  const MambaConfig mc = tiny_mamba();
  const auto mamba = random_mamba(mc, 21);
  mamba->save(tmp / "m");
  const nlohmann::json only_mamba = {{"model_type", "longseq-hybrid"}, {"d_model", mc.d_model}, {"n_layer", mc.n_layer},
                                     {"vocab_size", mc.vocab_size}, {"layers", {"mamba"}},
                                     {"mamba", {{"d_state", mc.d_state}, {"d_conv", mc.d_conv}, {"expand", 2}, {"dt_rank", mc.dt_rank}}}};
  write_text_atomic(tmp / "m/config.json", only_mamba.dump());
  const auto as_hybrid = load_language_model(ModelDir::open(tmp / "m"));
  EXPECT_EQ(as_hybrid->family(), "hybrid");
  const Tensor ids = Tensor::from_ids(ids_of(13, 0, 12, 22));
  const auto want = mamba->forward(ids, {}).logits.to_vector(), got = as_hybrid->forward(ids, {}).logits.to_vector();
  ASSERT_EQ(got.size(), want.size());
  double max_abs = 0;
  for (size_t i = 0; i < got.size(); ++i) max_abs = std::max(max_abs, double(std::abs(got[i] - want[i])));
  EXPECT_LE(max_abs, 1e-5) << "hybrid of Mamba blocks vs Mamba-1";

  const nlohmann::json stripe = {{"model_type", "longseq-hybrid"}, {"d_model", 8}, {"n_layer", 2}, {"vocab_size", 12},
                                 {"layers", {"mamba", "hyena"}}, {"rms_norm", false},
                                 {"mamba", {{"d_state", 4}, {"expand", 2}}},
                                 {"hyena", {{"d_inner", 16}, {"max_seq_len", 16}, {"filter_order", 8}, {"emb_dim", 3}}}};
  write_text_atomic(tmp / "stripe.json", stripe.dump());
  const auto model = new_model_from_config(tmp / "stripe.json", 5);
  EXPECT_EQ(model->max_length(), 16);
  auto gm = make_grad_model<double>(*model);
  perturb(*gm, 6);
  const auto sids = ids_of(11, 0, 12, 7), targets = next_token_targets(sids);
  const double scale = 1.0 / 10;
  check_model_gradients("hybrid mamba+hyena", *gm, [&](double* g) { return gm->lm_loss(sids, targets, scale, g) * scale; });
  save_model(*model, tmp / "s");
  const auto back = load_language_model(ModelDir::open(tmp / "s"));
  const Tensor s_ids = Tensor::from_ids(sids);
  EXPECT_EQ(back->forward(s_ids, {}).logits.to_vector(), model->forward(s_ids, {}).logits.to_vector());
  EXPECT_THROW(model->forward(Tensor::from_ids(ids_of(17, 0, 12, 8)), {}), Error);  // past the Hyena blocks' max_seq_len
}
