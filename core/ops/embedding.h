// Token embedding lookup and row-wise log-softmax: the two ends of a language model.
#pragma once

#include "core/tensor.h"

namespace longseq {

// out[l, :] = table[ids[l], :]. ids: (L) I64 or I32; table (V, d); out (L, d). An id outside
// [0, V) throws naming the position and the id.
void embedding(const Tensor& ids, const Tensor& table, Tensor& out);

// In place over the last dimension of (M, V), in double accumulation.
void log_softmax_rows(Tensor& x);
// log(sum_v exp(row[v])) of one row of V logits, in double.
double log_sum_exp(const float* row, int64_t V);

}  // namespace longseq
