// The backward steps the trainable models' device paths share (core/train/*_grad_device.cpp):
// parameters and gradients live on the device as two flat arrays laid out like the host's
// ParamTable, so an offset names a tensor in both, and each step below is the device twin of a
// core/train/grad_ops.h backward written against DeviceOps.
#pragma once

#include "core/device/ops.h"

#include <cstdint>
#include <vector>

namespace longseq::train {

struct DeviceSteps {
  DeviceOps& o;
  const float* weights = nullptr;  // device, the flat parameter table
  float* grads = nullptr;          // device, same layout; gradients are written (each tensor used once per pass)

  // Adds the device gradients (P floats) into the host's flat gradient.
  void add_grads_to(float* host_grad, int64_t P) const {
    std::vector<float> g(static_cast<size_t>(P));
    o.to_host(g.data(), grads, P);
    for (int64_t k = 0; k < P; ++k) host_grad[k] += g[size_t(k)];
  }

  const float* w(int64_t off) const { return off < 0 ? nullptr : weights + off; }
  float* g(int64_t off) const { return off < 0 ? nullptr : grads + off; }

  // For y = x w^T + b with x (M, K) (row stride ldx), w (O, K) at offset wo, b at bo (< 0: none):
  // dx (row stride lddx; beta 0 writes, 1 adds; null: not wanted) = dy w, dw = dy^T x, db = column sums of dy.
  void linear_backward(int64_t M, const float* x, int64_t ldx, int64_t K, int64_t wo, int64_t bo, int64_t O, const float* dy, int64_t ldy,
                       float* dx, int64_t lddx, float beta) const {
    if (dx) o.gemm({.M = M, .N = K, .K = O, .alpha = 1.0f, .beta = beta, .A = dy, .lda = ldy, .B = w(wo), .ldb = K, .C = dx, .ldc = lddx});
    o.gemm({.M = O, .N = K, .K = M, .trans_a = true, .alpha = 1.0f, .beta = 0.0f, .A = dy, .lda = ldy, .B = x, .ldb = ldx, .C = g(wo), .ldc = K});
    if (bo >= 0) o.column_sums(dy, ldy, M, O, g(bo));
  }

  // RMSNorm / LayerNorm over rows of `cols` contiguous floats, weight at wo and bias at bo (< 0: none).
  void norm_forward(int64_t M, int64_t cols, bool rms, double eps, int64_t wo, int64_t bo, const float* x, float* y, float* mean,
                    float* rstd) const {
    o.norm({.rows = M, .cols = cols, .rms = rms, .eps = float(eps), .x = x, .x_r = cols, .weight = w(wo), .bias = w(bo), .y = y, .y_r = cols,
            .mean = mean, .rstd = rstd});
  }
  // dx written from dy and the forward's saved mean / rstd; the weight and bias gradients too.
  void norm_backward(int64_t M, int64_t cols, bool rms, double eps, int64_t wo, int64_t bo, const float* x, const float* mean,
                     const float* rstd, const float* dy, float* dx) const {
    o.norm_backward({.fwd = {.rows = M, .cols = cols, .rms = rms, .eps = float(eps), .x = x, .x_r = cols, .weight = w(wo), .bias = w(bo),
                             .mean = const_cast<float*>(mean), .rstd = const_cast<float*>(rstd)},
                     .dy = dy, .dy_r = cols, .dx = dx, .dx_r = cols, .dweight = g(wo), .dbias = g(bo)});
  }
};

}  // namespace longseq::train
