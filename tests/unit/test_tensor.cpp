#include "core/error.h"
#include "core/memory.h"
#include "core/tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

using namespace longseq;

namespace {
Tensor iota(Shape shape) {
  std::vector<float> v(size_t(shape_numel(shape)));
  std::iota(v.begin(), v.end(), 0.0f);
  return Tensor::from_vector(v, shape);
}
}  // namespace

TEST(Tensor, AllocationIsAlignedAndAccounted) {
  const size_t before = memory_stats().current;
  {
    Tensor t = Tensor::empty({3, 5, 7});
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % kAlignment, 0u);
    EXPECT_GE(memory_stats().current, before + 3 * 5 * 7 * 4);
    EXPECT_GE(memory_stats().peak, memory_stats().current);
  }
  EXPECT_EQ(memory_stats().current, before);
}

TEST(Tensor, SliceAlongLIsZeroCopy) {
  Tensor t = iota({2, 10, 3});  // B, L, D
  const size_t held = memory_stats().current;
  Tensor s = t.slice(1, 4, 5);
  EXPECT_EQ(memory_stats().current, held);
  EXPECT_EQ(s.shape(), (Shape{2, 5, 3}));
  EXPECT_EQ(s.storage(), t.storage());
  EXPECT_FALSE(s.is_contiguous());
  EXPECT_EQ(s.item({1, 0, 2}), float(1 * 30 + 4 * 3 + 2));
  Tensor b0 = t.select(0, 0).slice(0, 7, 3);  // [L, D] window of one batch: contiguous
  EXPECT_TRUE(b0.is_contiguous());
  EXPECT_EQ(b0.item({0, 0}), 21.0f);
  // Writes through a view land in the parent.
  b0.fill(-1.0f);
  EXPECT_EQ(t.item({0, 9, 2}), -1.0f);
  EXPECT_EQ(t.item({1, 9, 2}), float(30 + 27 + 2));
}

TEST(Tensor, ContiguousCopiesOnlyWhenNeeded) {
  Tensor t = iota({4, 6});
  EXPECT_EQ(t.contiguous().storage(), t.storage());
  Tensor s = t.slice(1, 1, 3);
  Tensor c = s.contiguous();
  EXPECT_NE(c.storage(), t.storage());
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.to_vector(), s.to_vector());
  EXPECT_EQ(c.item({3, 2}), 21.0f);
}

TEST(Tensor, ReshapeRefusesHiddenCopies) {
  Tensor t = iota({4, 6});
  Tensor r = t.reshape({2, -1, 3});
  EXPECT_EQ(r.shape(), (Shape{2, 4, 3}));
  EXPECT_EQ(r.storage(), t.storage());
  EXPECT_THROW(t.slice(1, 0, 3).reshape({12}), Error);
  EXPECT_THROW(t.reshape({5, 5}), Error);
  EXPECT_THROW(t.reshape({-1, -1}), Error);
}

TEST(Tensor, ConversionsRoundTrip) {
  Tensor t = Tensor::from_vector({1.0f, -2.5f, 0.333251953125f, 65504.0f}, {4});
  EXPECT_EQ(t.to(DType::F16).to(DType::F32).to_vector(), t.to_vector());
  EXPECT_EQ(t.to(DType::F64).to(DType::F32).to_vector(), t.to_vector());
  Tensor b = Tensor::from_vector({1.0f, -2.5f, 3.0f}, {3}).to(DType::BF16);
  EXPECT_EQ(b.to(DType::F32).to_vector(), (std::vector<float>{1.0f, -2.5f, 3.0f}));
  Tensor ids = Tensor::from_vector({7, 8, 9}, {3}).to(DType::I64);
  EXPECT_EQ(ids.data<int64_t>()[2], 9);
  EXPECT_THROW(ids.data<float>(), Error);
}

TEST(Tensor, StridedCopyFrom) {
  Tensor t = iota({3, 4});
  Tensor dst = Tensor::zeros({4, 3});
  // Transposed view via select/unsqueeze is not offered; copy a column block into a row block.
  Tensor col = t.slice(1, 1, 2);  // [3, 2] strided
  Tensor target = dst.slice(0, 1, 3).slice(1, 0, 2);
  target.copy_from(col);
  EXPECT_EQ(dst.item({1, 0}), 1.0f);
  EXPECT_EQ(dst.item({3, 1}), 10.0f);
  EXPECT_EQ(dst.item({0, 0}), 0.0f);
  EXPECT_THROW(dst.copy_from(t), Error);
}

TEST(Tensor, ZeroSizedAndBadShapes) {
  Tensor z = Tensor::empty({0, 3});
  EXPECT_EQ(z.numel(), 0);
  EXPECT_EQ(z.clone().numel(), 0);
  EXPECT_THROW(Tensor::empty({-1, 3}), Error);
  EXPECT_THROW(iota({2, 2}).slice(0, 1, 2), Error);
  EXPECT_THROW(iota({2, 2}).select(2, 0), Error);
}

TEST(Tensor, FirstNonFiniteFindsTheFirstNanOrInfinity) {
  using longseq::first_non_finite;
  using longseq::Tensor;
  for (const int64_t n : {1, 7, 1023, 1024, 1025, 5000}) {
    std::vector<float> v(size_t(n), 0.5f);
    EXPECT_EQ(first_non_finite(Tensor::from_vector(v, {n})), -1) << n;
    for (const float bad : {std::nanf(""), INFINITY, -INFINITY}) {
      for (const int64_t at : {int64_t(0), n / 2, n - 1}) {
        std::vector<float> w = v;
        w[size_t(at)] = bad;
        if (at + 1 < n) w[size_t(n - 1)] = bad;  // a later one too: the first is reported
        EXPECT_EQ(first_non_finite(Tensor::from_vector(w, {n})), at) << n << " " << at;
      }
    }
  }
  // the largest finite float and subnormals are finite; strided views and F16 are checked as values
  std::vector<float> edge = {3.4028235e38f, -3.4028235e38f, 1e-45f, -0.0f};
  EXPECT_EQ(first_non_finite(Tensor::from_vector(edge, {4})), -1);
  Tensor m = Tensor::from_vector(std::vector<float>{1, 2, INFINITY, 4, 5, 6}, {2, 3});
  EXPECT_EQ(first_non_finite(m.transpose(0, 1)), 4);  // row-major index in the view: (2, 0)
  EXPECT_EQ(first_non_finite(m.to(longseq::DType::F16)), 2);
  const std::vector<int64_t> ids = {1, 2};
  EXPECT_EQ(first_non_finite(Tensor::from_ids(ids)), -1);
}
