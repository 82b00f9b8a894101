// Which keys a query sees, shared by the CPU attention op (core/ops/attention.cpp) and the CUDA
// kernels (kernels/attention.cuh), so both mask the same way: a query at position p sees keys
// attention_first_key(p, window) .. p, i.e. every earlier key, or with a sliding window (> 0) the
// last `window` of them.
#pragma once

#include "kernels/half.h"  // LS_HD

#include <cstdint>

namespace longseq {

LS_HD int64_t attention_first_key(int64_t pos, int64_t window) { return window > 0 && pos >= window ? pos - window + 1 : 0; }

}  // namespace longseq
