#include "core/ops/softmax.h"

#include "core/error.h"

#include <cmath>

namespace longseq {

double log_sum_exp(const float* row, int64_t V) {
  float mx = row[0];
  for (int64_t v = 1; v < V; ++v) mx = std::max(mx, row[v]);
  double s = 0;
  for (int64_t v = 0; v < V; ++v) s += std::exp(double(row[v]) - mx);
  return mx + std::log(s);
}

void log_softmax_rows(Tensor& x) {
  LS_CHECK(x.dim() == 2 && x.dtype() == DType::F32 && (x.size(1) <= 1 || x.stride(1) == 1),
           "log_softmax: expected F32 (M, V), got {}", x.describe());
  const int64_t M = x.size(0), V = x.size(1);
#pragma omp parallel for schedule(static) if (M * V > 65536)
  for (int64_t m = 0; m < M; ++m) {
    float* r = x.data<float>() + m * x.stride(0);
    const float lse = float(log_sum_exp(r, V));
    for (int64_t v = 0; v < V; ++v) r[v] -= lse;
  }
}

}  // namespace longseq
