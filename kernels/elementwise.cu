// Host entries of the activations and the embedding (kernels/elementwise.cuh). Out-of-range ids are
// flagged on the device and reported here with the token index.
#include "kernels/cuda_check.h"
#include "kernels/device_util.h"
#include "kernels/elementwise.cuh"

namespace longseq::cuda {

namespace {

void run_activation(const ActivationParams& p, bool backward) {
  LS_CHECK(p.n >= 0 && p.x && p.out && (!backward || p.dy), "activation: x, out (and dy for the backward) are required");
  if (p.n == 0) return;
  activation_run(p, backward, int64_t(sm_count()) * 32, launch_on_device);
  CUDA_CHECK(cudaDeviceSynchronize());
}

void check_embedding(const EmbeddingParams& p, const char* who) {
  LS_CHECK(p.tokens >= 1 && p.dim >= 1 && p.vocab >= 1, "{}: bad sizes T={} D={} V={}", who, p.tokens, p.dim, p.vocab);
  LS_CHECK(p.ids, "{}: ids are required", who);
  LS_CHECK(p.tokens <= 0x7fffffff && p.vocab <= 0x7fffffff && (p.dim + kLanes - 1) / kLanes <= 65535, "{}: sizes exceed the grid", who);
}

}  // namespace

void activation_forward(const ActivationParams& p) { run_activation(p, false); }
void activation_backward(const ActivationParams& p) { run_activation(p, true); }

namespace {

void run_sin_columns(const SinColumnsParams& p, bool backward) {
  LS_CHECK(p.rows >= 0 && p.cols >= 1 && p.x && p.freq && (backward ? p.dy && p.dx : p.y != nullptr),
           "sin_columns: x, freq and y (or dy and dx for the backward) are required");
  if (p.rows == 0) return;
  sin_columns_run(p, backward, int64_t(sm_count()) * 32, launch_on_device);
  CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace

void sin_columns_forward(const SinColumnsParams& p) { run_sin_columns(p, false); }
void sin_columns_backward(const SinColumnsParams& p) { run_sin_columns(p, true); }

void add_inplace(float* y, const float* x, int64_t n) {
  LS_CHECK(y && x && n >= 0, "add_inplace: y and x are required");
  if (n == 0) return;
  add_run(AddParams{n, y, x}, int64_t(sm_count()) * 32, launch_on_device);
  CUDA_CHECK(cudaDeviceSynchronize());
}

void multiply_rows(const MulRowsParams& p) {
  LS_CHECK(p.a && p.b && p.out && p.rows >= 0 && p.cols >= 0, "multiply_rows: a, b and out are required");
  if (p.rows * p.cols == 0) return;
  mul_rows_run(p, int64_t(sm_count()) * 32, launch_on_device);
  CUDA_CHECK(cudaDeviceSynchronize());
}

void flip(const FlipParams& p) {
  LS_CHECK(p.x && p.out && p.rows >= 0 && p.cols >= 0, "flip: x and out are required");
  if (p.rows * p.cols == 0) return;
  flip_run(p, int64_t(sm_count()) * 32, launch_on_device);
  CUDA_CHECK(cudaDeviceSynchronize());
}

void column_sums(int64_t batch, int64_t length, int64_t channels, BLD a, BLD x2, BLD x3, float* out) {
  LS_CHECK(a.ptr && out && batch >= 1 && length >= 1 && channels >= 1, "column_sums: bad arguments B={} L={} D={}", batch, length, channels);
  const int64_t groups = (channels + kLanes - 1) / kLanes;
  const int64_t tiles = std::max<int64_t>(1, std::min<int64_t>(length, 8 * int64_t(sm_count()) / groups));
  DeviceScratch partial(column_sums_scratch(channels, tiles));
  column_sums_run(ColumnSumParams{batch, length, channels, tiles, 0, a, x2, x3, partial.ptr, out}, launch_on_device);
  CUDA_CHECK(cudaDeviceSynchronize());
}

void embedding_forward(const EmbeddingParams& p) {
  check_embedding(p, "embedding_forward");
  LS_CHECK(p.table && p.out, "embedding_forward: table and out are required");
  DeviceScratch flag(1);
  CUDA_CHECK(cudaMemset(flag.ptr, 0, sizeof(float)));
  EmbeddingParams q = p;
  q.bad_id = reinterpret_cast<int*>(flag.ptr);
  embedding_forward_run(q, launch_on_device);
  int bad = 0;
  CUDA_CHECK(cudaMemcpy(&bad, flag.ptr, sizeof(int), cudaMemcpyDeviceToHost));
  LS_CHECK(bad == 0, "embedding_forward: token {} has an id outside the vocabulary of {}; check the tokenizer against the model", bad - 1,
           p.vocab);
}

void embedding_backward(const EmbeddingParams& p) {
  check_embedding(p, "embedding_backward");
  LS_CHECK(p.dout && p.dtable, "embedding_backward: dout and dtable are required");
  embedding_backward_run(p, launch_on_device);
  CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace longseq::cuda
