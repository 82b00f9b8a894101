// Loads and stores of the storage types (kernels/storage.h) as fp32, and the dispatch from a
// runtime StorageType to a template argument: shared by the kernels that take bf16/fp16 tensors.
// Conversions are kernels/half.h's (round to nearest even, as __float2bfloat16_rn).
#pragma once

#include "kernels/half.h"
#include "kernels/kernel_namespace.h"
#include "kernels/storage.h"

namespace longseq::cuda {
LS_KERNELS_BEGIN

LS_HD float to_f32(float x) { return x; }
LS_HD float to_f32(Bf16 x) { return bf16_to_f32(x.bits); }
LS_HD float to_f32(F16 x) { return f16_to_f32(x.bits); }
LS_HD void store_f32(float* p, float v) { *p = v; }
LS_HD void store_f32(Bf16* p, float v) { p->bits = f32_to_bf16(v); }
LS_HD void store_f32(F16* p, float v) { p->bits = f32_to_f16(v); }
// Element i of a storage-typed array behind a void pointer.
template <class T>
LS_HD float load_as(const void* p, int64_t i) {
  return to_f32(static_cast<const T*>(p)[i]);
}

template <class T>
struct TypeTag {
  using type = T;
};
// f(TypeTag<T>{}) for the storage type of `dtype`.
template <class F>
void dispatch_storage(StorageType dtype, F f) {
  if (dtype == StorageType::bf16) return f(TypeTag<Bf16>{});
  if (dtype == StorageType::f16) return f(TypeTag<F16>{});
  f(TypeTag<float>{});
}

LS_KERNELS_END
}  // namespace longseq::cuda
