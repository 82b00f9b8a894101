#include "core/ops/embedding.h"

#include "core/error.h"

#include <cmath>
#include <cstring>

namespace longseq {

void embedding(const Tensor& ids, const Tensor& table, Tensor& out) {
  LS_CHECK(ids.dim() == 1 && (ids.dtype() == DType::I64 || ids.dtype() == DType::I32),
           "embedding: ids must be 1-D I64 or I32, got {}", ids.describe());
  LS_CHECK(table.dim() == 2 && table.is_contiguous() && table.dtype() == DType::F32, "embedding: table must be F32 (V, d), got {}",
           table.describe());
  const int64_t L = ids.size(0), V = table.size(0), d = table.size(1);
  LS_CHECK(out.dim() == 2 && out.size(0) == L && out.size(1) == d && (d <= 1 || out.stride(1) == 1),
           "embedding: out must be ({}, {}), got {}", L, d, out.describe());
  for (int64_t l = 0; l < L; ++l) {
    const int64_t id = ids.dtype() == DType::I64 ? ids.data<int64_t>()[l * ids.stride(0)]
                                                 : ids.data<int32_t>()[l * ids.stride(0)];
    LS_CHECK(id >= 0 && id < V, "token id {} at position {} is outside the vocabulary [0, {}) (wrong tokenizer or model?)", id, l,
             V);
    std::memcpy(out.data<float>() + l * out.stride(0), table.data<float>() + id * d, size_t(d) * 4);
  }
}

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
