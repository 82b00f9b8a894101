// Row-wise log-softmax of logits, accumulated in double (scores and log-likelihoods).
#pragma once

#include "core/tensor.h"

namespace longseq {

// In place over the last dimension of (M, V), in double accumulation.
void log_softmax_rows(Tensor& x);
// log(sum_v exp(row[v])) of one row of V logits, in double.
double log_sum_exp(const float* row, int64_t V);

}  // namespace longseq
