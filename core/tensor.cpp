#include "core/tensor.h"

#include "core/error.h"
#include "core/memory.h"

#include <fmt/ranges.h>

#include <omp.h>

#include <cmath>
#include <limits>
#include <cstring>
#include <type_traits>

#include <sys/mman.h>
#include <unistd.h>

namespace longseq {

std::string shape_str(std::span<const int64_t> shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

int64_t shape_numel(std::span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

Shape contiguous_strides(std::span<const int64_t> shape) {
  Shape strides(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

std::shared_ptr<Storage> Storage::allocate(size_t bytes) {
  auto* p = static_cast<std::byte*>(tracked_alloc(bytes));
  return std::shared_ptr<Storage>(new Storage(p, bytes, nullptr));
}

std::shared_ptr<Storage> Storage::borrow(void* data, size_t bytes, std::shared_ptr<const void> owner) {
  LS_ASSERT(owner != nullptr);
  return std::shared_ptr<Storage>(new Storage(static_cast<std::byte*>(data), bytes, std::move(owner)));
}

Storage::~Storage() {
  if (!owner_) tracked_free(data_, bytes_);
}

namespace {
void check_shape(std::span<const int64_t> shape) {
  for (int64_t s : shape) LS_CHECK(s >= 0, "negative dimension in shape {}", shape_str(shape));
}

// Calls fn(element_offset, linear_index) for every element of a strided view, in row-major order.
template <class Fn>
void for_each_offset(const Shape& shape, const Shape& strides, Fn&& fn) {
  const int64_t n = shape_numel(shape);
  if (n == 0) return;
  const int nd = int(shape.size());
  std::vector<int64_t> idx(nd, 0);
  int64_t off = 0;
  for (int64_t i = 0; i < n; ++i) {
    fn(off, i);
    for (int d = nd - 1; d >= 0; --d) {
      if (++idx[d] < shape[d]) {
        off += strides[d];
        break;
      }
      off -= strides[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}

// Element offset of row `r` (row-major over all dimensions but the last).
int64_t row_offset(const Shape& shape, const Shape& strides, int64_t r) {
  int64_t off = 0;
  for (int d = int(shape.size()) - 2; d >= 0; --d) {
    off += (r % shape[d]) * strides[d];
    r /= shape[d];
  }
  return off;
}

// Storage types as C++ types; half formats are tagged 16-bit words.
struct f16_t { uint16_t bits; };
struct bf16_t { uint16_t bits; };

template <class T> double to_double(T v) { return double(v); }
template <> double to_double(f16_t v) { return f16_to_f32(v.bits); }
template <> double to_double(bf16_t v) { return bf16_to_f32(v.bits); }
// Integers saturate (NaN -> 0): a float outside the type's range has no defined cast in C++.
template <class T> T from_double(double v) {
  if constexpr (std::is_integral_v<T>) {
    if (std::isnan(v)) return T(0);
    if (v <= double(std::numeric_limits<T>::min())) return std::numeric_limits<T>::min();
    if (v >= double(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
  }
  return static_cast<T>(v);
}
template <> f16_t from_double(double v) { return {f32_to_f16(float(v))}; }
template <> bf16_t from_double(double v) { return {f32_to_bf16(float(v))}; }
template <> bool from_double(double v) { return v != 0.0; }

// Converting element copy; float<->half goes through float, not double, to match the hardware paths.
template <class D, class S>
D convert(S v) {
  if constexpr (std::is_same_v<D, S>) return v;
  else if constexpr (std::is_same_v<S, float> && std::is_same_v<D, f16_t>) return {f32_to_f16(v)};
  else if constexpr (std::is_same_v<S, float> && std::is_same_v<D, bf16_t>) return {f32_to_bf16(v)};
  else if constexpr (std::is_same_v<D, float> && std::is_same_v<S, f16_t>) return f16_to_f32(v.bits);
  else if constexpr (std::is_same_v<D, float> && std::is_same_v<S, bf16_t>) return bf16_to_f32(v.bits);
  else return from_double<D>(to_double(v));
}

template <class Fn>
void with_type(DType t, Fn&& fn) {
  switch (t) {
    case DType::F64: return fn(double{});
    case DType::F32: return fn(float{});
    case DType::F16: return fn(f16_t{});
    case DType::BF16: return fn(bf16_t{});
    case DType::I64: return fn(int64_t{});
    case DType::I32: return fn(int32_t{});
    case DType::I16: return fn(int16_t{});
    case DType::I8: return fn(int8_t{});
    case DType::U8: return fn(uint8_t{});
    case DType::Bool: return fn(bool{});
  }
}

// Copies (and converts) one strided row of n elements.
using RowFn = void (*)(void* dst, int64_t dst_stride, const void* src, int64_t src_stride, int64_t n);

template <class D, class S>
void copy_row(void* dst, int64_t ds, const void* src, int64_t ss, int64_t n) {
  auto* d = static_cast<D*>(dst);
  const auto* s = static_cast<const S*>(src);
  if constexpr (std::is_same_v<D, S>) {
    if (ds == 1 && ss == 1) {
      std::memcpy(d, s, size_t(n) * sizeof(D));
      return;
    }
  }
  for (int64_t i = 0; i < n; ++i) d[i * ds] = convert<D>(s[i * ss]);
}

// Large copies are split across threads (one core cannot saturate memory bandwidth); overlapping
// ranges (a view copied onto itself shifted) take the single memmove.
void copy_bytes(void* dst, const void* src, size_t bytes) {
  auto* d = static_cast<std::byte*>(dst);
  const auto* s = static_cast<const std::byte*>(src);
  const bool overlap = d < s + bytes && s < d + bytes;
  if (overlap || bytes < (size_t(8) << 20)) {
    std::memmove(d, s, bytes);
    return;
  }
  // One large piece per thread, so each memcpy stays above glibc's non-temporal-store threshold.
  const int pieces = omp_get_max_threads();
#pragma omp parallel for schedule(static)
  for (int p = 0; p < pieces; ++p) {
    const size_t lo = bytes * size_t(p) / size_t(pieces), hi = bytes * size_t(p + 1) / size_t(pieces);
    std::memcpy(d + lo, s + lo, hi - lo);
  }
}

RowFn row_fn(DType dst, DType src) {
  RowFn fn = nullptr;
  with_type(dst, [&](auto d) { with_type(src, [&](auto s) { fn = &copy_row<decltype(d), decltype(s)>; }); });
  return fn;
}

}  // namespace

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, size_t byte_offset, Shape shape, DType dtype) {
  check_shape(shape);
  const size_t need = size_t(shape_numel(shape)) * dtype_size(dtype);
  LS_CHECK(storage && byte_offset + need <= storage->bytes(), "tensor {} {} does not fit its storage",
           dtype_name(dtype), shape_str(shape));
  Tensor t;
  t.storage_ = std::move(storage);
  t.offset_ = byte_offset;
  t.strides_ = contiguous_strides(shape);
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, size_t byte_offset, Shape shape, Shape strides, DType dtype) {
  check_shape(shape);
  LS_CHECK(strides.size() == shape.size(), "{} strides for a {}-dimensional tensor", strides.size(), shape.size());
  // The furthest element reached: sum of (size - 1) * stride, with overflow checks.
  uint64_t last = 0;
  bool overflow = false;
  for (size_t k = 0; k < shape.size(); ++k) {
    LS_CHECK(strides[k] >= 0, "negative stride {} in a view of {}", strides[k], shape_str(shape));
    uint64_t step = 0;
    if (shape[k] > 0) overflow |= __builtin_mul_overflow(uint64_t(shape[k] - 1), uint64_t(strides[k]), &step);
    overflow |= __builtin_add_overflow(last, step, &last);
  }
  const size_t es = dtype_size(dtype);
  uint64_t end = 0;  // bytes past byte_offset that the view reaches
  if (shape_numel(shape) > 0) overflow |= __builtin_mul_overflow(last + 1, uint64_t(es), &end);
  LS_CHECK(storage && !overflow && byte_offset <= storage->bytes() && end <= storage->bytes() - byte_offset,
           "view {} {} (strides {}) does not fit its storage", dtype_name(dtype), shape_str(shape), shape_str(strides));
  Tensor t;
  t.storage_ = std::move(storage);
  t.offset_ = byte_offset;
  t.shape_ = std::move(shape);
  t.strides_ = std::move(strides);
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::empty(Shape shape, DType dtype) {
  check_shape(shape);
  const size_t bytes = size_t(shape_numel(shape)) * dtype_size(dtype);
  return from_storage(Storage::allocate(bytes), 0, std::move(shape), dtype);
}

Tensor Tensor::zeros(Shape shape, DType dtype) {
  Tensor t = empty(std::move(shape), dtype);
  std::memset(t.raw(), 0, t.nbytes());
  return t;
}

Tensor Tensor::full(Shape shape, float value) {
  Tensor t = empty(std::move(shape), DType::F32);
  t.fill(value);
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& values, Shape shape) {
  LS_CHECK(int64_t(values.size()) == shape_numel(shape), "from_vector: {} values for shape {}", values.size(),
           shape_str(shape));
  Tensor t = empty(std::move(shape), DType::F32);
  if (!values.empty()) std::memcpy(t.raw(), values.data(), values.size() * sizeof(float));
  return t;
}

Tensor Tensor::from_ids(std::span<const int64_t> ids) {
  Tensor t = empty({int64_t(ids.size())}, DType::I64);
  std::copy(ids.begin(), ids.end(), t.data<int64_t>());
  return t;
}

void Tensor::bad_dim(int d) const { fail("dimension {} out of range for a {}-d tensor", d, dim()); }

void Tensor::check_dtype(DType want) const {
  LS_CHECK(dtype_ == want, "tensor is {}, accessed as {}", dtype_name(dtype_), dtype_name(want));
}

bool Tensor::is_contiguous() const {
  int64_t expect = 1;
  for (int d = dim() - 1; d >= 0; --d) {
    if (shape_[d] != 1 && strides_[d] != expect) return false;
    expect *= shape_[d];
  }
  return true;
}

Tensor Tensor::slice(int d, int64_t start, int64_t length) const {
  const int r = norm_dim(d);
  LS_CHECK(start >= 0 && length >= 0 && start + length <= shape_[r], "slice [{}, {}) out of range for size {} of dim {}",
           start, start + length, shape_[r], r);
  Tensor t = *this;
  t.offset_ += size_t(start * strides_[r]) * dtype_size(dtype_);
  t.shape_[r] = length;
  return t;
}

Tensor Tensor::select(int d, int64_t index) const {
  const int r = norm_dim(d);
  Tensor t = slice(r, index, 1);
  t.shape_.erase(t.shape_.begin() + r);
  t.strides_.erase(t.strides_.begin() + r);
  return t;
}

Tensor Tensor::unsqueeze(int d) const {
  const int nd = dim();
  const int r = d < 0 ? d + nd + 1 : d;
  LS_CHECK(r >= 0 && r <= nd, "unsqueeze dimension {} out of range for a {}-d tensor", d, nd);
  Tensor t = *this;
  const int64_t stride = r < nd ? strides_[r] * shape_[r] : 1;
  t.shape_.insert(t.shape_.begin() + r, 1);
  t.strides_.insert(t.strides_.begin() + r, stride);
  return t;
}

Tensor Tensor::transpose(int d0, int d1) const {
  const int a = norm_dim(d0), b = norm_dim(d1);
  Tensor t = *this;
  std::swap(t.shape_[a], t.shape_[b]);
  std::swap(t.strides_[a], t.strides_[b]);
  return t;
}

Tensor Tensor::reshape(Shape shape) const {
  LS_CHECK(is_contiguous(), "reshape of a non-contiguous {} view would copy; call contiguous() first", describe());
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      LS_CHECK(infer < 0, "reshape {}: at most one -1", shape_str(shape));
      infer = int(i);
    } else {
      LS_CHECK(shape[i] >= 0, "reshape {}: negative size", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    LS_CHECK(known > 0 && numel() % known == 0, "cannot reshape {} to {}", describe(), shape_str(shape));
    shape[infer] = numel() / known;
  }
  LS_CHECK(shape_numel(shape) == numel(), "cannot reshape {} to {}", describe(), shape_str(shape));
  Tensor t = *this;
  t.strides_ = contiguous_strides(shape);
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  LS_CHECK(defined(), "clone of an undefined tensor");
  Tensor t = empty(shape_, dtype_);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::to(DType dtype) const {
  LS_CHECK(defined(), "conversion of an undefined tensor");
  Tensor t = empty(shape_, dtype);
  t.copy_from(*this);
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  LS_CHECK(src.shape_ == shape_, "copy_from: shape {} into {}", shape_str(src.shape_), shape_str(shape_));
  if (numel() == 0) return;
  if (src.dtype_ == dtype_ && is_contiguous() && src.is_contiguous()) {
    copy_bytes(raw(), src.raw(), nbytes());
    return;
  }
  // Row by row over the last dimension; rows are independent, so threads never change the result.
  const Shape ds = dim() ? strides_ : Shape{1}, ss = dim() ? src.strides_ : Shape{1}, shape = dim() ? shape_ : Shape{1};
  const int64_t n = shape.back(), rows = numel() / n;
  const size_t de = dtype_size(dtype_), se = dtype_size(src.dtype_);
  auto* d = static_cast<std::byte*>(raw());
  const auto* s = static_cast<const std::byte*>(src.raw());
  const RowFn fn = row_fn(dtype_, src.dtype_);
#pragma omp parallel for schedule(static) if (numel() > (1 << 20))
  for (int64_t r = 0; r < rows; ++r)
    fn(d + row_offset(shape, ds, r) * int64_t(de), ds.back(), s + row_offset(shape, ss, r) * int64_t(se), ss.back(), n);
}

void Tensor::fill(float value) {
  Tensor one = Tensor::empty({1}, dtype_);
  row_fn(dtype_, DType::F32)(one.raw(), 1, &value, 1, 1);
  const size_t es = dtype_size(dtype_);
  auto* d = static_cast<std::byte*>(raw());
  for_each_offset(shape_, strides_, [&](int64_t off, int64_t) { std::memcpy(d + off * int64_t(es), one.raw(), es); });
}

float Tensor::item(std::initializer_list<int64_t> index) const {
  LS_CHECK(int(index.size()) == dim(), "item: {} indices for a {}-d tensor", index.size(), dim());
  int64_t off = 0;
  int d = 0;
  for (int64_t i : index) {
    LS_CHECK(i >= 0 && i < shape_[d], "item: index {} out of range for dim {} of size {}", i, d, shape_[d]);
    off += i * strides_[d++];
  }
  float v;
  row_fn(DType::F32, dtype_)(&v, 1, static_cast<const std::byte*>(raw()) + off * int64_t(dtype_size(dtype_)), 1, 1);
  return v;
}

std::vector<float> Tensor::to_vector() const {
  Tensor f = to(DType::F32);
  const float* p = f.data<float>();
  return std::vector<float>(p, p + f.numel());
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined";
  return fmt::format("{}{}", dtype_name(dtype_), shape_str(shape_));
}

namespace {
// Index of the first of n contiguous values whose exponent field (the bits of `exp`) is all ones,
// that is a NaN or an infinity, or -1. Each block is screened without branches and only a flagged
// block is searched. bf16 is fp32's top 16 bits, so one test serves both.
template <class Bits>
int64_t first_non_finite_bits(const Bits* x, int64_t n, Bits exp) {
  constexpr int64_t kBlock = 1024;
  const auto bad = [exp](Bits v) { return (v & exp) == exp; };
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t m = std::min(kBlock, n - b);
    uint32_t any = 0;
    for (int64_t i = 0; i < m; ++i) any |= uint32_t(bad(x[b + i]));
    if (!any) continue;
    for (int64_t i = 0; i < m; ++i)
      if (bad(x[b + i])) return b + i;
  }
  return -1;
}
}  // namespace

void release_file_pages(const Tensor& t) {
  if (!t.defined() || t.storage()->owned() || !t.is_contiguous()) return;
  const auto page = uintptr_t(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(t.raw()), end = begin + t.nbytes();
  const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);  // advice: a failure changes nothing
}

int64_t first_non_finite(const Tensor& t) {
  if (!dtype_is_float(t.dtype()) || t.numel() == 0) return -1;
  if (t.dtype() == DType::BF16) {
    const Tensor c = t.contiguous();
    return first_non_finite_bits(static_cast<const uint16_t*>(c.raw()), c.numel(), uint16_t(0x7f80u));
  }
  const Tensor f = t.dtype() == DType::F32 ? t.contiguous() : t.to(DType::F32);
  return first_non_finite_bits(static_cast<const uint32_t*>(f.raw()), f.numel(), uint32_t(0x7f800000u));
}

}  // namespace longseq
