// Layers made of other layers that read a sequence in both directions or on both strands
// (Caduceus): BiMamba runs two Mamba mixers, one over the reversed rows; the reverse-complement
// wrapper runs one layer on a channel half and, reversed in rows and columns, on the other; the
// half swap is the released Caduceus-PS block's channel exchange. They only move rows and columns
// (the backend's flip) around layers that already exist, so every backend and precision runs them,
// and their backward is the inner layers' backward with the same moves undone.
#include "core/error.h"
#include "core/nn/layers.h"

#include <algorithm>

namespace longseq::nn {

namespace {

// y += t for a contiguous y (the layers below write into whole arena matrices).
template <class T>
void add_into(Backend<T>& be, Mat<T> y, Mat<const T> t) {
  LS_CHECK(y.ld == y.cols && t.ld == t.cols, "bidirectional layers need contiguous matrices (a caller bug)");
  be.add(y.data, t.data, y.rows * y.cols);
}

// A token-wise layer (no state, streams) gives the same rows whichever order they come in.
template <class T>
bool token_wise(const Layer<T>& l) {
  return l.streams() && l.state_size() == 0;
}

template <class T>
class BiMamba final : public Layer<T> {
 public:
  BiMamba(std::shared_ptr<const Layer<T>> fwd, std::shared_ptr<const Layer<T>> rev, int64_t d)
      : fwd_(std::move(fwd)), rev_(std::move(rev)), d_(d) {}

  void check(const Backend<T>& be) const override { fwd_->check(be); }
  bool streams() const override { return false; }  // the reverse mixer starts at the window's end
  bool causal() const override { return false; }

  // saved: sub 0 / 1 the mixers', 0 the reversed input (L, d), 1 / 2 the reverse output and its flip
  void forward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> y, Arena<T>& s) const override {
    const int64_t L = x.rows;
    fwd_->forward(be, p, x, y, s.sub(0));
    const Mat<T> xr = s.mat(0, L, d_), yr = s.mat(1, L, d_), t = s.mat(2, L, d_);
    be.flip(x, xr, true, false);
    rev_->forward(be, p, xr, yr, s.sub(1));
    be.flip(yr, t, true, false);
    add_into<T>(be, y, t);
  }
  void backward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<const T> dy, Mat<T> dx, Arena<T>& s, Arena<T>& w) const override {
    const int64_t L = x.rows;
    fwd_->backward(be, p, x, dy, dx, s.sub(0), w.sub(0));
    const Mat<T> dyr = w.mat(0, L, d_), dxr = w.mat(1, L, d_), t = w.mat(2, L, d_);
    be.flip(dy, dyr, true, false);
    rev_->backward(be, p, s.mat(0, L, d_), dyr, dxr, s.sub(1), w.sub(0));
    be.flip(dxr, t, true, false);
    add_into<T>(be, dx, t);
  }
  int64_t saved_per_token() const override { return fwd_->saved_per_token() + rev_->saved_per_token() + 3 * d_; }

  // Each direction streams through the window in row blocks from its own state, so a window holds
  // one block of the mixers' activations, not L rows of them.
  void infer(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> y, T*, Derived<T>& derived, Arena<T>& work) const override {
    const int64_t L = x.rows, block = be.host_memory() ? kHostBlock : kDeviceBlock, n = fwd_->state_size();
    T* state = work.get(0, n);
    be.zero(state, n);
    for (int64_t r0 = 0; r0 < L; r0 += block)
      fwd_->infer(be, p, x.rows_slice(r0, std::min(block, L - r0)), y.rows_slice(r0, std::min(block, L - r0)), state, derived.sub(0),
                  work.sub(0));
    be.zero(state, n);
    for (int64_t end = L; end > 0; end -= block) {
      const int64_t r0 = std::max<int64_t>(0, end - block), rows = end - r0;
      const Mat<T> xr = work.mat(1, rows, d_), yr = work.mat(2, rows, d_), t = work.mat(3, rows, d_);
      be.flip(x.rows_slice(r0, rows), xr, true, false);
      rev_->infer(be, p, xr, yr, state, derived.sub(1), work.sub(0));
      be.flip(yr, t, true, false);
      add_into<T>(be, y.rows_slice(r0, rows), t);
    }
  }

 private:
  static constexpr int64_t kHostBlock = 4096, kDeviceBlock = 65536;
  std::shared_ptr<const Layer<T>> fwd_, rev_;
  int64_t d_;
};

template <class T>
class RcWrapper final : public Layer<T> {
 public:
  RcWrapper(std::shared_ptr<const Layer<T>> inner, int64_t h) : inner_(std::move(inner)), h_(h), rows_(!token_wise(*inner_)) {}

  void check(const Backend<T>& be) const override { inner_->check(be); }
  bool streams() const override { return !rows_; }
  bool causal() const override { return !rows_ && inner_->causal(); }

  // saved: sub 0 / 1 the inner layer's for the first half and the reverse complement of the
  // second, 0 / 1 their inputs (L, h), 2 an output (L, h)
  void forward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> y, Arena<T>& s) const override {
    const int64_t L = x.rows;
    const Mat<T> a = s.mat(0, L, h_), b = s.mat(1, L, h_), out = s.mat(2, L, h_);
    be.flip(x.cols_slice(0, h_), a, false, false);
    inner_->forward(be, p, a, out, s.sub(0));
    be.flip(out, y.cols_slice(0, h_), false, false);
    be.flip(x.cols_slice(h_, h_), b, rows_, true);
    inner_->forward(be, p, b, out, s.sub(1));
    be.flip(out, y.cols_slice(h_, h_), rows_, true);
  }
  void backward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<const T> dy, Mat<T> dx, Arena<T>& s, Arena<T>& w) const override {
    const int64_t L = x.rows;
    const Mat<T> dout = w.mat(0, L, h_), din = w.mat(1, L, h_);
    be.flip(dy.cols_slice(0, h_), dout, false, false);
    inner_->backward(be, p, s.mat(0, L, h_), dout, din, s.sub(0), w.sub(0));
    be.flip(din, dx.cols_slice(0, h_), false, false);
    be.flip(dy.cols_slice(h_, h_), dout, rows_, true);
    inner_->backward(be, p, s.mat(1, L, h_), dout, din, s.sub(1), w.sub(0));
    be.flip(din, dx.cols_slice(h_, h_), rows_, true);
  }
  int64_t saved_per_token() const override { return 2 * inner_->saved_per_token() + 3 * h_; }

  void infer(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> y, T*, Derived<T>& derived, Arena<T>& work) const override {
    const int64_t L = x.rows;
    const Mat<T> in = work.mat(0, L, h_), out = work.mat(1, L, h_);
    for (const bool rc : {false, true}) {
      be.flip(x.cols_slice(rc ? h_ : 0, h_), in, rc && rows_, rc);
      inner_->infer(be, p, in, out, nullptr, derived.sub(0), work.sub(0));
      be.flip(out, y.cols_slice(rc ? h_ : 0, h_), rc && rows_, rc);
    }
  }

 private:
  std::shared_ptr<const Layer<T>> inner_;
  int64_t h_;
  bool rows_;  // the reverse complement reverses the rows too (not needed for a token-wise layer)
};

template <class T>
class SwapHalves final : public Layer<T> {
 public:
  explicit SwapHalves(int64_t h) : h_(h) {}
  void forward(Backend<T>& be, const Params<T>&, Mat<const T> x, Mat<T> y, Arena<T>&) const override { swap(be, x, y); }
  void backward(Backend<T>& be, const Params<T>&, Mat<const T>, Mat<const T> dy, Mat<T> dx, Arena<T>&, Arena<T>&) const override {
    swap(be, dy, dx);  // a permutation is its own transpose here
  }
  int64_t saved_per_token() const override { return 0; }

 private:
  void swap(Backend<T>& be, Mat<const T> x, Mat<T> y) const {
    be.flip(x.cols_slice(h_, h_), y.cols_slice(0, h_), false, false);
    be.flip(x.cols_slice(0, h_), y.cols_slice(h_, h_), false, false);
  }
  int64_t h_;
};

}  // namespace

std::string bimamba_direction_prefix(const std::string& prefix, bool reverse) { return prefix + (reverse ? "mamba_rev." : "mamba_fwd."); }

template <class T>
std::shared_ptr<const Layer<T>> make_bimamba(const OffsetOf& off, const std::string& prefix, const MambaMixerShape& s, bool tie) {
  const std::string fwd = bimamba_direction_prefix(prefix, false), rev = bimamba_direction_prefix(prefix, true);
  // With the weight tie, the reverse mixer's projections are the forward one's tensors.
  const OffsetOf rev_off = [off, fwd, rev, tie](const std::string& name) {
    if (tie && name.starts_with(rev + "in_proj.")) return off(fwd + name.substr(rev.size()));
    if (tie && name.starts_with(rev + "out_proj.")) return off(fwd + name.substr(rev.size()));
    return off(name);
  };
  return std::make_shared<BiMamba<T>>(make_mamba_mixer<T>(off, fwd, s), make_mamba_mixer<T>(rev_off, rev, s), s.d);
}

ParamDecls bimamba_params(const std::string& prefix, const MambaMixerShape& s, int64_t n_layer, bool tie) {
  ParamDecls p = mamba_mixer_params(bimamba_direction_prefix(prefix, false), s, n_layer);
  const std::string rev = bimamba_direction_prefix(prefix, true);
  for (ParamDecl& d : mamba_mixer_params(rev, s, n_layer))
    if (!tie || !(d.name.starts_with(rev + "in_proj.") || d.name.starts_with(rev + "out_proj."))) p.push_back(std::move(d));
  return p;
}

template <class T>
std::shared_ptr<const Layer<T>> make_rc_wrapper(std::shared_ptr<const Layer<T>> inner, int64_t h) {
  return std::make_shared<RcWrapper<T>>(std::move(inner), h);
}

template <class T>
std::shared_ptr<const Layer<T>> make_swap_halves(int64_t h) {
  return std::make_shared<SwapHalves<T>>(h);
}

#define LONGSEQ_INSTANTIATE(T)                                                                                                      \
  template std::shared_ptr<const Layer<T>> make_bimamba<T>(const OffsetOf&, const std::string&, const MambaMixerShape&, bool); \
  template std::shared_ptr<const Layer<T>> make_rc_wrapper<T>(std::shared_ptr<const Layer<T>>, int64_t);                       \
  template std::shared_ptr<const Layer<T>> make_swap_halves<T>(int64_t);
LONGSEQ_INSTANTIATE(float)
LONGSEQ_INSTANTIATE(double)
#undef LONGSEQ_INSTANTIATE

}  // namespace longseq::nn
