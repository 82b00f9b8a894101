// Host entries of the modal long-filter kernels (kernels/modal.cuh): validate, launch on the
// default stream, synchronize.
#include "kernels/cuda_check.h"
#include "kernels/device_util.h"
#include "kernels/modal.cuh"

namespace longseq::cuda {

namespace {
void check_sizes(int64_t L, int64_t D, int64_t N, const char* who) {
  LS_CHECK(L >= 0 && D >= 1 && N >= 1 && N <= kModalMaxStates, "{}: bad sizes L={} D={} N={} (N in 1..{})", who, L, D, N, kModalMaxStates);
}
}  // namespace

void modal_scan(const ModalParams& p) {
  check_sizes(p.length, p.channels, p.states, "modal_scan");
  LS_CHECK(p.batch >= 1 && p.batch <= 65535 && p.u && p.log_poles && p.residues && p.y, "modal_scan: B={} (1..65535), u, log_poles, residues and y are required", p.batch);
  modal_scan_run(p, launch_on_device);
  CUDA_CHECK(cudaDeviceSynchronize());
}

void modal_filter(const ModalFilterParams& p) {
  check_sizes(p.length, p.channels, p.states, "modal_filter");
  LS_CHECK(p.log_poles && p.residues && p.k, "modal_filter: log_poles, residues and k are required");
  if (p.length == 0) return;
  modal_filter_run(p, false, launch_on_device);
  CUDA_CHECK(cudaDeviceSynchronize());
}

void modal_filter_backward(const ModalFilterParams& p) {
  check_sizes(p.length, p.channels, p.states, "modal_filter_backward");
  LS_CHECK(p.log_poles && p.residues && p.dk, "modal_filter_backward: log_poles, residues and dk are required");
  modal_filter_run(p, true, launch_on_device);
  CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace longseq::cuda
