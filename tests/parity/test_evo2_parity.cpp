// Evo 2 (StripedHyena 2) against the official ArcInstitute/evo2 + vortex code run on the CPU
// (../shared/fixtures/evo2_tiny, README "Evo 2"): logits, the residual stream after every block at
// the stored positions, and a cached decode (prefill 1,000 tokens, then 16 single steps), loaded
// from the released-layout model.safetensors and model.pt, with parity.h's rule per tensor. Chunked
// prefill (37, 512 tokens) is checked against the whole window.
#include "core/families/family.h"
#include "core/models/layer_model.h"
#include "tests/parity/parity.h"
#include "tests/testing.h"

#include "core/ops/gemm.h"
#include "core/ops/ops.h"
#include "core/train/grad_model.h"

#include <fmt/format.h>

#include <cstring>

using namespace longseq;
using namespace longseq::testing;

namespace {

// A folder holding the fixture's config.json beside one weights file (model.pt or model.safetensors).
std::filesystem::path folder_with(const TempDir& tmp, const std::filesystem::path& fixture, const std::string& weights) {
  const auto dir = tmp.path() / weights;
  std::filesystem::create_directories(dir);
  std::filesystem::create_symlink(fixture / "config.json", dir / "config.json");
  std::filesystem::create_symlink(fixture / weights, dir / weights);
  return dir;
}

// Rows `positions` of x (L, d) as (1, P, d).
Tensor rows_at(const Tensor& x, const Tensor& positions) {
  const Tensor pos = positions.to(DType::I64);
  const int64_t P = pos.numel(), d = x.size(1);
  Tensor out = Tensor::empty({1, P, d});
  for (int64_t i = 0; i < P; ++i) out.select(0, 0).select(0, i).copy_from(x.select(0, pos.data<int64_t>()[i]));
  return out;
}

void expect_evo2_parity(const std::filesystem::path& dir) {
  const auto model = load_language_model(ModelDir::open(dir));
  EXPECT_EQ(model->family(), "stripedhyena2");
  const auto io = SafetensorsFile::open(dir / "../io.safetensors");
  const Tensor ids = io.view("input_ids").select(0, 0).to(DType::I64);
  const ForwardOutputs out = model->forward(ids, {.hidden = true});
  expect_parity(out.logits.unsqueeze(0), io, "logits");
  const Tensor positions = io.view("hidden_positions");
  for (int64_t i = 0; i < model->n_layer(); ++i) expect_parity(rows_at(out.hidden[size_t(i)], positions), io, fmt::format("hidden_{}", i));
}

}  // namespace

TEST(Evo2Parity, TinyFromSafetensorsAndPt) {
  LONGSEQ_REQUIRE_FIXTURE(fixture, "evo2_tiny");
  TempDir tmp;
  // io.safetensors is read from the folder's parent: link it there.
  std::filesystem::create_symlink(fixture / "io.safetensors", tmp.path() / "io.safetensors");
  for (const char* weights : {"model.safetensors", "model.pt"}) {
    SCOPED_TRACE(weights);
    std::printf(" from %s\n", weights);
    expect_evo2_parity(folder_with(tmp, fixture, weights));
  }
}

TEST(Evo2Parity, TinyCachedDecode) {
  // The official Generator's path: prefill 1,000 tokens (KV caches, FIR states, the hcl modal state
  // from the prefill), then one token at a time.
  LONGSEQ_REQUIRE_FIXTURE(fixture, "evo2_tiny");
  const auto model = load_language_model(ModelDir::open(fixture));
  const auto& lm = dynamic_cast<const LayerLanguageModel&>(*model);
  const auto io = SafetensorsFile::open(fixture / "io.safetensors");
  const Tensor ids = io.view("input_ids").select(0, 0).to(DType::I64);
  const int64_t prefill = io.view("decode_prefill_len").to(DType::I64).data<int64_t>()[0], V = model->vocab_size(), steps = 16;
  ASSERT_EQ(prefill, 1000);
  auto seq = lm.start();
  const std::span<const int64_t> all(ids.data<int64_t>(), size_t(ids.numel()));
  seq.run(all.subspan(0, size_t(prefill)), nullptr);
  Tensor decoded = Tensor::empty({1, steps, V});
  for (int64_t k = 0; k < steps; ++k) seq.run(all.subspan(size_t(prefill + k), 1), decoded.data<float>() + k * V);
  expect_parity(decoded, io, "decode_logits");
}

TEST(Evo2Parity, ChunkedPrefillEqualsTheWholeWindow) {
  // Chunks of 37 and 512 tokens carry every state (KV caches, FIR and modal states, stored as float
  // between chunks) across their boundaries: each run meets the parity rule, and differs from the
  // whole window by less than the official float32 run's own error.
  LONGSEQ_REQUIRE_FIXTURE(fixture, "evo2_tiny");
  const auto model = load_language_model(ModelDir::open(fixture));
  const auto io = SafetensorsFile::open(fixture / "io.safetensors");
  const Tensor ids = io.view("input_ids").select(0, 0).to(DType::I64);
  const auto whole = model->forward(ids, {.chunk = ids.numel()}).logits.to_vector();
  const double official = compare(io.load_f32("logits_f32").to_vector(), io.load_f32("logits").to_vector()).max_abs;
  for (const int64_t chunk : {37, 512}) {
    const Tensor logits = model->forward(ids, {.chunk = chunk}).logits;
    expect_parity(logits.unsqueeze(0), io, "logits");
    const ErrorStats e = compare(logits.to_vector(), std::vector<double>(whole.begin(), whole.end()));
    std::printf("  chunk %4lld vs whole: max_abs %.3e rel_l2 %.3e\n", static_cast<long long>(chunk), e.max_abs, e.rel_l2);
    EXPECT_LE(e.max_abs, official) << "chunk " << chunk;
  }
}

TEST(Evo2Parity, Bf16KeptWeightsGiveTheBitsOfFloatOnes) {
  // The released linear weights stay bf16 in memory (half their fp32 size) and are widened per GEMM
  // tile: the logits are the same bits as those of the model's float copy. Saving writes them back
  // bf16, byte for byte as released (the Wqkv and projection rows restored to the file's layout).
  LONGSEQ_REQUIRE_FIXTURE(fixture, "evo2_tiny");
  const auto model = load_language_model(ModelDir::open(fixture));
  const auto& lm = dynamic_cast<const LayerLanguageModel&>(*model);
  ASSERT_TRUE(lm.layers().holds_bf16());
  const auto f32 = std::make_shared<LayerLanguageModel>(family_of(ModelDir::open(fixture).config).trainable_f32(*model), lm.max_length());
  EXPECT_FALSE(f32->layers().holds_bf16());
  EXPECT_EQ(f32->layers().parameter_count(), lm.layers().parameter_count());
  EXPECT_LT(lm.layers().weights().size(), f32->layers().weights().size() / 2);
  const auto io = SafetensorsFile::open(fixture / "io.safetensors");
  const Tensor ids = io.view("input_ids").select(0, 0).to(DType::I64);
  const auto a = model->forward(ids, {.chunk = 300}).logits.to_vector(), b = f32->forward(ids, {.chunk = 300}).logits.to_vector();
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  TempDir tmp;
  save_model(*model, tmp.path());
  const auto released = SafetensorsFile::open(fixture / "model.safetensors"), saved = SafetensorsFile::open(tmp.path() / "model.safetensors");
  int64_t kept = 0;
  for (const auto& t : released.tensors()) {
    SCOPED_TRACE(t.name);
    const Tensor r = released.view(t.name), s = saved.view(t.name);
    ASSERT_EQ(s.shape(), r.shape());
    EXPECT_EQ(s.to_vector(), r.to_vector());
    if (s.dtype() == DType::BF16) {
      ++kept;
      EXPECT_EQ(std::memcmp(s.contiguous().raw(), r.contiguous().raw(), r.nbytes()), 0);
    }
  }
  EXPECT_EQ(kept, int64_t(lm.layers().bf16_weights().size()));
}

TEST(Evo2Parity, MatmulBf16StaysNearTheOfficialLogits) {
  // `--matmul bf16` (activations and weights rounded to bf16 in the CPU's matrix products, sums in
  // fp32) is approximate by design: it is not held to the fp32 parity bound but to the official
  // code's own bf16 mode, which the fixture README measures 3.3 off these logits (VORTEX_PREC=native);
  // switching back restores fp32 parity.
  if (!ops::gemm_bf16_products_supported()) GTEST_SKIP() << "no AVX512_BF16 in this build/CPU";
  LONGSEQ_REQUIRE_FIXTURE(fixture, "evo2_tiny");
  const auto model = load_language_model(ModelDir::open(fixture));
  const auto io = SafetensorsFile::open(fixture / "io.safetensors");
  const Tensor ids = io.view("input_ids").select(0, 0).to(DType::I64);
  ops::set_matmul(ops::Matmul::bf16);
  const auto got = model->forward(ids, {}).logits.contiguous().to_vector();
  ops::set_matmul(ops::Matmul::fp32);
  const auto ref = io.load_f32("logits").to_vector(), official = io.load_f32("logits_f32").to_vector();
  const ErrorStats e = compare(got, ref), o = compare(official, ref);
  std::printf("  logits, --matmul bf16  max_abs %.3e (official f32 %.3e)  rel_l2 %.3e\n", e.max_abs, o.max_abs, e.rel_l2);
  EXPECT_GT(e.max_abs, 2 * o.max_abs);  // the bf16 rounding shows: this is not the fp32 path
  EXPECT_LT(e.max_abs, 3.3);
  expect_parity(model->forward(ids, {}).logits.unsqueeze(0), io, "logits");
}
