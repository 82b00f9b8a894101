// HyenaDNA model against the float64 oracle (direct long convolution), channel-blocked vs whole
// mixer, save/load, recomputed positional buffers, and length errors.
#include "core/families/family.h"
#include "core/families/hyena_config.h"
#include "core/models/windows.h"
#include "core/nn/hyena_window.h"
#include "core/train/grad_model.h"
#include "tests/oracles.h"
#include "tests/testing.h"

using namespace longseq;
using namespace longseq::testing;

namespace {
HyenaConfig small(int64_t d, int64_t layers, int64_t max_len) {
  HyenaConfig c;
  c.d_model = d;
  c.n_layer = layers;
  c.d_inner = 4 * d;
  c.vocab_size = 12;
  c.padded_vocab = 16;
  c.max_seq_len = max_len;
  c.filter_order = 16;
  c.activation_freq = 10;
  return c;
}

Tensor ids_of(int64_t L, uint64_t seed) {
  Tensor ids = Tensor::empty({L}, DType::I64);
  Rng rng(seed);
  for (int64_t i = 0; i < L; ++i) ids.data<int64_t>()[i] = 7 + int64_t(rng.below(5));
  return ids;
}

std::map<std::string, std::vector<float>> params(const LanguageModel& m) {
  std::map<std::string, std::vector<float>> p;
  for (const auto& [k, v] : named_parameters(m)) p[k] = v.to_vector();
  return p;
}

// The first layer's long filter (d, L) as forward reports it (the fixtures' filter_k_0).
Tensor filter_k(const LanguageModel& m, const Tensor& ids, int64_t layer) {
  for (const auto& [name, t] : m.forward(ids, {.hidden = true}).extra)
    if (name == "filter_k_" + std::to_string(layer)) return t;
  ADD_FAILURE() << "no filter_k_" << layer;
  return {};
}
}  // namespace

TEST(HyenaModel, MatchesFloat64Oracle) {
  for (auto [d, layers, L] : {std::tuple<int64_t, int64_t, int64_t>{8, 1, 1}, {16, 2, 37}, {24, 2, 130}}) {
    const HyenaConfig c = small(d, layers, 160);
    const auto model = random_hyena(c, uint64_t(d + L));
    const Tensor ids = ids_of(L, 3);
    const auto ref = hyena_oracle(c, params(*model), std::vector<int64_t>(ids.data<int64_t>(), ids.data<int64_t>() + L));
    const ErrorStats e = compare(model->forward(ids, {}).logits.to_vector(), ref);
    EXPECT_LE(e.max_abs, 1e-5 * std::max(1.0, e.max_ref)) << "d" << d << " L" << L;
    EXPECT_LE(e.rel_l2, 1e-5) << "d" << d << " L" << L;
  }
}

TEST(HyenaModel, ChannelBlocksAndCacheDoNotChangeResults) {
  auto model = random_hyena(small(40, 2, 600), 9);
  const Tensor ids = ids_of(555, 4);
  const auto want = model->forward(ids, {}).logits.to_vector();
  EXPECT_EQ(model->forward(ids, {}).logits.to_vector(), want);  // second run: cached spectra
  model->set_cache_bytes(0);
  nn::set_hyena_channel_block(12);  // 4 blocks, the last one short
  const auto blocked = model->forward(ids, {}).logits.to_vector();
  EXPECT_LE(compare(blocked, want).max_abs, 1e-6);
  std::vector<float> streamed;
  model->stream_logits(ids, 100, [&](int64_t, const Tensor& lg) {
    const auto v = lg.to_vector();
    streamed.insert(streamed.end(), v.begin(), v.end());
  });
  nn::set_hyena_channel_block(0);
  EXPECT_EQ(streamed, blocked);
}

TEST(HyenaModel, SaveLoadAndRecomputedBuffers) {
  TempDir dir;
  const auto model = random_hyena(small(16, 2, 300), 5);
  model->save(dir / "h");
  const Tensor ids = ids_of(200, 8);
  const auto want = model->forward(ids, {}).logits.to_vector();
  EXPECT_EQ(load_language_model(ModelDir::open(dir / "h"))->forward(ids, {}).logits.to_vector(), want);
  // Without the stored t / deltas buffers the port's own construction is used: same model.
  auto p = named_parameters(*model);
  std::erase_if(p, [](const auto& kv) { return kv.first.ends_with("pos_emb.t") || kv.first.ends_with("modulation.deltas"); });
  write_safetensors(dir / "h/model.safetensors", p);
  const auto rebuilt = load_language_model(ModelDir::open(dir / "h"));
  const auto notes = summarize_model(ModelDir::open(dir / "h")).notes;
  EXPECT_TRUE(std::any_of(notes.begin(), notes.end(), [](const std::string& n) { return n.find("recomputed") != std::string::npos; }));
  EXPECT_LE(compare(rebuilt->forward(ids, {}).logits.to_vector(), want).max_abs, 1e-6);
}

TEST(HyenaModel, LongerThanMaxSeqLenIsAnError) {
  const auto model = random_hyena(small(8, 1, 64), 1);
  try {
    model->forward(ids_of(65, 1), {});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_seq_len 64"), std::string::npos) << e.what();
  }
}

TEST(HyenaModel, StreamHiddenHandsOutTheWholeWindowsRowsInChunks) {
  // A long convolution sees the whole window: stream_hidden runs it once and hands out forward's rows.
  const auto model = random_hyena(small(16, 2, 300), 4);
  const Tensor ids = ids_of(131, 2);
  const auto whole = model->forward(ids, {.hidden = true});
  for (int64_t chunk : {int64_t(1), int64_t(50), int64_t(131), int64_t(4096)}) {
    std::vector<float> last, first;
    model->stream_hidden(ids.size(0), [&](int64_t start, Tensor& out) { out.copy_from(ids.slice(0, start, out.size(0))); }, chunk,
                         std::vector<int64_t>{2, 1}, [&](int64_t, std::span<const Tensor> s) {
                           const auto a = s[0].to_vector(), b = s[1].to_vector();
                           last.insert(last.end(), a.begin(), a.end());
                           first.insert(first.end(), b.begin(), b.end());
                         });
    EXPECT_EQ(last, whole.final_hidden.to_vector()) << chunk;
    EXPECT_EQ(first, whole.hidden[1].to_vector()) << chunk;
  }
}

TEST(HyenaModel, DecoderRerunsTheLastMaxLengthTokens) {
  // A whole-window model decodes by re-running its window; past max_seq_len, the last max_seq_len
  // tokens (here 64) are the window.
  const auto model = random_hyena(small(8, 1, 64), 3);
  const Tensor ids = ids_of(70, 5);
  auto decoder = model->decoder();
  const std::span<const int64_t> all(ids.data<int64_t>(), 70);
  decoder->feed(all.first(60));
  for (int64_t t = 60; t < 70; ++t) {
    const auto got = decoder->feed(all.subspan(size_t(t), 1));
    const int64_t from = std::max<int64_t>(0, t + 1 - 64);
    const Tensor window = model->forward(ids.slice(0, from, t + 1 - from), {}).logits;
    EXPECT_EQ(got, window.select(0, window.size(0) - 1).to_vector()) << t;
  }
}

TEST(HyenaModel, WindowedLogitsGiveEveryRowOnceFromItsWindow) {
  EXPECT_EQ(window_starts(10, 4, 1), (std::vector<int64_t>{0, 3, 6}));
  EXPECT_EQ(window_starts(4, 4, 1), (std::vector<int64_t>{0}));
  EXPECT_EQ(window_starts(5, 4, 0), (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(window_starts(1, 1, 0), (std::vector<int64_t>{0}));
  EXPECT_THROW(window_starts(10, 4, 4), Error);
  // max_seq_len 64: 157 tokens in windows of 64 overlapping by 20 (and of 33 by 0, odd sizes); each
  // row equals the logits of the window it comes from, which gives it >= C tokens of left context.
  const auto model = random_hyena(small(8, 1, 64), 6);
  const Tensor ids = ids_of(157, 9);
  for (auto [W, C, chunk] : {std::tuple<int64_t, int64_t, int64_t>{64, 20, 4096}, {33, 0, 7}, {64, 63, 5}}) {
    const auto starts = window_starts(157, W, C);
    std::vector<float> got;
    stream_logits_windowed(*model, 157, [&](int64_t start, Tensor& part) { part.copy_from(ids.slice(0, start, part.size(0))); }, W, C,
                           chunk, [&](int64_t start, const Tensor& lg) {
                             EXPECT_EQ(start * model->vocab_size(), int64_t(got.size()));
                             const auto v = lg.to_vector();
                             got.insert(got.end(), v.begin(), v.end());
                           });
    ASSERT_EQ(int64_t(got.size()), 157 * model->vocab_size());
    int64_t done = 0;
    for (int64_t s : starts) {
      const int64_t n = std::min<int64_t>(W, 157 - s);
      const auto want = model->forward(ids.slice(0, s, n), {}).logits.to_vector();
      for (int64_t t = done; t < s + n; ++t) {
        EXPECT_TRUE(t == 0 || t - s >= C || s == 0) << t;  // the context promised
        for (int64_t v = 0; v < model->vocab_size(); ++v)
          EXPECT_NEAR(got[size_t(t * model->vocab_size() + v)], want[size_t((t - s) * model->vocab_size() + v)], 1e-5) << W << " " << t;
      }
      done = s + n;
    }
  }
  EXPECT_THROW(stream_logits_windowed(*model, 100, [](int64_t, Tensor&) {}, 65, 1, 4096, [](int64_t, const Tensor&) {}), Error);
  // Hidden states the same way: the final state and block 0, each row from its window.
  const std::vector<int64_t> blocks = {model->n_layer(), 0};
  std::vector<std::vector<float>> got(2);
  stream_hidden_windowed(*model, 157, [&](int64_t start, Tensor& part) { part.copy_from(ids.slice(0, start, part.size(0))); }, 64, 20,
                         9, blocks, [&](int64_t start, std::span<const Tensor> s) {
                           EXPECT_EQ(start * model->d_model(), int64_t(got[0].size()));
                           for (size_t k = 0; k < 2; ++k) {
                             const auto v = s[k].to_vector();
                             got[k].insert(got[k].end(), v.begin(), v.end());
                           }
                         });
  int64_t done = 0;
  for (int64_t s : window_starts(157, 64, 20)) {
    const int64_t n = std::min<int64_t>(64, 157 - s);
    const auto f = model->forward(ids.slice(0, s, n), {.hidden = true});
    const auto fin = f.final_hidden.to_vector(), h0 = f.hidden[0].to_vector();
    const size_t d = size_t(model->d_model());
    for (int64_t t = done; t < s + n; ++t)
      for (size_t j = 0; j < d; ++j) {
        EXPECT_EQ(got[0][size_t(t) * d + j], fin[size_t(t - s) * d + j]) << t;
        EXPECT_EQ(got[1][size_t(t) * d + j], h0[size_t(t - s) * d + j]) << t;
      }
    done = s + n;
  }
}

TEST(HyenaModel, FixtureBuffersMatchThePortsConstruction) {
  LONGSEQ_REQUIRE_FIXTURE(dir, "hyena_tiny");
  // pos_emb.t and modulation.deltas keep their exact init values in the fixture: rebuilding them from
  // the config must reproduce them.
  const auto stored = load_language_model(ModelDir::open(dir));
  const auto w = SafetensorsFile::open(dir / "model.safetensors");
  auto p = std::vector<std::pair<std::string, Tensor>>{};
  for (const auto& t : w.tensors())
    if (!t.name.ends_with("pos_emb.t") && !t.name.ends_with("modulation.deltas")) p.emplace_back(t.name, w.view(t.name));
  TempDir tmp;
  std::filesystem::create_directories(tmp / "m");
  std::filesystem::copy_file(dir / "config.json", tmp / "m/config.json");
  write_safetensors(tmp / "m/model.safetensors", p);
  const auto rebuilt = load_language_model(ModelDir::open(tmp / "m"));
  const Tensor ids = ids_of(2048, 1);
  const ErrorStats e = compare(filter_k(*rebuilt, ids, 1).to_vector(), filter_k(*stored, ids, 1).to_vector());
  EXPECT_LE(e.max_abs, 1e-7 * std::max(1.0, e.max_ref));
}

TEST(HyenaModel, CpuWindowScheduleEqualsThePlainLayer) {
  // The channel-blocked CPU schedule (Layer::infer_window) against the layer's plain forward on the
  // same backend: blocks of 12 over d = 40 (the last short), odd lengths, L = 1.
  const auto model = random_hyena(small(40, 1, 600), 13);
  const auto g = train::make_grad_model<float>(*model);
  const auto& step = g->steps().at(0);
  auto be = nn::cpu_backend<float>();
  const nn::Params<float> p{g->weights().data(), nullptr, g->weights().data()};
  for (int64_t L : {int64_t(1), int64_t(97), int64_t(555)}) {
    for (int64_t block : {int64_t(0), int64_t(12)}) {
      nn::set_hyena_channel_block(block);
      const std::vector<float> x = random_vector(size_t(L * 40), uint64_t(L));
      std::vector<float> normed(x.size()), plain(x.size()), fused(x.size());
      nn::Arena<float> a(*be), w(*be);
      nn::Derived<float> derived(*be);
      step.norm->forward(*be, p, mat(x.data(), L, 40), mat(normed.data(), L, 40), a);
      step.op->forward(*be, p, mat(normed.data(), L, 40), mat(plain.data(), L, 40), a);
      ASSERT_TRUE(step.op->infer_window(*be, p, *step.norm, mat(x.data(), L, 40), mat(fused.data(), L, 40), derived, w));
      const ErrorStats e = compare(fused, plain);
      EXPECT_LE(e.max_abs, 1e-5 * std::max(1.0, e.max_ref)) << "L " << L << " block " << block;
    }
  }
  nn::set_hyena_channel_block(0);
}
