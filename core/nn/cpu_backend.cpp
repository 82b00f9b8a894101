// The CPU backend of the layers' op set: host memory, and the ops of core/train/grad_ops.h
// (Eigen GEMMs, FFTW, deterministic blocked loops: the same bits for any thread count) in float
// (training) or double (the finite-difference checks). In float the conv and, when nothing is saved
// for a backward (inference), the scan are core/ops' SIMD paths, which carry the streaming state
// themselves. grad_ops' backwards add into every gradient; where backend.h says "written", the
// target is zeroed first.
#include "core/nn/backend.h"

#include "core/error.h"
#include "core/nn/host_view.h"
#include "core/ops/causal_conv1d.h"
#include "core/ops/gemm.h"
#include "core/ops/simd.h"
#include "core/ops/selective_scan.h"
#include "core/train/grad_ops.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <span>
#include <vector>

namespace longseq::nn {

namespace {

template <class T>
void zero_mat(Mat<T> m) {
  for (int64_t r = 0; r < m.rows; ++r) std::fill(m.row(r), m.row(r) + m.cols, T(0));
}

template <class T>
T gelu_tanh(T x) {
  const T k = T(0.7978845608028654);
  return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
}
template <class T>
T gelu_tanh_grad(T x) {
  const T k = T(0.7978845608028654), th = std::tanh(k * (x + T(0.044715) * x * x * x));
  return T(0.5) * (T(1) + th) + T(0.5) * x * (T(1) - th * th) * k * (T(1) + T(3 * 0.044715) * x * x);
}

constexpr int64_t kScanChunk = 256;  // tokens per saved scan state (the backward recomputes a chunk from it)

template <class T>
train::ScanGrad<T> scan_grad(const ScanArgs<T>& a) {
  return {.u = a.u, .delta = a.delta, .B = a.B, .C = a.C, .z = a.z, .A = a.A, .Dskip = a.Dskip, .delta_bias = a.delta_bias,
          .h0 = a.state, .softplus = a.softplus, .chunk = kScanChunk};
}

template <class T>
train::ConvGrad<T> conv_grad(const ConvArgs<T>& a) {
  return {.x = a.x, .w = a.w, .b = a.b, .init = a.state && a.W > 1 ? a.state + a.x.cols : nullptr, .W = a.W, .silu = a.silu};
}

// GELU (tanh form) in SIMD lanes, threads over large arrays (element-wise: any split gives the same bits).
void fast_gelu(const float* x, float* y, int64_t n) {
  const int64_t vec = n / simd::kLanes * simd::kLanes;
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < vec; i += simd::kLanes) simd::store(y + i, simd::gelu_tanh(simd::load(x + i)));
  for (int64_t i = vec; i < n; ++i) y[i] = gelu_tanh(x[i]);
}

// core/ops' conv (float, SIMD), which advances the state (W rows) itself.
void fast_conv1d(const ConvArgs<float>& a, Mat<float> out) {
  const int64_t D = a.x.cols;
  causal_conv1d({.x = view(a.x).unsqueeze(0), .weight = view(a.w, {D, a.W}), .bias = a.b ? view(a.b, {D}) : Tensor{},
                 .out = view(out).unsqueeze(0), .state = a.state ? view(a.state, {1, a.W, D}) : Tensor{},
                 .silu = a.silu});
}

// core/ops' scan (float, SIMD over channels), from and into the state when there is one.
void fast_scan(const ScanArgs<float>& a, Mat<float> y) {
  const int64_t D = a.u.cols, N = a.B.cols;
  const auto seq = [](Mat<const float> m) { return m.data ? view(m).unsqueeze(0) : Tensor{}; };
  selective_scan({.u = seq(a.u), .delta = seq(a.delta), .A = view(a.A, {D, N}), .B = seq(a.B), .C = seq(a.C),
                  .Dskip = a.Dskip ? view(a.Dskip, {D}) : Tensor{}, .z = seq(a.z), .delta_bias = a.delta_bias ? view(a.delta_bias, {D}) : Tensor{},
                  .delta_softplus = a.softplus, .y = view(y).unsqueeze(0),
                  .state = a.state ? view(a.state, {1, D, N}) : Tensor{}, .use_initial_state = a.state != nullptr});
}

// The state (W, D) becomes the last W rows of (state, x).
template <class T>
void advance_conv_state(T* state, int64_t W, Mat<const T> x) {
  const int64_t L = x.rows, D = x.cols;
  for (int64_t r = 0; r < W; ++r) {  // ascending: a row is read before it is overwritten
    const int64_t src = r + L;
    const T* from = src < W ? state + src * D : x.row(src - W);
    std::copy(from, from + D, state + r * D);
  }
}

template <class T>
class CpuBackend final : public Backend<T> {
 public:
  std::string name() const override { return "cpu"; }
  bool host_memory() const override { return true; }
  int64_t max_conv_width() const override { return std::numeric_limits<int64_t>::max(); }
  int64_t max_scan_states() const override { return std::numeric_limits<int64_t>::max(); }

  T* alloc(int64_t n) override { return new T[size_t(n)]; }
  void free(T* p) override { delete[] p; }
  int64_t* alloc_ids(int64_t n) override { return new int64_t[size_t(n)]; }
  void free_ids(int64_t* p) override { delete[] p; }
  void upload(T* dst, const T* host, int64_t n) override { copy(dst, host, n); }
  void upload_ids(int64_t* dst, const int64_t* host, int64_t n) override {
    if (n > 0 && dst != host) std::memmove(dst, host, size_t(n) * sizeof(int64_t));
  }
  void download(T* host, const T* src, int64_t n) override { copy(host, src, n); }
  void copy(T* dst, const T* src, int64_t n) override {
    if (n > 0 && dst != src) std::memmove(dst, src, size_t(n) * sizeof(T));
  }
  void zero(T* p, int64_t n) override { std::fill(p, p + n, T(0)); }

  void add(T* y, const T* x, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) y[i] += x[i];
  }
  void mul(Mat<const T> a, Mat<const T> b, Mat<T> out) override {
    for (int64_t r = 0; r < out.rows; ++r) {
      const T *ar = a.row(r), *br = b.row(r);
      T* o = out.row(r);
      for (int64_t c = 0; c < out.cols; ++c) o[c] = ar[c] * br[c];
    }
  }
  void gelu(const T* x, T* y, int64_t n) override {
    if constexpr (std::is_same_v<T, float>) {
      fast_gelu(x, y, n);
    } else {
      for (int64_t i = 0; i < n; ++i) y[i] = gelu_tanh(x[i]);
    }
  }
  void gelu_backward(const T* x, const T* dy, T* dx, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * gelu_tanh_grad(x[i]);
  }
  void sin_columns(Mat<const T> x, const T* freq, Mat<T> y) override {
    for (int64_t r = 0; r < x.rows; ++r)
      for (int64_t c = 0; c < x.cols; ++c) y.at(r, c) = std::sin(freq[c] * x.at(r, c));
  }
  void sin_columns_backward(Mat<const T> x, const T* freq, Mat<const T> dy, Mat<T> dx, T* dfreq) override {
    std::vector<double> sums(static_cast<size_t>(x.cols), 0.0);
    for (int64_t r = 0; r < x.rows; ++r)
      for (int64_t c = 0; c < x.cols; ++c) {
        const T cs = std::cos(freq[c] * x.at(r, c)) * dy.at(r, c);
        dx.at(r, c) = cs * freq[c];
        sums[size_t(c)] += double(cs * x.at(r, c));
      }
    if (dfreq)
      for (int64_t c = 0; c < x.cols; ++c) dfreq[c] += T(sums[size_t(c)]);
  }

  void embedding(const int64_t* ids, const T* table, int64_t V, Mat<T> out) override {
    for (int64_t l = 0; l < out.rows; ++l) {
      LS_CHECK(ids[l] >= 0 && ids[l] < V, "token id {} outside the vocabulary of {}", ids[l], V);
      std::copy(table + ids[l] * out.cols, table + (ids[l] + 1) * out.cols, out.row(l));
    }
  }
  void embedding_backward(const int64_t* ids, Mat<const T> dout, T* dtable, int64_t) override {
    train::embedding_backward<T>(std::span<const int64_t>(ids, size_t(dout.rows)), dout, dtable);
  }
  void norm(bool rms, double eps, Mat<const T> x, const T* w, const T* b, Mat<T> y, T* mean, T* rstd) override {
    if (rms)
      train::rms_norm_forward<T>(x, w, eps, y, rstd);
    else
      train::layer_norm_forward<T>(x, w, b, eps, y, mean, rstd);
  }
  void norm_backward(bool rms, double, Mat<const T> x, const T* w, const T*, const T* mean, const T* rstd, Mat<const T> dy, Mat<T> dx,
                     T* dw, T* db) override {
    zero_mat(dx);
    if (rms)
      train::rms_norm_backward<T>(x, w, rstd, dy, dx, dw);
    else
      train::layer_norm_backward<T>(x, w, mean, rstd, dy, dx, dw, db);
  }
  // float: core/ops' tiling (one tuned GEMM path for inference and training); double: the template.
  void linear(Mat<const T> x, const T* w, const T* b, Mat<T> y) override {
    if constexpr (std::is_same_v<T, float>) {
      Tensor out = view(y);
      longseq::linear(view(x), view(w, {y.cols, x.cols}), b ? view(b, {y.cols}) : Tensor{}, out);
    } else {
      train::linear_forward<T>(x, w, b, y);
    }
  }
  void linear_backward(Mat<const T> x, const T* w, Mat<const T> dy, Mat<T>* dx, bool accumulate_dx, T* dw, T* db) override {
    if (dx && !accumulate_dx) zero_mat(*dx);
    train::linear_backward<T>(x, w, dy, dx, dw, db);
  }
  void conv1d(const ConvArgs<T>& a, Mat<T> out) override {
    if constexpr (std::is_same_v<T, float>) {
      fast_conv1d(a, out);
    } else {
      train::causal_conv1d_forward<T>(conv_grad(a), out);
      if (a.state) advance_conv_state(a.state, a.W, a.x);
    }
  }
  void conv1d_backward(const ConvArgs<T>& a, Mat<const T> dout, Mat<T> dx, T* dw, T* db) override {
    zero_mat(dx);
    train::causal_conv1d_backward<T>(conv_grad(a), dout, dx, dw, db, nullptr);
  }
  int64_t scan_saved_size(int64_t L, int64_t D, int64_t N) const override { return train::scan_chunks(L, kScanChunk) * D * N; }
  void scan(const ScanArgs<T>& a, Mat<T> y, T* saved) override {
    if constexpr (std::is_same_v<T, float>) {
      if (!saved) return fast_scan(a, y);
    }
    std::vector<T> unsaved(saved ? 0 : size_t(scan_saved_size(a.u.rows, a.u.cols, a.B.cols)));
    train::selective_scan_forward<T>(scan_grad(a), y, saved ? saved : unsaved.data(), a.state);
  }
  void scan_backward(const ScanArgs<T>& a, const T* saved, Mat<const T> dy, const ScanGradOut<T>& g) override {
    for (Mat<T> m : {g.du, g.ddelta, g.dB, g.dC}) zero_mat(m);
    if (a.z.data) zero_mat(g.dz);
    const int64_t DN = a.u.cols * a.B.cols;
    if (g.dA) std::fill(g.dA, g.dA + DN, T(0));
    train::selective_scan_backward<T>(scan_grad(a), saved, dy,
                                      {.du = g.du, .ddelta = g.ddelta, .dB = g.dB, .dC = g.dC, .dz = g.dz, .dA = g.dA,
                                       .dDskip = g.dDskip, .ddelta_bias = g.ddelta_bias});
  }
  // Saved: the convolution with its skip term, before the gate (the gate's gradient is dy times it).
  int64_t fft_conv_saved_size(int64_t L, int64_t D) const override { return L * D; }
  void fft_conv(const FftConvArgs<T>& a, Mat<T> y, T* saved) override {
    const int64_t L = a.u.rows, D = a.u.cols;
    const Mat<T> f = mat(saved, L, D);
    train::fft_causal_conv_forward<T>(a.u, a.k, f);
    for (int64_t t = 0; t < L; ++t)
      for (int64_t c = 0; c < D; ++c) {
        if (a.bias) f.at(t, c) += a.bias[c] * a.u.at(t, c);
        y.at(t, c) = a.gate.data ? f.at(t, c) * a.gate.at(t, c) : f.at(t, c);
      }
  }
  void fft_conv_backward(const FftConvArgs<T>& a, const T* saved, Mat<const T> dy, Mat<T> du, Mat<T> dk, Mat<T> dgate,
                         T* dbias) override {
    const int64_t L = a.u.rows, D = a.u.cols;
    const Mat<const T> f = mat(saved, L, D);
    std::vector<T> df_buf(static_cast<size_t>(L * D));
    const Mat<T> df = mat(df_buf.data(), L, D);
    std::vector<double> sb(static_cast<size_t>(D), 0.0);
    for (int64_t t = 0; t < L; ++t)
      for (int64_t c = 0; c < D; ++c) {
        const T g = dy.at(t, c);
        df.at(t, c) = a.gate.data ? g * a.gate.at(t, c) : g;
        if (dgate.data) dgate.at(t, c) = g * f.at(t, c);
        du.at(t, c) = a.bias ? a.bias[c] * df.at(t, c) : T(0);
        sb[size_t(c)] += double(df.at(t, c) * a.u.at(t, c));
      }
    if (dbias)
      for (int64_t c = 0; c < D; ++c) dbias[c] += T(sb[size_t(c)]);
    zero_mat(dk);
    Mat<T>* dk_ptr = dk.data ? &dk : nullptr;
    train::fft_causal_conv_backward<T>(a.u, a.k, df, &du, dk_ptr);
  }
};

}  // namespace

template <class T>
std::shared_ptr<Backend<T>> cpu_backend() {
  static const std::shared_ptr<Backend<T>> backend = std::make_shared<CpuBackend<T>>();
  return backend;
}

template std::shared_ptr<Backend<float>> cpu_backend<float>();
template std::shared_ptr<Backend<double>> cpu_backend<double>();

}  // namespace longseq::nn
