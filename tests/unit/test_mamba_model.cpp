// The Mamba-1 model against the float64 oracle (always runs, no fixtures needed): random shapes, odd
// lengths, L = 1; chunked streaming equals one pass; save/load and the Hugging Face layout give the
// same model; broken checkpoints give errors naming the tensor.
#include "core/families/mamba_config.h"
#include "tests/oracles.h"
#include "tests/testing.h"

#include <fstream>

using namespace longseq;
using namespace longseq::testing;

namespace {

MambaConfig small_config(int64_t d_model, int64_t n_layer, int64_t vocab, int64_t N) {
  MambaConfig c;
  c.d_model = d_model;
  c.n_layer = n_layer;
  c.vocab_size = vocab;
  c.padded_vocab = round_up_multiple(vocab, 8);
  c.d_state = N;
  c.d_inner = 2 * d_model;
  c.dt_rank = (d_model + 15) / 16;
  return c;
}

std::map<std::string, std::vector<float>> param_map(const LanguageModel& m) {
  std::map<std::string, std::vector<float>> p;
  for (const auto& [k, v] : named_parameters(m)) p[k] = v.to_vector();
  return p;
}

Tensor random_ids(int64_t L, int64_t V, uint64_t seed) {
  Tensor ids = Tensor::empty({L}, DType::I64);
  Rng rng(seed);
  for (int64_t i = 0; i < L; ++i) ids.data<int64_t>()[i] = int64_t(rng.below(uint64_t(V)));
  return ids;
}

std::vector<int64_t> as_vec(const Tensor& ids) { return {ids.data<int64_t>(), ids.data<int64_t>() + ids.numel()}; }

}  // namespace

TEST(MambaModel, MatchesFloat64Oracle) {
  struct Case {
    int64_t d, layers, V, N, L;
  };
  for (const Case& c : {Case{16, 1, 12, 16, 1}, Case{24, 2, 10, 8, 37}, Case{40, 3, 12, 16, 101}, Case{8, 2, 5, 4, 64}}) {
    const MambaConfig cfg = small_config(c.d, c.layers, c.V, c.N);
    const auto model = random_mamba(cfg, uint64_t(c.d * 7 + c.L));
    const Tensor ids = random_ids(c.L, c.V, 3);
    const auto ref = mamba_oracle(cfg, param_map(*model), as_vec(ids));
    const auto got = model->forward(ids, {.chunk = 4096}).logits.to_vector();
    const ErrorStats e = compare(got, ref);
    EXPECT_LE(e.max_abs, 1e-5 * std::max(1.0, e.max_ref)) << "d" << c.d << " L" << c.L;
    EXPECT_LE(e.rel_l2, 1e-5) << "d" << c.d << " L" << c.L;
  }
}

TEST(MambaModel, LayerNormVariantMatchesOracle) {
  MambaConfig cfg = small_config(24, 2, 12, 16);
  cfg.rms_norm = false;
  cfg.tie_embeddings = false;
  const auto model = random_mamba(cfg, 21);
  // Give the LayerNorm biases and the untied head non-trivial values through a save/edit/load cycle.
  TempDir dir;
  model->save(dir / "m");
  auto params = named_parameters(*model);
  for (auto& [name, t] : params)
    if (name.ends_with(".bias") && name.find("norm") != std::string::npos)
      t = Tensor::from_vector(random_vector(size_t(t.numel()), 77), t.shape());
  write_safetensors(dir / "m/model.safetensors", params);
  const auto loaded = load_language_model(ModelDir::open(dir / "m"));
  const Tensor ids = random_ids(29, 12, 5);
  const ErrorStats e = compare(loaded->forward(ids, {}).logits.to_vector(), mamba_oracle(cfg, param_map(*loaded), as_vec(ids)));
  EXPECT_LE(e.max_abs, 1e-5 * std::max(1.0, e.max_ref));
  EXPECT_LE(e.rel_l2, 1e-5);
}

TEST(MambaModel, ChunkedStreamingEqualsOnePass) {
  const auto model = random_mamba(small_config(32, 2, 12, 16), 5);
  const Tensor ids = random_ids(203, 12, 9);
  const auto whole = model->forward(ids, {.hidden = true, .chunk = 4096});
  for (int64_t chunk : {1, 2, 7, 64, 202}) {
    const auto part = model->forward(ids, {.hidden = true, .chunk = chunk});
    const ErrorStats e = compare(part.logits.to_vector(), whole.logits.to_vector());
    EXPECT_LE(e.max_abs, 2e-6 * std::max(1.0, e.max_ref)) << "chunk " << chunk;
    for (size_t k = 0; k < whole.extra.size(); ++k)
      EXPECT_LE(compare(part.extra[k].second.to_vector(), whole.extra[k].second.to_vector()).max_abs, 2e-6) << whole.extra[k].first;
    // stream_logits pulls ids chunk by chunk and must give the same rows.
    std::vector<float> streamed;
    model->stream_logits(ids, chunk, [&](int64_t start, const Tensor& lg) {
      EXPECT_EQ(start, int64_t(streamed.size()) / model->vocab_size());
      const auto v = lg.to_vector();
      streamed.insert(streamed.end(), v.begin(), v.end());
    });
    EXPECT_EQ(streamed, part.logits.to_vector()) << "chunk " << chunk;
    // stream_hidden carries the states between chunks too: the rows of the blocks asked for (in the
    // order asked; n_layer() is the final state) are forward's at the same chunking.
    const std::vector<int64_t> blocks = {model->n_layer(), 0, 1, 0};
    std::vector<std::vector<float>> rows(blocks.size());
    model->stream_hidden(ids.size(0), [&](int64_t start, Tensor& out) { out.copy_from(ids.slice(0, start, out.size(0))); }, chunk,
                         blocks, [&](int64_t start, std::span<const Tensor> states) {
                           ASSERT_EQ(states.size(), blocks.size());
                           for (size_t k = 0; k < blocks.size(); ++k) {
                             EXPECT_EQ(start * model->d_model(), int64_t(rows[k].size()));
                             const auto v = states[k].to_vector();
                             rows[k].insert(rows[k].end(), v.begin(), v.end());
                           }
                         });
    for (size_t k = 0; k < blocks.size(); ++k) {
      const Tensor& want = blocks[k] == model->n_layer() ? part.final_hidden : part.hidden[size_t(blocks[k])];
      EXPECT_EQ(rows[k], want.to_vector()) << "chunk " << chunk << " block " << blocks[k];
    }
  }
  EXPECT_THROW(model->stream_hidden(3, [](int64_t, Tensor&) {}, 4, std::vector<int64_t>{3}, [](int64_t, std::span<const Tensor>) {}),
               Error);
}

TEST(MambaModel, DecoderCarriesTheStateAndEqualsTheWindowDecoder) {
  // Generation's decoder: a prompt then single tokens give forward's logit rows; the streaming
  // decoder (state carried) and the default one (window re-run) agree.
  const auto model = random_mamba(small_config(32, 2, 12, 16), 8);
  const Tensor ids = random_ids(40, 12, 4);
  const auto whole = model->forward(ids, {}).logits;
  const std::span<const int64_t> all(ids.data<int64_t>(), 40);
  auto streaming = model->decoder();
  auto window = model->LanguageModel::decoder();
  for (int64_t t = 25; t <= 40; ++t) {
    const auto part = t == 25 ? all.first(25) : all.subspan(size_t(t - 1), 1);
    const auto a = streaming->feed(part), b = window->feed(part);
    const ErrorStats e = compare(a, whole.select(0, t - 1).to_vector()), f = compare(a, b);
    EXPECT_LE(e.max_abs, 2e-6 * std::max(1.0, e.max_ref)) << t;
    EXPECT_LE(f.max_abs, 2e-6 * std::max(1.0, f.max_ref)) << t;
  }
}

TEST(MambaModel, SaveLoadAndHuggingFaceLayout) {
  TempDir dir;
  const auto model = random_mamba(small_config(32, 2, 12, 16), 8);
  model->save(dir / "ss");
  const Tensor ids = random_ids(50, 12, 4);
  const auto want = model->forward(ids, {}).logits.to_vector();
  EXPECT_EQ(load_language_model(ModelDir::open(dir / "ss"))->forward(ids, {}).logits.to_vector(), want);

  // The same weights in the transformers MambaForCausalLM layout.
  std::filesystem::create_directories(dir / "hf");
  std::ofstream(dir / "hf/config.json") << R"({"model_type": "mamba", "hidden_size": 32, "num_hidden_layers": 2,
      "vocab_size": 16, "state_size": 16, "conv_kernel": 4, "expand": 2, "intermediate_size": 64, "time_step_rank": 2,
      "layer_norm_epsilon": 1e-5, "use_conv_bias": true, "use_bias": false, "tie_word_embeddings": true})";
  auto params = named_parameters(*model);
  params.front().first = "backbone.embeddings.weight";
  write_safetensors(dir / "hf/model.safetensors", params);
  const auto hf = load_language_model(ModelDir::open(dir / "hf"));
  EXPECT_EQ(summarize_model(ModelDir::open(dir / "hf")).format, "huggingface");
  EXPECT_EQ(hf->forward(ids, {}).logits.to_vector(), want);
}

TEST(MambaModel, BrokenCheckpointsNameTheTensor) {
  TempDir dir;
  const auto model = random_mamba(small_config(16, 2, 12, 8), 2);
  model->save(dir / "m");
  const auto params = named_parameters(*model);
  auto expect_error = [&](std::vector<std::pair<std::string, Tensor>> p, const std::string& needle) {
    write_safetensors(dir / "m/model.safetensors", p);
    try {
      load_language_model(ModelDir::open(dir / "m"));
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto missing = params;
  missing.erase(missing.begin() + 5);
  expect_error(missing, "missing tensor '" + params[5].first + "'");
  auto extra = params;
  extra.emplace_back("backbone.layers.9.mixer.A_log", Tensor::zeros({2}));
  expect_error(extra, "unexpected tensor 'backbone.layers.9.mixer.A_log'");
  auto wrong = params;
  wrong[3].second = Tensor::zeros({3, 3});
  expect_error(wrong, "'" + params[3].first + "' has shape [3, 3]");
}

TEST(MambaModel, TokenOutsideVocabularyIsAnError) {
  const auto model = random_mamba(small_config(16, 1, 12, 8), 1);
  Tensor ids = random_ids(10, 12, 1);
  ids.data<int64_t>()[4] = 99;
  EXPECT_THROW(model->forward(ids, {}), Error);
}
