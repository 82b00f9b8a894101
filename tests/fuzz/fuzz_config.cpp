// config.json: the JSON parser and both families' config parsers and checks.
#include "core/config.h"
#include "core/families/hyena_config.h"
#include "core/families/mamba_config.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  return longseq::fuzz::run_one([&] {
    const auto c = longseq::Config::parse(text, "fuzz/config.json");
    if (longseq::looks_like_hyena(c)) (void)longseq::parse_hyena_config(c);
    if (longseq::looks_like_mamba(c)) (void)longseq::parse_mamba_config(c);
  });
}
