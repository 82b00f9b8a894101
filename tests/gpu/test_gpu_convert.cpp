// GPU tests skip cleanly without a CUDA build or device. With one, the device conversion must equal
// the CPU conversion bit for bit for every 16-bit pattern.
#include "core/backend.h"
#include "core/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#if LONGSEQ_WITH_CUDA
#include "kernels/convert.h"
#endif

using namespace longseq;

TEST(Gpu, HalfToFloatMatchesCpu) {
  if (!cuda_compiled() || cuda_device_count() == 0) GTEST_SKIP() << cuda_device_summary();
#if LONGSEQ_WITH_CUDA
  std::vector<uint16_t> src(65536);
  for (uint32_t i = 0; i < 65536; ++i) src[i] = uint16_t(i);
  std::vector<float> dst(src.size());
  for (bool bf16 : {false, true}) {
    cuda::convert_half_to_f32_host(src.data(), dst.data(), int64_t(src.size()), bf16);
    for (uint32_t i = 0; i < 65536; ++i) {
      const float want = bf16 ? bf16_to_f32(src[i]) : f16_to_f32(src[i]);
      if (std::isnan(want))
        EXPECT_TRUE(std::isnan(dst[i]));
      else
        EXPECT_EQ(f32_bits(dst[i]), f32_bits(want)) << i;
    }
  }
#endif
}
