// Mamba-1 against the official mamba_ssm outputs (../shared/fixtures): the selective scan op alone
// (scan_op_small) and the whole model (mamba_tiny: logits, every hidden state, final states, one
// decode step). Rule: max abs error <= 2 x the official float32 run's error + 1e-6, and relative
// L2 error <= 1e-5, per tensor.
#include "core/families/family.h"
#include "core/models/layer_model.h"
#include "core/ops/ops.h"
#include "tests/parity/parity.h"
#include "tests/testing.h"

#include <fmt/format.h>

using namespace longseq;
using namespace longseq::testing;


TEST(MambaParity, ScanOpSmall) {
  LONGSEQ_REQUIRE_FIXTURE(dir, "scan_op_small");
  const auto io = SafetensorsFile::open(dir / "io.safetensors");
  auto btd = [&](const char* n) { return io.load_f32(n).transpose(1, 2).contiguous(); };  // (B, X, L) -> (B, L, X)
  const Tensor u = btd("u"), delta = btd("delta"), Bm = btd("B"), Cm = btd("C"), z = btd("z");
  const Tensor A = io.load_f32("A"), Dskip = io.load_f32("D"), bias = io.load_f32("delta_bias");
  const int64_t B = u.size(0), L = u.size(1), D = u.size(2), N = A.size(1);
  for (bool plain : {true, false}) {
    Tensor y = Tensor::empty({B, L, D}), state = Tensor::zeros({B, D, N});
    std::vector<float> saved(size_t(ops::scan_chunks(L, 256) * D * N));
    for (int64_t b = 0; b < B; ++b) {
      const auto rows = [&](const Tensor& t) { return mat<const float>(t.data<float>() + b * L * t.size(2), L, t.size(2)); };
      ops::selective_scan_forward<float>({.u = rows(u), .delta = rows(delta), .B = rows(Bm), .C = rows(Cm), .z = rows(z),
                                          .A = A.data<float>(), .Dskip = Dskip.data<float>(), .delta_bias = bias.data<float>(),
                                          .state = state.data<float>() + b * D * N},
                                         mat(y.data<float>() + b * L * D, L, D), plain ? saved.data() : nullptr);
    }
    std::printf("%s path:\n", plain ? "plain" : "SIMD");
    expect_parity(y.transpose(1, 2), io, "out");
    expect_parity(state, io, "last_state");
  }
}

TEST(MambaParity, TinyModel) {
  LONGSEQ_REQUIRE_FIXTURE(dir, "mamba_tiny");
  const ModelDir md = ModelDir::open(dir);
  const auto model = load_language_model(md);
  const auto io = SafetensorsFile::open(dir / "io.safetensors");
  const Tensor ids = io.view("input_ids").select(0, 0);
  for (int64_t chunk : {int64_t(4096), int64_t(333), int64_t(1)}) {
    std::printf("chunk %ld:\n", long(chunk));
    const ForwardOutputs out = model->forward(ids, {.hidden = true, .chunk = chunk});
    expect_parity(out.logits.unsqueeze(0), io, "logits");
    expect_parity(out.final_hidden.unsqueeze(0), io, "final_hidden");
    for (int64_t i = 0; i < model->n_layer(); ++i) expect_parity(out.hidden[size_t(i)].unsqueeze(0), io, fmt::format("hidden_{}", i));
    for (const auto& [name, t] : out.extra) expect_parity(t, io, name);
  }
}

TEST(MambaParity, DecodeStepFromStates) {
  LONGSEQ_REQUIRE_FIXTURE(dir, "mamba_tiny");
  const auto model = load_language_model(ModelDir::open(dir));
  const auto io = SafetensorsFile::open(dir / "io.safetensors");
  const auto& layers = dynamic_cast<const LayerLanguageModel&>(*model);
  LayerLanguageModel::Sequence seq = layers.start();
  const Tensor prompt = io.view("input_ids").select(0, 0).to(DType::I64), step = io.view("step_input_id").to(DType::I64);
  seq.run({prompt.data<int64_t>(), size_t(prompt.numel())}, nullptr);
  Tensor logits = Tensor::empty({1, model->vocab_size()});
  seq.run({step.data<int64_t>(), 1}, logits.data<float>());
  expect_parity(logits, io, "step_logits");
}
