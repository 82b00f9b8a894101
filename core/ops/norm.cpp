#include "core/ops/norm.h"

#include "core/error.h"
#include "core/ops/simd.h"

#include <cmath>

namespace longseq {

namespace {

void check(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& out, const char* op) {
  LS_CHECK(x.dim() == 2 && x.dtype() == DType::F32 && (x.size(1) <= 1 || x.stride(1) == 1), "{}: x must be F32 (M, d), got {}",
           op, x.describe());
  const int64_t d = x.size(1);
  LS_CHECK(weight.dim() == 1 && weight.size(0) == d && weight.is_contiguous(), "{}: weight must be [{}], got {}", op, d,
           weight.describe());
  if (bias.defined())
    LS_CHECK(bias.dim() == 1 && bias.size(0) == d && bias.is_contiguous(), "{}: bias must be [{}], got {}", op, d,
             bias.describe());
  LS_CHECK(out.shape() == x.shape() && out.dtype() == DType::F32 && (d <= 1 || out.stride(1) == 1),
           "{}: out must be F32 {}, got {}", op, shape_str(x.shape()), out.describe());
}

// Sum of f(x[i]) over one row: kLanes float partial sums (vectorized), added in double in a fixed
// order, so the result does not depend on threads and loses nothing measurable at d <= 10^4.
template <class F>
double row_sum(const float* x, int64_t d, F f) {
  simd::vf acc{};
  int64_t i = 0;
  for (; i + simd::kLanes <= d; i += simd::kLanes) acc += f(simd::load(x + i));
  double s = 0;
  for (int l = 0; l < simd::kLanes; ++l) s += double(acc[l]);
  for (; i < d; ++i) s += double(f(x[i]));
  return s;
}

// o[i] = (x[i] - shift) * scale * w[i] (+ b[i]).
void normalize_row(const float* x, float shift, float scale, const float* w, const float* b, int64_t d, float* o) {
  int64_t i = 0;
  for (; i + simd::kLanes <= d; i += simd::kLanes) {
    simd::vf v = (simd::load(x + i) - shift) * scale * simd::load(w + i);
    if (b) v += simd::load(b + i);
    simd::store(o + i, v);
  }
  for (; i < d; ++i) o[i] = (x[i] - shift) * scale * w[i] + (b ? b[i] : 0.0f);
}

}  // namespace

void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  check(x, weight, {}, out, "rms_norm");
  const int64_t M = x.size(0), d = x.size(1);
  const float* w = weight.data<float>();
#pragma omp parallel for schedule(static) if (M * d > 65536)
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x.data<float>() + m * x.stride(0);
    const double ss = row_sum(xr, d, [](auto v) { return v * v; });
    normalize_row(xr, 0.0f, float(1.0 / std::sqrt(ss / double(d) + eps)), w, nullptr, d, out.data<float>() + m * out.stride(0));
  }
}

void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& out) {
  check(x, weight, bias, out, "layer_norm");
  const int64_t M = x.size(0), d = x.size(1);
  const float* w = weight.data<float>();
  const float* bv = bias.defined() ? bias.data<float>() : nullptr;
#pragma omp parallel for schedule(static) if (M * d > 65536)
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x.data<float>() + m * x.stride(0);
    const float mean = float(row_sum(xr, d, [](auto v) { return v; }) / double(d));
    const double var = row_sum(xr, d, [mean](auto v) { return (v - mean) * (v - mean); }) / double(d);
    normalize_row(xr, mean, float(1.0 / std::sqrt(var + eps)), w, bv, d, out.data<float>() + m * out.stride(0));
  }
}

}  // namespace longseq
