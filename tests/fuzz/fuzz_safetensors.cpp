// safetensors reader: header validation, every tensor viewed and converted as a model load would.
#include "core/safetensors.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = longseq::fuzz::write_input("in.safetensors", data, size);
  return longseq::fuzz::run_one([&] {
    const auto f = longseq::SafetensorsFile::open(path);
    for (const auto& t : f.tensors()) {
      const longseq::Tensor v = f.view(t.name);
      if (longseq::dtype_is_float(t.dtype)) (void)f.load_f32(t.name);
      (void)v.describe();
    }
  });
}
