// Host entry of the cross-entropy kernel (kernels/cross_entropy.cuh): 8 rows per block; targets
// out of range are found on the device and reported here.
#include "kernels/cross_entropy.cuh"
#include "kernels/cuda_check.h"
#include "kernels/device_util.h"

namespace longseq::cuda {

void cross_entropy(const CrossEntropyParams& p) {
  LS_CHECK(p.rows >= 1 && p.classes >= 1, "cross_entropy: bad sizes rows={} classes={}", p.rows, p.classes);
  LS_CHECK(p.logits && p.targets && p.loss, "cross_entropy: logits, targets and loss are required");
  DeviceScratch flag(1);  // an int's room
  CUDA_CHECK(cudaMemset(flag.ptr, 0, sizeof(float)));
  CrossEntropyParams q = p;
  q.bad_target = reinterpret_cast<int*>(flag.ptr);
  cross_entropy_run<8>(q, launch_on_device);
  int bad = 0;
  CUDA_CHECK(cudaMemcpy(&bad, flag.ptr, sizeof(int), cudaMemcpyDeviceToHost));
  LS_CHECK(bad == 0, "cross_entropy: row {} has a target >= the {} classes; check the labels against the model's vocabulary", bad - 1,
           p.classes);
}

}  // namespace longseq::cuda
