// config.json and config.yml: the JSON and YAML parsers (one input read as both) and the Mamba and
// HyenaDNA config parsers and checks.
#include "core/config.h"
#include "core/families/hyena_config.h"
#include "core/families/mamba_config.h"
#include "core/yaml.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  longseq::fuzz::run_one([&] { (void)longseq::parse_yaml(text, "fuzz/config.yml"); });
  return longseq::fuzz::run_one([&] {
    const auto c = longseq::Config::parse(text, "fuzz/config.json");
    if (longseq::looks_like_hyena(c)) (void)longseq::parse_hyena_config(c);
    if (longseq::looks_like_mamba(c)) (void)longseq::parse_mamba_config(c);
  });
}
