// Scalar activations with the exact definitions of the reference implementations (PyTorch), shared
// by the CPU reference paths and the CUDA kernels.
#pragma once

#include "kernels/half.h"

#include <cmath>

namespace longseq {

// torch.nn.functional.softplus with beta 1, threshold 20.
LS_HD float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }
LS_HD float silu(float x) { return x / (1.0f + expf(-x)); }
LS_HD float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
// d silu(x) / dx.
LS_HD float silu_grad(float x) {
  const float s = sigmoid(x);
  return s * (1.0f + x * (1.0f - s));
}
// d softplus(x) / dx = sigmoid(x) = 1 - exp(-softplus(x)), from the value y = softplus(x) (so a
// kernel need not keep x); above the threshold it rounds to 1 as it should.
LS_HD float softplus_grad_from_value(float y) { return -expm1f(-y); }
// GELU, tanh approximation (HyenaDNA's MLP).
LS_HD float gelu_tanh(float x) {
  const float k = 0.7978845608028654f;  // sqrt(2/pi)
  return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}
LS_HD float gelu_tanh_grad(float x) {
  const float k = 0.7978845608028654f, th = tanhf(k * (x + 0.044715f * x * x * x));
  return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * k * (1.0f + 3.0f * 0.044715f * x * x);
}
// GELU, exact: x Phi(x) with the normal CDF through erf (torch's default; Evo 2's first MLP).
LS_HD float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f)); }
LS_HD float gelu_erf_grad(float x) {
  return 0.5f * (1.0f + erff(x * 0.7071067811865476f)) + x * 0.3989422804014327f * expf(-0.5f * x * x);
}

}  // namespace longseq
