// Caduceus on the layers (core/families/caduceus.cpp over core/nn/rc_layers.cpp): the inference
// model against the float64 oracle of the released code (tests/oracles.h) for PS (fused, as
// released, and unfused) and PH; reverse-complement equivariance of PS as a property of the
// outputs; windows longer than the mixers' inference block equal the training forward; gradients
// of every parameter against finite differences; save + load; the config errors.
#include "core/families/family.h"
#include "core/fileio.h"
#include "core/models/layer_model.h"
#include "core/random.h"
#include "core/train/grad_model.h"
#include "tests/oracles.h"
#include "tests/testing.h"
#include "tests/unit/grad_check.h"

#include <map>

using namespace longseq;
using namespace longseq::testing;

namespace {

nlohmann::json tiny_config(bool rcps, bool fused = true, bool rms = true) {
  nlohmann::json map = nlohmann::json::object();
  for (int v = 0; v < 16; ++v) map[std::to_string(v)] = v == 7 ? 10 : v == 10 ? 7 : v == 8 ? 9 : v == 9 ? 8 : v;
  return {{"model_type", "caduceus"}, {"d_model", 8}, {"n_layer", 2}, {"vocab_size", 12}, {"rcps", rcps},
          {"fused_add_norm", fused}, {"rms_norm", rms}, {"bidirectional", true}, {"bidirectional_strategy", "add"},
          {"bidirectional_weight_tie", true}, {"complement_map", map},
          {"ssm_cfg", {{"d_state", 4}, {"d_conv", 4}, {"expand", 2}, {"dt_rank", "auto"}}}};
}

CaduceusOracleConfig oracle_config(const nlohmann::json& j) {
  CaduceusOracleConfig c;
  c.m.d_model = j["d_model"];
  c.m.n_layer = j["n_layer"];
  c.m.vocab_size = 12;
  c.m.padded_vocab = 16;
  c.m.d_state = 4;
  c.m.d_inner = 16;
  c.m.dt_rank = 1;
  c.m.rms_norm = j["rms_norm"];
  c.rcps = j["rcps"];
  c.fused_add_norm = j["fused_add_norm"];
  for (int v = 0; v < 16; ++v) c.complement.push_back(j["complement_map"][std::to_string(v)]);
  return c;
}

std::vector<int64_t> dna_ids(int64_t L, uint64_t seed) {
  Rng rng(seed);
  std::vector<int64_t> ids(static_cast<size_t>(L));
  for (auto& i : ids) i = 7 + int64_t(rng.below(5));  // A C G T N
  return ids;
}

std::unique_ptr<LanguageModel> perturbed_model(const nlohmann::json& config, uint64_t seed) {
  const auto fresh = new_model_from_json(config, seed);
  auto g = train::make_grad_model<float>(*fresh);
  perturb(*g, seed + 1);
  TempDir tmp;
  g->save(tmp / "m");
  return load_language_model(ModelDir::open(tmp / "m"));
}

std::map<std::string, std::vector<float>> parameters(const LanguageModel& m) {
  std::map<std::string, std::vector<float>> p;
  for (const auto& [name, t] : named_parameters(m)) p[name] = t.to_vector();
  return p;
}

}  // namespace

TEST(CaduceusModel, MatchesTheFloat64OracleOfTheReleasedCode) {
  struct Case {
    const char* what;
    bool rcps, fused, rms;
  };
  for (const Case& c : {Case{"PS fused (released)", true, true, true}, Case{"PS unfused", true, false, true},
                        Case{"PH", false, true, true}, Case{"PH LayerNorm", false, true, false}}) {
    const nlohmann::json config = tiny_config(c.rcps, c.fused, c.rms);
    const auto model = perturbed_model(config, 11);
    for (int64_t L : {1, 2, 37}) {
      const auto ids = dna_ids(L, uint64_t(L));
      const auto want = caduceus_oracle(oracle_config(config), parameters(*model), ids);
      const auto got = model->forward(Tensor::from_ids(ids), {}).logits.to_vector();
      const auto e = compare(got, want);
      EXPECT_LE(e.max_abs, 2e-5 * std::max(1.0, e.max_ref)) << c.what << " L=" << L;
      EXPECT_LE(e.rel_l2, 1e-5) << c.what << " L=" << L;
      if (L == 37) std::printf("  %-20s L=%-3ld max_abs %.3e  rel_l2 %.3e\n", c.what, long(L), e.max_abs, e.rel_l2);
    }
  }
}

TEST(CaduceusModel, PsIsReverseComplementEquivariant) {
  // logits(rc(x))[t, v] = logits(x)[L - 1 - t, comp(v)], from the weights' sharing alone; PH has no
  // such property (checked to differ, so the test can fail).
  for (bool rcps : {true, false}) {
    const auto model = perturbed_model(tiny_config(rcps), 21);
    const int64_t L = 53, V = model->vocab_size();
    const auto ids = dna_ids(L, 5);
    std::vector<int64_t> rc(ids.rbegin(), ids.rend());
    for (auto& t : rc) t = t == 7 ? 10 : t == 10 ? 7 : t == 8 ? 9 : t == 9 ? 8 : t;
    const auto a = model->forward(Tensor::from_ids(ids), {}).logits.to_vector(), b = model->forward(Tensor::from_ids(rc), {}).logits.to_vector();
    const auto comp = [](int64_t v) -> int64_t { return v == 7 ? 10 : v == 10 ? 7 : v == 8 ? 9 : v == 9 ? 8 : v; };
    double max_abs = 0, max_ref = 0;
    for (int64_t t = 0; t < L; ++t)
      for (int64_t v = 0; v < V; ++v) {
        max_abs = std::max(max_abs, double(std::abs(b[size_t(t * V + v)] - a[size_t((L - 1 - t) * V + comp(v))])));
        max_ref = std::max(max_ref, double(std::abs(a[size_t(t * V + v)])));
      }
    std::printf("  %s: RC equivariance max_abs %.3e (logits up to %.3f)\n", rcps ? "PS" : "PH", max_abs, max_ref);
    if (rcps)
      EXPECT_LE(max_abs, 1e-5 * std::max(1.0, max_ref));
    else
      EXPECT_GT(max_abs, 1e-3);
  }
}

TEST(CaduceusModel, BothInferenceSchedulesEqualTheTrainingForward) {
  // Inference runs BiMamba's window whole (projections once) within a memory budget, else each
  // direction in 4,096-row blocks from a carried state; the training forward (float64) runs the
  // window in one piece. The logits of both schedules agree with each other and the losses with it.
  const auto model = perturbed_model(tiny_config(true), 31);
  auto g = train::make_grad_model<double>(*model);
  const int64_t budget = nn::bimamba_window_budget();
  for (int64_t L : {1, 4096, 4097, 9001}) {
    const auto ids = dna_ids(L, uint64_t(L));
    std::vector<int64_t> targets(ids.begin() + 1, ids.end());
    targets.push_back(L == 1 ? ids[0] : -1);
    const double want = g->lm_loss(ids, targets, 1.0, nullptr);
    nn::set_bimamba_window_budget(0);  // blocks
    const Tensor blocked = model->forward(Tensor::from_ids(ids), {}).logits;
    nn::set_bimamba_window_budget(budget);  // whole
    const Tensor whole = model->forward(Tensor::from_ids(ids), {}).logits;
    const auto e = compare(blocked.to_vector(), whole.to_vector());
    EXPECT_LE(e.max_abs, 2e-5 * std::max(1.0, e.max_ref)) << "L=" << L;
    for (const Tensor* t : {&blocked, &whole}) {
      const double got = L == 1 ? -sum_next_logprobs(*t, ids.data(), 1) : -sum_next_logprobs(*t, ids.data() + 1, L - 1);
      EXPECT_NEAR(got, want, 1e-5 * std::max(1.0, std::abs(want))) << "L=" << L;
    }
  }
}

TEST(CaduceusModel, GradientsMatchFiniteDifferences) {
  for (bool rcps : {true, false}) {
    const auto model = new_model_from_json(tiny_config(rcps, true, rcps), 41);
    auto gm = train::make_grad_model<double>(*model);
    perturb(*gm, 42);
    const auto ids = dna_ids(9, 43);
    std::vector<int64_t> targets(ids.size(), -1);
    for (size_t i = 0; i < ids.size(); i += 2) targets[i] = ids[(i + 3) % ids.size()];  // any targets: a masked-LM-like loss
    check_model_gradients(rcps ? "Caduceus-PS" : "Caduceus-PH", *gm, [&](double* g) { return gm->lm_loss(ids, targets, 1.0, g); }, 24);
  }
}

TEST(CaduceusModel, SaveLoadRoundTripKeepsTheReleasedLayout) {
  TempDir tmp;
  const auto model = new_model_from_json(tiny_config(true), 51);
  save_model(*model, tmp / "ps");
  const auto st = SafetensorsFile::open(tmp / "ps/model.safetensors");
  EXPECT_EQ(st.info("caduceus.backbone.embeddings.word_embeddings.complement_map").dtype, DType::I64);
  EXPECT_EQ(st.info("lm_head.complement_map").dtype, DType::I64);
  EXPECT_FALSE(st.contains("lm_head.lm_head.weight"));  // tied: stored once, as released
  EXPECT_FALSE(st.contains("caduceus.backbone.layers.0.mixer.submodule.mamba_rev.in_proj.weight"));
  const auto back = load_language_model(ModelDir::open(tmp / "ps"));
  const Tensor ids = Tensor::from_ids(dna_ids(17, 3));
  EXPECT_EQ(back->forward(ids, {}).logits.to_vector(), model->forward(ids, {}).logits.to_vector());
  EXPECT_EQ(summarize_model(ModelDir::open(tmp / "ps")).family, "caduceus");
}

TEST(CaduceusModel, ConfigErrorsNameTheKey) {
  const auto expect_error = [](nlohmann::json j, const std::string& key) {
    try {
      new_model_from_json(j, 1);
      ADD_FAILURE() << "accepted a bad " << key;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  nlohmann::json j = tiny_config(true);
  j.erase("complement_map");
  expect_error(j, "complement_map");
  j = tiny_config(true);
  j["complement_map"]["7"] = 8;  // 7 -> 8 -> 9: not an involution
  expect_error(j, "complement_map");
  j = tiny_config(false);
  j["bidirectional_strategy"] = "ew_multiply";
  expect_error(j, "bidirectional_strategy");
  j = tiny_config(true);
  j["bidirectional_weight_tie"] = false;
  expect_error(j, "bidirectional_weight_tie");
}
