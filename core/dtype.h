// Element types. Compute is fp32; storage may be any safetensors dtype. The f16/bf16 conversions
// live in kernels/half.h (__host__ __device__, so the CUDA kernels and the CPU paths share one
// definition without kernels/ including core/).
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

#include "kernels/half.h"

namespace longseq {

enum class DType : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool };

// Bytes per element.
size_t dtype_size(DType t);
// The safetensors spelling ("F32", "BF16", ...).
std::string_view dtype_name(DType t);
// Parses a safetensors dtype name; nullopt for names longseq does not know (e.g. F8_E4M3).
std::optional<DType> dtype_from_name(std::string_view name);
bool dtype_is_float(DType t);

template <class T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::I64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<int16_t>() { return DType::I16; }
template <> constexpr DType dtype_of<int8_t>() { return DType::I8; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::U8; }

}  // namespace longseq
