#include "core/ops/causal_conv1d.h"

#include "core/error.h"
#include "kernels/activations.h"
#include "core/ops/simd.h"

#include <vector>

namespace longseq {

namespace {

struct ConvDims {
  int64_t B, L, D, W, S;
};

ConvDims validate(const CausalConv1dArgs& a) {
  LS_CHECK(a.x.defined() && a.x.dim() == 3 && a.x.dtype() == DType::F32 && a.x.stride(2) == 1,
           "causal_conv1d: x must be F32 (B, L, D) with unit channel stride, got {}", a.x.describe());
  const int64_t B = a.x.size(0), L = a.x.size(1), D = a.x.size(2);
  LS_CHECK(a.weight.defined() && a.weight.dim() == 2 && a.weight.size(0) == D && a.weight.is_contiguous() &&
               a.weight.dtype() == DType::F32,
           "causal_conv1d: weight must be contiguous F32 ({}, W), got {}", D, a.weight.describe());
  const int64_t W = a.weight.size(1);
  LS_CHECK(W >= 1, "causal_conv1d: width must be >= 1");
  if (a.bias.defined())
    LS_CHECK(a.bias.dim() == 1 && a.bias.size(0) == D && a.bias.is_contiguous(), "causal_conv1d: bias must be [{}], got {}", D,
             a.bias.describe());
  LS_CHECK(a.out.defined() && a.out.shape() == a.x.shape() && a.out.stride(2) == 1 && a.out.dtype() == DType::F32,
           "causal_conv1d: out must be F32 {} with unit channel stride, got {}", shape_str(a.x.shape()), a.out.describe());
  LS_CHECK(a.out.raw() != a.x.raw(), "causal_conv1d: out must not alias x");
  int64_t S = 0;
  if (a.state.defined()) {
    LS_CHECK(a.state.dim() == 3 && a.state.size(0) == B && a.state.size(2) == D && a.state.size(1) >= W - 1 &&
                 a.state.is_contiguous() && a.state.dtype() == DType::F32,
             "causal_conv1d: state must be contiguous F32 ({}, S >= {}, {}), got {}", B, W - 1, D, a.state.describe());
    S = a.state.size(1);
  }
  return {B, L, D, W, S};
}

// Input row at absolute offset t (may be negative: read from the state's tail), or null for zeros.
inline const float* input_row(const CausalConv1dArgs& a, const ConvDims& d, int64_t b, int64_t t) {
  if (t >= 0) return a.x.data<float>() + b * a.x.stride(0) + t * a.x.stride(1);
  if (d.S + t < 0) return nullptr;
  return a.state.data<float>() + (b * d.S + d.S + t) * d.D;
}

void update_state(const CausalConv1dArgs& a, const ConvDims& d) {
  if (!d.S) return;
  // New state = last S rows of [old state ; x].
  for (int64_t b = 0; b < d.B; ++b) {
    float* st = a.state.data<float>() + b * d.S * d.D;
    if (d.L >= d.S) {
      for (int64_t r = 0; r < d.S; ++r) {
        const float* src = input_row(a, d, b, d.L - d.S + r);
        std::copy(src, src + d.D, st + r * d.D);
      }
    } else {
      std::copy(st + d.L * d.D, st + d.S * d.D, st);  // shift the kept old rows forward
      for (int64_t r = 0; r < d.L; ++r) {
        const float* src = input_row(a, d, b, r);
        std::copy(src, src + d.D, st + (d.S - d.L + r) * d.D);
      }
    }
  }
}

template <bool kSilu>
void conv_rows(const CausalConv1dArgs& a, const ConvDims& d, int64_t b, int64_t t0, int64_t t1) {
  const float* w = a.weight.data<float>();
  const float* bias = a.bias.defined() ? a.bias.data<float>() : nullptr;
  std::vector<const float*> rows(static_cast<size_t>(d.W));
  for (int64_t t = t0; t < t1; ++t) {
    for (int64_t k = 0; k < d.W; ++k) rows[size_t(k)] = input_row(a, d, b, t - (d.W - 1) + k);
    float* o = a.out.data<float>() + b * a.out.stride(0) + t * a.out.stride(1);
    for (int64_t c = 0; c < d.D; ++c) o[c] = bias ? bias[c] : 0.0f;
    for (int64_t k = 0; k < d.W; ++k) {
      const float* r = rows[size_t(k)];
      if (!r) continue;
#pragma omp simd
      for (int64_t c = 0; c < d.D; ++c) o[c] += w[c * d.W + k] * r[c];
    }
    if constexpr (kSilu) {
      int64_t c = 0;
      for (; c + simd::kLanes <= d.D; c += simd::kLanes) simd::store(o + c, simd::silu(simd::load(o + c)));
      for (; c < d.D; ++c) o[c] = silu(o[c]);
    }
  }
}

}  // namespace

void causal_conv1d_ref(const CausalConv1dArgs& a) {
  const ConvDims d = validate(a);
  const float* w = a.weight.data<float>();
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t t = 0; t < d.L; ++t)
      for (int64_t c = 0; c < d.D; ++c) {
        float s = a.bias.defined() ? a.bias.data<float>()[c] : 0.0f;
        for (int64_t k = 0; k < d.W; ++k)
          if (const float* r = input_row(a, d, b, t - (d.W - 1) + k)) s += w[c * d.W + k] * r[c];
        a.out.data<float>()[b * a.out.stride(0) + t * a.out.stride(1) + c] = a.silu ? silu(s) : s;
      }
  update_state(a, d);
}

void causal_conv1d(const CausalConv1dArgs& a) {
  const ConvDims d = validate(a);
  constexpr int64_t kRows = 64;
  const int64_t blocks = (d.L + kRows - 1) / kRows;
#pragma omp parallel for schedule(static) collapse(2) if (d.L * d.D > 65536)
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t k = 0; k < blocks; ++k) {
      const int64_t t0 = k * kRows, t1 = std::min(d.L, t0 + kRows);
      a.silu ? conv_rows<true>(a, d, b, t0, t1) : conv_rows<false>(a, d, b, t0, t1);
    }
  update_state(a, d);
}

}  // namespace longseq
