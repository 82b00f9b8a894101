// Tensor: a typed, strided window onto reference-counted storage. Views (slice, select, reshape) share
// storage and never copy; copies happen only through the explicitly named clone(), contiguous() and
// to(). Storage is either 64-byte aligned memory counted by the memory accountant, or borrowed memory
// (an mmap'ed safetensors file) kept alive by an owner handle.
#pragma once

#include "core/dtype.h"

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace longseq {

using Shape = std::vector<int64_t>;

std::string shape_str(std::span<const int64_t> shape);
int64_t shape_numel(std::span<const int64_t> shape);

class Storage {
 public:
  // Uninitialized, aligned, counted by the memory accountant.
  static std::shared_ptr<Storage> allocate(size_t bytes);
  // Borrowed memory; `owner` keeps it alive (e.g. a file mapping). Not counted.
  static std::shared_ptr<Storage> borrow(void* data, size_t bytes, std::shared_ptr<const void> owner);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  std::byte* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  bool owned() const { return owner_ == nullptr; }

 private:
  Storage(std::byte* data, size_t bytes, std::shared_ptr<const void> owner)
      : data_(data), bytes_(bytes), owner_(std::move(owner)) {}
  std::byte* data_;
  size_t bytes_;
  std::shared_ptr<const void> owner_;  // null when the storage owns its memory
};

class Tensor {
 public:
  Tensor() = default;  // undefined tensor: defined() is false

  // New contiguous tensors. empty() leaves memory uninitialized.
  static Tensor empty(Shape shape, DType dtype = DType::F32);
  static Tensor zeros(Shape shape, DType dtype = DType::F32);
  static Tensor full(Shape shape, float value);
  static Tensor from_vector(const std::vector<float>& values, Shape shape);
  static Tensor from_ids(std::span<const int64_t> ids);  // 1-D I64 copy
  // A contiguous tensor over `storage` starting `byte_offset` bytes in. Throws if it does not fit.
  static Tensor from_storage(std::shared_ptr<Storage> storage, size_t byte_offset, Shape shape, DType dtype);
  // A strided view over `storage` (strides in elements, >= 0), starting `byte_offset` bytes in. Throws
  // if any element it reaches lies outside the storage.
  static Tensor from_storage(std::shared_ptr<Storage> storage, size_t byte_offset, Shape shape, Shape strides, DType dtype);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }  // in elements
  int dim() const { return int(shape_.size()); }
  int64_t size(int d) const { return shape_[norm_dim(d)]; }
  int64_t stride(int d) const { return strides_[norm_dim(d)]; }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  // Typed element pointer (to the first element of this view). Throws if T does not match dtype().
  template <class T>
  T* data() const {
    check_dtype(dtype_of<T>());
    return reinterpret_cast<T*>(raw());
  }
  void* raw() const { return storage_ ? storage_->data() + offset_ : nullptr; }

  // Views (no copy). Negative dims count from the end.
  Tensor slice(int d, int64_t start, int64_t length) const;  // [start, start+length) along d
  Tensor select(int d, int64_t index) const;                 // drops dimension d
  Tensor reshape(Shape shape) const;                         // contiguous only; one -1 allowed
  Tensor unsqueeze(int d) const;
  Tensor transpose(int d0, int d1) const;                    // swaps two dimensions (strided view)

  // Copies.
  Tensor clone() const;       // always a new contiguous tensor of the same dtype
  Tensor contiguous() const;  // *this when already contiguous, else clone()
  Tensor to(DType dtype) const;  // new contiguous tensor converted element-wise (float <-> float/int; to an integer type saturates, NaN -> 0)
  // Copies `src` (same shape, any strides, any dtype convertible to ours) into this view.
  void copy_from(const Tensor& src);
  void fill(float value);

  // Element access for tests and small tools (slow: bounds- and dtype-checked, converts to float).
  float item(std::initializer_list<int64_t> index) const;
  std::vector<float> to_vector() const;  // row-major, converted to float

  std::string describe() const;  // "F32[2, 3]"

 private:
  int norm_dim(int d) const {  // inline: size()/stride() sit in inner loops
    const int nd = dim(), r = d < 0 ? d + nd : d;
    if (r < 0 || r >= nd) [[unlikely]] bad_dim(d);
    return r;
  }
  [[noreturn]] void bad_dim(int d) const;
  void check_dtype(DType want) const;
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;  // bytes
  Shape shape_;
  Shape strides_;
  DType dtype_ = DType::F32;
};

Shape contiguous_strides(std::span<const int64_t> shape);

// For a contiguous view of borrowed memory (a mapped weights file) that was copied and is not needed
// now: its whole pages leave the process's resident set (madvise MADV_DONTNEED; read from the file
// again if touched), so a converted or reordered copy is not held twice. No effect on owned storage.
void release_file_pages(const Tensor& t);

// Row-major index of the first NaN or infinity in a floating-point tensor, or -1 when every value is
// finite (integer tensors: always -1). A branch-free pass over blocks, so checking every weight of a
// model at load costs about one read of it.
int64_t first_non_finite(const Tensor& t);

}  // namespace longseq
