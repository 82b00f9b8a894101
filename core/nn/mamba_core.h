// The Mamba-1 mixer between its projections, written once for the two layers that run it: the
// mixer (in_proj, this, out_proj) and BiMamba (one in_proj and one out_proj shared by a core per
// direction: the released weight tie makes computing them twice redundant).
//   xz (L, 2D) -> y (L, D) = selective_scan(u = silu(conv(x)), delta, B, C, z) with dt|B|C = x_proj(u),
//   delta = dt_proj(dt) (bias and softplus in the scan), y gated by silu(z).
// It works in the caller's arena `s`: the caller writes xz into slot 0; the core fills 1 conv out
// (L, D), 2 dt|B|C (L, R+2N), 3 delta (L, D), 4 y (L, D), 5 the scan's saved (training), 6 A (D, N)
// (training; inference takes A from the caller's Derived). The backward uses work slots 2..6.
#pragma once

#include "core/error.h"
#include "core/nn/layers.h"

#include <cmath>
#include <string>
#include <vector>

namespace longseq::nn {

// Offset of a named tensor the layer cannot run without.
inline int64_t required_param(const OffsetOf& off, const std::string& name) {
  const int64_t o = off(name);
  LS_CHECK(o >= 0, "the model has no tensor '{}'", name);
  return o;
}

template <class T>
class MambaCore {
 public:
  MambaCore(const OffsetOf& off, const std::string& m, const MambaMixerShape& s)
      : s_(s), conv_w_(required_param(off, m + "conv1d.weight")), conv_b_(off(m + "conv1d.bias")),
        x_w_(required_param(off, m + "x_proj.weight")), dt_w_(required_param(off, m + "dt_proj.weight")),
        dt_b_(required_param(off, m + "dt_proj.bias")), A_log_(required_param(off, m + "A_log")), D_(required_param(off, m + "D")) {}

  void check(const Backend<T>& be) const {
    LS_CHECK(s_.W <= be.max_conv_width() && s_.N <= be.max_scan_states(),
             "--device {}: d_conv {} or d_state {} exceeds the kernels' limits ({} and {}); use --device cpu", be.name(), s_.W, s_.N,
             be.max_conv_width(), be.max_scan_states());
  }
  // The conv's last W inputs (W, D), then the SSM state (D, N).
  int64_t state_size() const { return s_.W * s_.D + s_.D * s_.N; }
  // Floats per token in `s` for a backward: xz, conv out, dt|B|C, delta, y.
  int64_t saved_per_token() const { return 2 * s_.D + s_.D + (s_.R + 2 * s_.N) + s_.D + s_.D; }

  // A = -exp(A_log), made on the host and uploaded.
  void make_A(Backend<T>& be, const Params<T>& p, T* A) const {
    std::vector<T> host_A(static_cast<size_t>(s_.D * s_.N));
    const T* A_log = p.host_at(A_log_);
    for (size_t k = 0; k < host_A.size(); ++k) host_A[k] = -std::exp(A_log[k]);
    be.upload(A, host_A.data(), s_.D * s_.N);
  }
  // A for a training pass, in slot 6 of `s` (what backward reads).
  const T* saved_A(Backend<T>& be, const Params<T>& p, Arena<T>& s) const {
    T* A = s.get(6, s_.D * s_.N);
    make_A(be, p, A);
    return A;
  }
  // Slots 1-4 of `s` from xz in slot 0 (L rows), from and into `state` (conv, then SSM) when given;
  // the scan keeps what its backward needs in slot 5 when `keep` (training).
  void run(Backend<T>& be, const Params<T>& p, Arena<T>& s, int64_t L, const T* A, T* state, bool keep) const {
    const int64_t D = s_.D, N = s_.N, R = s_.R, X = R + 2 * N;
    const Mat<T> xz = s.mat(0, L, 2 * D), xc = s.mat(1, L, D), xdbl = s.mat(2, L, X), delta = s.mat(3, L, D), y = s.mat(4, L, D);
    be.conv1d({.x = xz.cols_slice(0, D), .w = p.at(conv_w_), .b = p.at(conv_b_), .W = s_.W, .silu = true, .state = state}, xc);
    be.linear(xc, p.at(x_w_), nullptr, xdbl);
    be.linear(xdbl.cols_slice(0, R), p.at(dt_w_), nullptr, delta);  // bias and softplus in the scan
    be.scan(scan_args(p, s, L, A, state ? state + s_.W * D : nullptr), y, keep ? s.get(5, be.scan_saved_size(L, D, N)) : nullptr);
  }
  // dxz (L, 2D, written) from dy (L, D), the gradient of slot 4; parameter gradients added.
  void backward(Backend<T>& be, const Params<T>& p, Arena<T>& s, int64_t L, Mat<const T> dy, Mat<T> dxz, Arena<T>& w) const {
    const int64_t D = s_.D, N = s_.N, R = s_.R, X = R + 2 * N;
    const Mat<T> xz = s.mat(0, L, 2 * D), xc = s.mat(1, L, D), xdbl = s.mat(2, L, X);
    Mat<T> dxc = w.mat(2, L, D), ddelta = w.mat(3, L, D), dxdbl = w.mat(4, L, X);
    T *dA = w.get(5, D * N), *dA_log = w.get(6, D * N);
    be.scan_backward(scan_args(p, s, L, s.get(6, D * N), nullptr), s.get(5, be.scan_saved_size(L, D, N)), dy,
                     {.du = dxc, .ddelta = ddelta, .dB = dxdbl.cols_slice(R, N), .dC = dxdbl.cols_slice(R + N, N),
                      .dz = dxz.cols_slice(D, D), .dA = dA, .dDskip = p.grad(D_), .ddelta_bias = p.grad(dt_b_)});
    if (T* gA = p.grad(A_log_)) {  // A = -exp(A_log): dA_log = dA * A
      be.mul(mat<const T>(dA, 1, D * N), mat<const T>(s.get(6, D * N), 1, D * N), mat(dA_log, 1, D * N));
      be.add(gA, dA_log, D * N);
    }
    Mat<T> ddt_in = dxdbl.cols_slice(0, R);
    be.linear_backward(xdbl.cols_slice(0, R), p.at(dt_w_), ddelta, &ddt_in, false, p.grad(dt_w_), nullptr);
    be.linear_backward(xc, p.at(x_w_), dxdbl, &dxc, true, p.grad(x_w_), nullptr);
    be.conv1d_backward({.x = xz.cols_slice(0, D), .w = p.at(conv_w_), .b = p.at(conv_b_), .W = s_.W, .silu = true}, dxc,
                       dxz.cols_slice(0, D), p.grad(conv_w_), p.grad(conv_b_));
  }
  // mamba_ssm's names and layouts: ssm_state (1, D, N); conv_state (1, D, W), oldest input first.
  std::vector<std::pair<std::string, Tensor>> state_tensors(const T* h) const {
    const int64_t D = s_.D, N = s_.N, W = s_.W;
    Tensor conv = Tensor::empty({1, D, W}), ssm = Tensor::empty({1, D, N});
    for (int64_t k = 0; k < W; ++k)
      for (int64_t c = 0; c < D; ++c) conv.data<float>()[c * W + k] = float(h[k * D + c]);
    for (int64_t i = 0; i < D * N; ++i) ssm.data<float>()[i] = float(h[W * D + i]);
    return {{"ssm_state", ssm}, {"conv_state", conv}};
  }
  const MambaMixerShape& shape() const { return s_; }

 private:
  ScanArgs<T> scan_args(const Params<T>& p, Arena<T>& s, int64_t L, const T* A, T* state) const {
    const int64_t D = s_.D, N = s_.N, R = s_.R, X = R + 2 * N;
    const Mat<T> xz = s.mat(0, L, 2 * D), xdbl = s.mat(2, L, X);
    return {.u = s.mat(1, L, D), .delta = s.mat(3, L, D), .B = xdbl.cols_slice(R, N), .C = xdbl.cols_slice(R + N, N),
            .z = xz.cols_slice(D, D), .A = A, .Dskip = p.at(D_), .delta_bias = p.at(dt_b_), .softplus = true, .state = state};
  }

  MambaMixerShape s_;
  int64_t conv_w_, conv_b_, x_w_, dt_w_, dt_b_, A_log_, D_;
};

}  // namespace longseq::nn
