// Row norms over the last dimension of (M, d) activations, accumulated in double (d is small, and
// this keeps the norm out of the error budget of the parity tests).
#pragma once

#include "core/tensor.h"

namespace longseq {

// out = x / sqrt(mean(x^2) + eps) * weight. x, out: (M, d) with unit inner stride; may alias.
void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out);
// out = (x - mean) / sqrt(var + eps) * weight + bias (bias may be undefined). May alias.
void layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& out);

}  // namespace longseq
