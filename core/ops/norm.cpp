#include "core/ops/norm.h"

#include "core/error.h"

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

}  // namespace

void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  check(x, weight, {}, out, "rms_norm");
  const int64_t M = x.size(0), d = x.size(1);
  const float* w = weight.data<float>();
#pragma omp parallel for schedule(static) if (M * d > 65536)
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x.data<float>() + m * x.stride(0);
    float* o = out.data<float>() + m * out.stride(0);
    double ss = 0;
    for (int64_t i = 0; i < d; ++i) ss += double(xr[i]) * xr[i];
    const float r = float(1.0 / std::sqrt(ss / double(d) + eps));
    for (int64_t i = 0; i < d; ++i) o[i] = xr[i] * r * w[i];
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
    float* o = out.data<float>() + m * out.stride(0);
    double s = 0;
    for (int64_t i = 0; i < d; ++i) s += xr[i];
    const double mean = s / double(d);
    double v = 0;
    for (int64_t i = 0; i < d; ++i) v += (xr[i] - mean) * (xr[i] - mean);
    const double r = 1.0 / std::sqrt(v / double(d) + eps);
    for (int64_t i = 0; i < d; ++i) o[i] = float((xr[i] - mean) * r) * w[i] + (bv ? bv[i] : 0.0f);
  }
}

}  // namespace longseq
