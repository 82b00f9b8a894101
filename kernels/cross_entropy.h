// CUDA log-softmax + cross-entropy over rows of V logits (next-token loss for DNA, clip labels for
// audio): loss[r] = logsumexp(logits[r]) - logits[r, target[r]], and optionally the gradient
// dlogits[r] = grad_scale (softmax(logits[r]) - onehot(target[r])). A negative target ignores the
// row (loss 0, gradient 0), as PyTorch's ignore_index.
#pragma once

#include <cstdint>

namespace longseq::cuda {

struct CrossEntropyParams {
  int64_t rows = 0, classes = 0;  // R, V
  const float* logits = nullptr;  // not restrict: dlogits may alias it
  int64_t logits_r = 0;
  const int64_t* __restrict__ targets = nullptr;  // (R), in [0, V) or negative
  float* __restrict__ loss = nullptr;             // (R)
  float* dlogits = nullptr;                       // or null; may equal logits (in place)
  int64_t dlogits_r = 0;
  float grad_scale = 1.0f;
  int* __restrict__ bad_target = nullptr;  // set by the kernel to 1 + a row whose target is >= V (set by the host entry)
};

// Device pointers; default stream; synchronize. Throws longseq::Error naming the first row whose
// target is >= V, or for bad sizes / a CUDA failure.
void cross_entropy(const CrossEntropyParams& p);

}  // namespace longseq::cuda
