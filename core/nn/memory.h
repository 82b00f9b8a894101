// Where arrays live, as one interface: the layers' backends (core/nn/backend.h) and the devices
// behind them (core/device/ops.h) both are one, so the calls a layer makes to move data are the
// calls a device implements. Arrays are uninitialised; each is released with the matching free,
// and a pointer belongs to the implementation that made it.
#pragma once

#include <cstdint>

namespace longseq::nn {

template <class T>
class Memory {
 public:
  virtual ~Memory() = default;
  virtual T* alloc(int64_t n) = 0;
  virtual void free(T* p) = 0;
  virtual int64_t* alloc_ids(int64_t n) = 0;  // token ids
  virtual void free_ids(int64_t* p) = 0;
  // Host to here, here to host, and within here.
  virtual void upload(T* dst, const T* host, int64_t n) = 0;
  virtual void upload_ids(int64_t* dst, const int64_t* host, int64_t n) = 0;
  virtual void download(T* host, const T* src, int64_t n) = 0;
  virtual void copy(T* dst, const T* src, int64_t n) = 0;
  virtual void zero(T* p, int64_t n) = 0;
};

}  // namespace longseq::nn
