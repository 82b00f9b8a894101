// CUDA_CHECK wraps every runtime call: a failure becomes a longseq::Error naming the call, the file
// and line, and the CUDA error string.
#pragma once

#include "kernels/error.h"

#include <cuda_runtime.h>

#define CUDA_CHECK(call)                                                                                 \
  do {                                                                                                   \
    const cudaError_t err_ = (call);                                                                     \
    if (err_ != cudaSuccess)                                                                             \
      ::longseq::fail("CUDA error {} ({}) in {} at {}:{}", cudaGetErrorName(err_), cudaGetErrorString(err_), \
                      #call, __FILE__, __LINE__);                                                         \
  } while (0)
