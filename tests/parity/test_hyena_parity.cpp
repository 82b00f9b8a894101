// HyenaDNA against the official Hugging Face port (../shared/fixtures): hyena_tiny (L = 2048) and
// hyena_tiny_short (L = 500, same weights: the filter must come from the max_seq_len grid).
#include "core/families/family.h"
#include "core/models/layer_model.h"
#include "tests/parity/parity.h"

#include <fmt/format.h>

using namespace longseq;
using namespace longseq::testing;

namespace {
void check_case(const std::filesystem::path& dir, size_t cache_bytes) {
  auto model = load_language_model(ModelDir::open(dir));
  dynamic_cast<LayerLanguageModel&>(*model).set_cache_bytes(cache_bytes);
  const auto io = SafetensorsFile::open(dir / "io.safetensors");
  const Tensor ids = io.view("input_ids").select(0, 0);
  std::printf("%s (spectrum cache %s):\n", dir.filename().c_str(), cache_bytes ? "on" : "off");
  ForwardOutputs out = model->forward(ids, {.hidden = true});
  if (cache_bytes) out = model->forward(ids, {.hidden = true});  // the second run of a length uses the cache
  expect_parity(out.logits.unsqueeze(0), io, "logits");
  expect_parity(out.final_hidden.unsqueeze(0), io, "final_hidden");
  for (int64_t i = 0; i < model->n_layer(); ++i) expect_parity(out.hidden[size_t(i)].unsqueeze(0), io, fmt::format("hidden_{}", i));
  for (const auto& [name, t] : out.extra)
    if (name == "filter_k_0") expect_parity(t, io, name);
}
}  // namespace

TEST(HyenaParity, TinyModel) {
  LONGSEQ_REQUIRE_FIXTURE(dir, "hyena_tiny");
  check_case(dir, size_t(1) << 30);
  check_case(dir, 0);
}

TEST(HyenaParity, ShortInputUsesMaxSeqLenGrid) {
  LONGSEQ_REQUIRE_FIXTURE(dir, "hyena_tiny_short");
  check_case(dir, size_t(1) << 30);
}
