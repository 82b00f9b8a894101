#include "core/backend.h"

#if LONGSEQ_WITH_CUDA
#include "kernels/runtime.h"
#endif

namespace longseq {

#if LONGSEQ_WITH_CUDA
bool cuda_compiled() { return true; }
int cuda_device_count() { return cuda::device_count(); }
std::string cuda_device_summary() { return cuda::device_summary(); }
#else
bool cuda_compiled() { return false; }
int cuda_device_count() { return 0; }
std::string cuda_device_summary() { return "CUDA support not compiled in (configure with -DLONGSEQ_CUDA=ON)"; }
#endif

}  // namespace longseq
