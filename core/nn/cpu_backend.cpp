// The CPU backend of the layers' op set: host memory, and the op library of core/ops/ops.h (tiled
// Eigen GEMMs, FFTW, SIMD scan and conv, deterministic blocked loops: the same bits for any thread
// count) in float or double (the finite-difference checks). The library's backwards add into every
// gradient; where backend.h says "written", the target is zeroed first.
#include "core/nn/backend.h"

#include "core/error.h"
#include "core/ops/ops.h"
#include "core/ops/simd.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <span>
#include <type_traits>
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

template <class T>
T gelu_erf(T x) {
  return T(0.5) * x * (T(1) + std::erf(x * T(0.7071067811865476)));
}
template <class T>
T gelu_erf_grad(T x) {
  return T(0.5) * (T(1) + std::erf(x * T(0.7071067811865476))) + x * T(0.3989422804014327) * std::exp(T(-0.5) * x * x);
}

// GELU (tanh form) in SIMD lanes, threads over large arrays (element-wise: any split gives the same bits).
void fast_gelu(const float* x, float* y, int64_t n) {
  const int64_t vec = n / simd::kLanes * simd::kLanes;
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < vec; i += simd::kLanes) simd::store(y + i, simd::gelu_tanh(simd::load(x + i)));
  for (int64_t i = vec; i < n; ++i) y[i] = gelu_tanh(x[i]);
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
  void flip(Mat<const T> x, Mat<T> y, bool rows, bool cols) override { ops::flip(x, y, rows, cols); }
  void gelu(Gelu kind, const T* x, T* y, int64_t n) override {
    if (kind == Gelu::erf) {
      for (int64_t i = 0; i < n; ++i) y[i] = gelu_erf(x[i]);
    } else if constexpr (std::is_same_v<T, float>) {
      fast_gelu(x, y, n);
    } else {
      for (int64_t i = 0; i < n; ++i) y[i] = gelu_tanh(x[i]);
    }
  }
  void gelu_backward(Gelu kind, const T* x, const T* dy, T* dx, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (kind == Gelu::erf ? gelu_erf_grad(x[i]) : gelu_tanh_grad(x[i]));
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
    ops::embedding_backward<T>(std::span<const int64_t>(ids, size_t(dout.rows)), dout, dtable);
  }
  void norm(ops::NormKind kind, double eps, Mat<const T> x, const T* w, const T* b, Mat<T> y, T* mean, T* rstd) override {
    if (kind == ops::NormKind::layer)
      ops::layer_norm_forward<T>(x, w, b, eps, y, mean, rstd);
    else
      ops::rms_norm_forward<T>(x, w, eps, kind == ops::NormKind::rms_eps_outside, y, rstd);
  }
  void norm_backward(ops::NormKind kind, double eps, Mat<const T> x, const T* w, const T*, const T* mean, const T* rstd, Mat<const T> dy,
                     Mat<T> dx, T* dw, T* db) override {
    zero_mat(dx);
    if (kind != ops::NormKind::layer)
      ops::rms_norm_backward<T>(x, w, eps, kind == ops::NormKind::rms_eps_outside, rstd, dy, dx, dw);
    else
      ops::layer_norm_backward<T>(x, w, mean, rstd, dy, dx, dw, db);
  }
  void attention(const ops::AttentionArgs<T>& a, Mat<T> y, T* lse) override { ops::causal_attention_forward<T>(a, y, lse); }
  void attention_backward(const ops::AttentionArgs<T>& a, Mat<const T> y, const T* lse, Mat<const T> dy, Mat<T> dq, Mat<T> dk,
                          Mat<T> dv) override {
    zero_mat(dq), zero_mat(dk), zero_mat(dv);
    ops::causal_attention_backward<T>(a, y, lse, dy, dq, dk, dv);
  }
  void rotary(Mat<T> x, int64_t heads, int64_t head_dim, const T* inv_freq, int64_t offset, double pos_scale, bool inverse) override {
    ops::rotary<T>(x, heads, head_dim, inv_freq, offset, pos_scale, inverse);
  }
  void modal_scan(const ops::ModalArgs<T>& a, Mat<T> y) override { ops::modal_scan<T>(a, y); }
  void modal_filter(const T* log_poles, const T* residues, int64_t N, Mat<T> k) override { ops::modal_filter<T>(log_poles, residues, N, k); }
  void modal_filter_backward(const T* log_poles, const T* residues, int64_t N, Mat<const T> dk, T* dlog_poles, T* dresidues) override {
    ops::modal_filter_backward<T>(log_poles, residues, N, dk, dlog_poles, dresidues);
  }
  void linear(Mat<const T> x, LinearWeight<T> w, const T* b, Mat<T> y) override {
    if (!w.bf16) return ops::linear_forward<T>(x, w.f, b, y);
    if constexpr (std::is_same_v<T, float>) return ops::linear_forward_bf16(x, w.bf16, b, y);
    LS_CHECK(false, "a bf16 weight in a float64 model (a model bug: float64 models widen every weight)");
  }
  void linear_backward(Mat<const T> x, const T* w, Mat<const T> dy, Mat<T>* dx, bool accumulate_dx, T* dw, T* db) override {
    if (dx && !accumulate_dx) zero_mat(*dx);
    ops::linear_backward<T>(x, w, dy, dx, dw, db);
  }
  void conv1d(const ConvArgs<T>& a, Mat<T> out) override { ops::causal_conv1d_forward<T>(a, out); }
  void conv1d_backward(const ConvArgs<T>& a, Mat<const T> dout, Mat<T> dx, T* dw, T* db) override {
    zero_mat(dx);
    ops::causal_conv1d_backward<T>(a, dout, dx, dw, db, nullptr);
  }
  int64_t scan_saved_size(int64_t L, int64_t D, int64_t N) const override { return ops::scan_chunks(L, ScanArgs<T>{}.chunk) * D * N; }
  void scan(const ScanArgs<T>& a, Mat<T> y, T* saved) override { ops::selective_scan_forward<T>(a, y, saved); }
  void scan_backward(const ScanArgs<T>& a, const T* saved, Mat<const T> dy, const ScanGrads<T>& g) override {
    for (Mat<T> m : {g.du, g.ddelta, g.dB, g.dC}) zero_mat(m);
    if (a.z.data) zero_mat(g.dz);
    if (g.dA) std::fill(g.dA, g.dA + a.u.cols * a.B.cols, T(0));
    ops::selective_scan_backward<T>(a, saved, dy, g);
  }
  // Saved: the convolution with its skip term, before the gate (the gate's gradient is dy times it).
  int64_t fft_conv_saved_size(int64_t L, int64_t D) const override { return L * D; }
  void fft_conv(const FftConvArgs<T>& a, Mat<T> y, T* saved) override {
    const int64_t L = a.u.rows, D = a.u.cols;
    const Mat<T> f = mat(saved, L, D);
    ops::fft_causal_conv_forward<T>(a.u, a.k, f);
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
    ops::fft_causal_conv_backward<T>(a.u, a.k, df, &du, dk_ptr);
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
