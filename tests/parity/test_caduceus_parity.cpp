// Caduceus-PS and -PH against the official kuleshov-group/caduceus outputs (../shared/fixtures:
// logits, the residual stream after every block, the final normalised hidden states), with the same
// rule as every parity test (parity.h): max abs error <= 2 x the official float32 run's error +
// 1e-6, relative L2 error <= 1e-5, per tensor.
#include "core/families/family.h"
#include "tests/parity/parity.h"
#include "tests/testing.h"

#include <fmt/format.h>

using namespace longseq;
using namespace longseq::testing;

namespace {

void expect_caduceus_parity(const std::filesystem::path& dir) {
  const auto model = load_language_model(ModelDir::open(dir));
  EXPECT_EQ(model->family(), "caduceus");
  const auto io = SafetensorsFile::open(dir / "io.safetensors");
  const ForwardOutputs out = model->forward(io.view("input_ids").select(0, 0), {.hidden = true});
  expect_parity(out.logits.unsqueeze(0), io, "logits");
  expect_parity(out.final_hidden.unsqueeze(0), io, "final_hidden");
  for (int64_t i = 0; i < model->n_layer(); ++i) expect_parity(out.hidden[size_t(i)].unsqueeze(0), io, fmt::format("hidden_{}", i));
}

}  // namespace

TEST(CaduceusParity, PsTiny) {
  LONGSEQ_REQUIRE_FIXTURE(dir, "caduceus_ps_tiny");
  expect_caduceus_parity(dir);
}

TEST(CaduceusParity, PhTiny) {
  LONGSEQ_REQUIRE_FIXTURE(dir, "caduceus_ph_tiny");
  expect_caduceus_parity(dir);
}
