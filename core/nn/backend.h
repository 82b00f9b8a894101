// The one op set every layer (core/nn/layers.h) is written against: memory, transfers and the
// forward/backward pairs of the layers' arithmetic, on Mat views (core/mat.h) of the backend's
// memory. An op is declared once here; each backend implements all of them: the CPU
// (cpu_backend.cpp: the op library of core/ops/ops.h, float and double) and a device (device_backend.cpp:
// the CUDA kernels through DeviceOps, float; the tests' emulated device runs the same kernel
// source on the CPU). A layer's code therefore runs unchanged on every backend, and one test per
// layer compares the backends.
// Gradient contract: activation gradients (dx, du, ...) are WRITTEN, unless an `accumulate` flag
// says otherwise; parameter gradients (dw, db, ...) are ADDED, so a parameter used twice (a tied
// embedding, one Sin frequency used by three layers) sums without extra code. Null gradient
// pointers mean "not needed". Letters: L rows (tokens), D channels, N state size, V vocabulary.
#pragma once

#include "core/error.h"
#include "core/mat.h"
#include "core/nn/memory.h"
#include "core/ops/ops.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace longseq {
class DeviceOps;
}

namespace longseq::nn {

// The conv's and the scan's arguments are the CPU op library's (core/ops/ops.h has their math and
// the state conventions), so the CPU backend passes them through. In scan_backward the gradients
// du .. dz and dA are written, dDskip and ddelta_bias added; dh0 and `chunk` are the CPU ops' own.
using ops::ConvArgs;
using ops::ScanArgs;
using ops::ScanGrads;

// Gated long convolution: y[t, c] = gate[t, c] * (sum_{s <= t} k[s, c] u[t - s, c] + bias[c] u[t, c]).
// Inference may give the filter's spectrum (fft_spectrum, made once per length) instead of k.
template <class T>
struct FftConvArgs {
  Mat<const T> u, k, gate;  // (L, D) each; gate.data null: no gate
  const T* bias = nullptr;  // (D) or null
  const T* spectrum = nullptr;
};

// A linear layer's (O, K) weight as the model holds it: T, or bf16 kept as the file stores it
// (the CPU widens it per GEMM tile, core/ops/linear.cpp; a device model holds fp32). Made from a
// plain pointer where a layer has only T weights.
template <class T>
struct LinearWeight {
  const T* f = nullptr;
  const uint16_t* bf16 = nullptr;
  LinearWeight(const T* w) : f(w) {}  // NOLINT(google-explicit-constructor): every T weight is one
  static LinearWeight of_bf16(const uint16_t* w) {
    LinearWeight r(nullptr);
    r.bf16 = w;
    return r;
  }
};

// GELU's two forms: the tanh approximation (HyenaDNA, the hybrid) and the exact x Phi(x) (Evo 2).
enum class Gelu { tanh, erf };

// Memory (arrays, transfers, copy, zero) is the Memory<T> interface (core/nn/memory.h).
template <class T>
class Backend : public Memory<T> {
 public:
  virtual std::string name() const = 0;
  // True when the backend's pointers are host memory (the model then uses its host arrays in place).
  virtual bool host_memory() const = 0;
  // The kernels' limits (the CPU has none): a layer checks them before it runs (Layer::check).
  virtual int64_t max_conv_width() const = 0;
  virtual int64_t max_scan_states() const = 0;

  // ---- element-wise ----
  virtual void add(T* y, const T* x, int64_t n) = 0;  // y += x
  // out = a * b element by element (out may be a).
  virtual void mul(Mat<const T> a, Mat<const T> b, Mat<T> out) = 0;
  // y = x with rows and/or columns reversed (ops::flip); x and y must not overlap.
  virtual void flip(Mat<const T> x, Mat<T> y, bool rows, bool cols) = 0;
  // y = gelu(x); dx = dy * gelu'(x) (dx may be dy): the tanh approximation or the exact (erf) form.
  virtual void gelu(Gelu kind, const T* x, T* y, int64_t n) = 0;
  virtual void gelu_backward(Gelu kind, const T* x, const T* dy, T* dx, int64_t n) = 0;
  // y[r, c] = sin(freq[c] x[r, c]); dx written, dfreq[c] += sum_r cos(freq x) dy x.
  virtual void sin_columns(Mat<const T> x, const T* freq, Mat<T> y) = 0;
  virtual void sin_columns_backward(Mat<const T> x, const T* freq, Mat<const T> dy, Mat<T> dx, T* dfreq) = 0;

  // ---- layers' ops ----
  // out[l] = table[ids[l]] (ids: backend memory, each in [0, V)); dtable[ids[l]] += dout[l].
  virtual void embedding(const int64_t* ids, const T* table, int64_t V, Mat<T> out) = 0;
  virtual void embedding_backward(const int64_t* ids, Mat<const T> dout, T* dtable, int64_t V) = 0;
  // A row norm over the columns (ops::NormKind; RMSNorm: b null, mean unused); mean and rstd (L) saved.
  virtual void norm(ops::NormKind kind, double eps, Mat<const T> x, const T* w, const T* b, Mat<T> y, T* mean, T* rstd) = 0;
  virtual void norm_backward(ops::NormKind kind, double eps, Mat<const T> x, const T* w, const T* b, const T* mean, const T* rstd,
                             Mat<const T> dy, Mat<T> dx, T* dw, T* db) = 0;
  // y (M, O) = x (M, K) w (O, K)^T + b; dx (written, or added with accumulate_dx) = dy w. Only the
  // forward takes a bf16 weight: a model that trains holds T weights.
  virtual void linear(Mat<const T> x, LinearWeight<T> w, const T* b, Mat<T> y) = 0;
  virtual void linear_backward(Mat<const T> x, const T* w, Mat<const T> dy, Mat<T>* dx, bool accumulate_dx, T* dw, T* db) = 0;
  virtual void conv1d(const ConvArgs<T>& a, Mat<T> out) = 0;
  virtual void conv1d_backward(const ConvArgs<T>& a, Mat<const T> dout, Mat<T> dx, T* dw, T* db) = 0;
  // `saved` (scan_saved_size floats) holds what this backend's backward recomputes from; null when
  // no backward follows (inference), and then `a.state` may be set.
  virtual int64_t scan_saved_size(int64_t L, int64_t D, int64_t N) const = 0;
  virtual void scan(const ScanArgs<T>& a, Mat<T> y, T* saved) = 0;
  virtual void scan_backward(const ScanArgs<T>& a, const T* saved, Mat<const T> dy, const ScanGrads<T>& g) = 0;
  // `saved` (fft_conv_saved_size floats) likewise; dk and dgate are written, dbias added.
  virtual int64_t fft_conv_saved_size(int64_t L, int64_t D) const = 0;
  // Floats of k's spectrum for fft_conv's `spectrum` (0: this backend takes k only), and making it.
  virtual int64_t fft_spectrum_size(int64_t L, int64_t D) const { return (void)L, (void)D, 0; }
  virtual void fft_spectrum(Mat<const T> k, T* spectrum) { (void)k, (void)spectrum; }
  virtual void fft_conv(const FftConvArgs<T>& a, Mat<T> y, T* saved) = 0;
  virtual void fft_conv_backward(const FftConvArgs<T>& a, const T* saved, Mat<const T> dy, Mat<T> du, Mat<T> dk, Mat<T> dgate,
                                 T* dbias) = 0;

  // ---- ops that not every backend has yet: supports() says, a layer's check() asks, the
  // defaults throw naming the backend and the op ----
  enum class Op { attention, modal };
  virtual bool supports(Op op) const { return (void)op, true; }
  // Causal attention (ops::causal_attention_forward; lse (H, Lq) or null) and its backward (dq, dk,
  // dv written), and rotary positions in place (ops::rotary).
  virtual void attention(const ops::AttentionArgs<T>& a, Mat<T> y, T* lse) { (void)a, (void)y, (void)lse, unsupported("attention"); }
  virtual void attention_backward(const ops::AttentionArgs<T>& a, Mat<const T> y, const T* lse, Mat<const T> dy, Mat<T> dq, Mat<T> dk,
                                  Mat<T> dv) {
    (void)a, (void)y, (void)lse, (void)dy, (void)dq, (void)dk, (void)dv, unsupported("attention");
  }
  virtual void rotary(Mat<T> x, int64_t heads, int64_t head_dim, const T* inv_freq, int64_t offset, double pos_scale, bool inverse) {
    (void)x, (void)heads, (void)head_dim, (void)inv_freq, (void)offset, (void)pos_scale, (void)inverse, unsupported("attention");
  }
  // The modal long filter (ops::modal_scan, ops::modal_filter and its backward).
  virtual void modal_scan(const ops::ModalArgs<T>& a, Mat<T> y) { (void)a, (void)y, unsupported("modal"); }
  virtual void modal_filter(const T* log_poles, const T* residues, int64_t N, Mat<T> k) {
    (void)log_poles, (void)residues, (void)N, (void)k, unsupported("modal");
  }
  virtual void modal_filter_backward(const T* log_poles, const T* residues, int64_t N, Mat<const T> dk, T* dlog_poles, T* dresidues) {
    (void)log_poles, (void)residues, (void)N, (void)dk, (void)dlog_poles, (void)dresidues, unsupported("modal");
  }

 protected:
  [[noreturn]] void unsupported(const char* op) const {
    throw Error(fmt::format("--device {}: no {} kernel on this backend yet; use --device cpu", name(), op));
  }
};

// An owned array of one backend's memory; movable, freed on destruction.
template <class T>
class Buf {
 public:
  Buf() = default;
  Buf(Backend<T>& be, int64_t n) : be_(&be), p_(be.alloc(std::max<int64_t>(n, 1))), n_(n) {}
  Buf(Buf&& o) noexcept : be_(o.be_), p_(std::exchange(o.p_, nullptr)), n_(o.n_) {}
  Buf& operator=(Buf&& o) noexcept {
    std::swap(be_, o.be_), std::swap(p_, o.p_), std::swap(n_, o.n_);
    return *this;
  }
  Buf(const Buf&) = delete;
  ~Buf() {
    if (p_) be_->free(p_);
  }
  T* get() const { return p_; }
  int64_t size() const { return n_; }

 private:
  Backend<T>* be_ = nullptr;
  T* p_ = nullptr;
  int64_t n_ = 0;
};

// Arrays reused from call to call: slot i keeps the largest size asked of it.
template <class T>
class Arena {
 public:
  explicit Arena(Backend<T>& be) : be_(&be) {}
  T* get(size_t slot, int64_t n) {
    if (slot >= bufs_.size()) bufs_.resize(slot + 1);
    if (bufs_[slot].size() < n || !bufs_[slot].get()) bufs_[slot] = Buf<T>(*be_, n);
    return bufs_[slot].get();
  }
  Mat<T> mat(size_t slot, int64_t rows, int64_t cols) { return longseq::mat(get(slot, rows * cols), rows, cols); }
  // A nested arena, made on first use: a layer built from other layers gives each of them its own
  // (their slots are numbered from 0 too).
  Arena& sub(size_t i) {
    if (i >= subs_.size()) subs_.resize(i + 1);
    if (!subs_[i]) subs_[i] = std::make_unique<Arena>(*be_);
    return *subs_[i];
  }
  Backend<T>& backend() const { return *be_; }

 private:
  Backend<T>* be_;
  std::vector<Buf<T>> bufs_;
  std::vector<std::unique_ptr<Arena>> subs_;
};

// Host values made from a model's weights that all its callers share (a long convolution's filter
// spectra per length), thread-safe. A key's value is made the second time it is asked for, so a
// one-off window never pays for it, and kept while the total stays within the byte budget.
class SharedCache {
 public:
  explicit SharedCache(size_t budget_bytes) : budget_(budget_bytes) {}
  void set_budget(size_t bytes) {
    const std::lock_guard lock(mutex_);
    budget_ = bytes;
  }
  // The value under (owner, key), or null when it is not (yet) kept; `make` runs outside the lock.
  template <class V, class Make>
  std::shared_ptr<const V> get(const void* owner, int64_t key, size_t bytes, Make&& make) {
    const Key k{owner, key};
    {
      const std::lock_guard lock(mutex_);
      if (auto it = values_.find(k); it != values_.end()) return std::static_pointer_cast<const V>(it->second);
      if (seen_.insert(k).second || used_ + bytes > budget_) return nullptr;
    }
    std::shared_ptr<const V> v = std::make_shared<const V>(make());
    const std::lock_guard lock(mutex_);
    if (values_.emplace(k, v).second) used_ += bytes;
    return v;
  }

 private:
  using Key = std::pair<const void*, int64_t>;
  std::mutex mutex_;
  size_t budget_, used_ = 0;
  std::map<Key, std::shared_ptr<const void>> values_;
  std::set<Key> seen_;
};

// Values derived from a model's weights alone (A = -exp(A_log), a filter for a length), made once
// by an inference model and reused by every call: key i is made by `make(ptr)` the first time it
// is asked for. Owned by one caller at a time (like an Arena); `shared()` is the model's cache for
// what all its callers share (null when it has none).
template <class T>
class Derived {
 public:
  explicit Derived(Backend<T>& be, SharedCache* shared = nullptr) : arena_(be), shared_(shared) {}
  template <class Make>
  const T* get(int64_t key, int64_t n, Make&& make) {
    auto it = slot_.find(key);
    if (it == slot_.end()) {
      it = slot_.emplace(key, slot_.size()).first;
      make(arena_.get(it->second, n));
    }
    return arena_.get(it->second, n);
  }
  SharedCache* shared() const { return shared_; }
  // A nested set of values for a layer that a composite layer is built from (see Arena::sub).
  Derived& sub(size_t i) {
    if (i >= subs_.size()) subs_.resize(i + 1);
    if (!subs_[i]) subs_[i] = std::make_unique<Derived>(arena_.backend(), shared_);
    return *subs_[i];
  }

 private:
  Arena<T> arena_;
  std::map<int64_t, size_t> slot_;
  SharedCache* shared_;
  std::vector<std::unique_ptr<Derived>> subs_;
};

// The CPU backend (one shared instance per precision).
template <class T>
std::shared_ptr<Backend<T>> cpu_backend();
// A device backend over `ops` (float: the kernels compute in fp32).
std::shared_ptr<Backend<float>> device_backend(std::shared_ptr<DeviceOps> ops);

}  // namespace longseq::nn
