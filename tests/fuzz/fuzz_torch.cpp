// PyTorch checkpoint reader (zip and legacy torch.save files through the restricted pickle reader):
// every tensor it hands out is copied contiguous and, when floating-point, converted as a model load
// would, so a view that strays outside its storage is a sanitizer finding.
#include "core/weight_file.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = longseq::fuzz::write_input("in.pt", data, size);
  return longseq::fuzz::run_one([&] {
    const auto w = longseq::WeightFile::open(path);
    for (const auto& t : w.tensors()) {
      const longseq::Tensor v = w.view(t.name).contiguous();
      if (longseq::dtype_is_float(t.dtype)) (void)w.load_f32(t.name);
      (void)v.describe();
    }
  });
}
