// Layers made of other layers that read a sequence in both directions or on both strands
// (Caduceus): BiMamba runs two Mamba mixers, one over the reversed rows; the reverse-complement
// wrapper runs one layer on a channel half and, reversed in rows and columns, on the other; the
// half swap is the released Caduceus-PS block's channel exchange. They only move rows and columns
// (the backend's flip) around layers that already exist, so every backend and precision runs them,
// and their backward is the inner layers' backward with the same moves undone.
#include "core/error.h"
#include "core/nn/layers.h"
#include "core/nn/mamba_core.h"

#include <algorithm>
#include <atomic>

namespace longseq::nn {

namespace {

std::atomic<int64_t> g_bimamba_budget{int64_t(512) << 20};

// A token-wise layer (no state, streams) gives the same rows whichever order they come in.
template <class T>
bool token_wise(const Layer<T>& l) {
  return l.streams() && l.state_size() == 0;
}

// The two directions' cores (core/nn/mamba_core.h) between one in_proj and one out_proj: the reverse
// mixer's projections are the forward one's (the released weight tie), so
//   y = out_proj(y_fwd + flip_L(y_rev)),  y_fwd = core_fwd(in_proj(x)),  y_rev = core_rev(flip_L(in_proj(x)))
// is the official fwd(x) + flip_L(rev(flip_L(x))) with each projection computed once.
template <class T>
class BiMamba final : public Layer<T> {
 public:
  BiMamba(const OffsetOf& off, const std::string& prefix, const MambaMixerShape& s)
      : fwd_(off, bimamba_direction_prefix(prefix, false), s), rev_(off, bimamba_direction_prefix(prefix, true), s), s_(s),
        in_w_(required_param(off, bimamba_direction_prefix(prefix, false) + "in_proj.weight")),
        out_w_(required_param(off, bimamba_direction_prefix(prefix, false) + "out_proj.weight")) {
    LS_CHECK(!s.bias, "BiMamba: in_proj/out_proj biases are not supported (released Caduceus models have none)");
  }

  void check(const Backend<T>& be) const override { fwd_.check(be); }
  bool streams() const override { return false; }  // the reverse direction starts at the window's end
  bool causal() const override { return false; }

  // saved: sub 0 / 1 the cores' slots (the reverse one's x|z is the forward one's, rows reversed),
  // 0 y_fwd + flip(y_rev) (L, D)
  void forward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> y, Arena<T>& s) const override {
    const int64_t L = x.rows, D = s_.D;
    Arena<T>&f = s.sub(0), &r = s.sub(1);
    be.linear(x, p.at(in_w_), nullptr, f.mat(0, L, 2 * D));
    be.flip(f.mat(0, L, 2 * D), r.mat(0, L, 2 * D), true, false);
    fwd_.run(be, p, f, L, fwd_.saved_A(be, p, f), nullptr, true);
    rev_.run(be, p, r, L, rev_.saved_A(be, p, r), nullptr, true);
    add_flipped(be, f.mat(4, L, D), r.mat(4, L, D), s.mat(0, L, D));
    be.linear(s.mat(0, L, D), p.at(out_w_), nullptr, y);
  }
  void backward(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<const T> dy, Mat<T> dx, Arena<T>& s, Arena<T>& w) const override {
    const int64_t L = x.rows, D = s_.D;
    Mat<T> dsum = w.mat(0, L, D);
    const Mat<T> dsum_r = w.mat(1, L, D), dxz_f = w.mat(2, L, 2 * D), dxz_r = w.mat(3, L, 2 * D), dxz = w.mat(4, L, 2 * D);
    be.linear_backward(s.mat(0, L, D), p.at(out_w_), dy, &dsum, false, p.grad(out_w_), nullptr);
    be.flip(dsum, dsum_r, true, false);
    fwd_.backward(be, p, s.sub(0), L, dsum, dxz_f, w.sub(0));
    rev_.backward(be, p, s.sub(1), L, dsum_r, dxz_r, w.sub(0));
    add_flipped(be, dxz_f, dxz_r, dxz);
    be.linear_backward(x, p.at(in_w_), dxz, &dx, false, p.grad(in_w_), nullptr);
  }
  int64_t saved_per_token() const override { return 2 * fwd_.saved_per_token() + s_.D; }

  // Each direction runs in row blocks from a carried state (the reverse one from the window's end),
  // so the cores hold a block's activations. When the window's projections fit
  // bimamba_window_budget() (always on a device), in_proj runs once over the window and out_proj
  // once over y_fwd + flip(y_rev) (3 D floats per token held); otherwise each block projects its
  // own rows in each direction.
  void infer(Backend<T>& be, const Params<T>& p, Mat<const T> x, Mat<T> y, T*, Derived<T>& derived, Arena<T>& work) const override {
    const int64_t L = x.rows, D = s_.D, d = s_.d, DN = s_.D * s_.N;
    LS_CHECK(y.ld == y.cols, "BiMamba needs a contiguous output (a caller bug)");
    const T* A[2] = {derived.sub(0).get(0, DN, [&](T* a) { fwd_.make_A(be, p, a); }),
                     derived.sub(1).get(0, DN, [&](T* a) { rev_.make_A(be, p, a); })};
    const bool shared = !be.host_memory() || L * 3 * D * int64_t(sizeof(T)) <= bimamba_window_budget();
    const Mat<T> xz = work.mat(5, shared ? L : 0, 2 * D), sum = work.mat(6, shared ? L : 0, D);
    if (shared) be.linear(x, p.at(in_w_), nullptr, xz);
    T* state = work.get(1, fwd_.state_size());
    Arena<T>& a = work.sub(0);
    for (const bool reverse : {false, true}) {
      be.zero(state, fwd_.state_size());
      for (int64_t done = 0; done < L; done += kBlock) {
        const int64_t rows = std::min(kBlock, L - done), r0 = reverse ? L - done - rows : done;
        const Mat<T> in = a.mat(0, rows, 2 * D), out = a.mat(4, rows, D);
        if (shared) {  // the block's projected rows, last to first for the reverse direction
          be.flip(xz.rows_slice(r0, rows), in, reverse, false);
        } else {
          const Mat<T> flipped = work.mat(2, rows, d);
          if (reverse) be.flip(x.rows_slice(r0, rows), flipped, true, false);
          be.linear(reverse ? Mat<const T>(flipped) : x.rows_slice(r0, rows), p.at(in_w_), nullptr, in);
        }
        (reverse ? rev_ : fwd_).run(be, p, a, rows, A[reverse], state, false);
        if (shared) {  // sum = y_fwd, then += flip(y_rev)
          add_rows(be, sum.rows_slice(r0, rows), out, reverse, work.mat(3, rows, D));
          continue;
        }
        const Mat<T> proj = work.mat(3, rows, d);
        be.linear(out, p.at(out_w_), nullptr, proj);
        add_rows(be, y.rows_slice(r0, rows), proj, reverse, work.mat(4, rows, d));
      }
    }
    if (shared) be.linear(sum, p.at(out_w_), nullptr, y);
  }

 private:
  static constexpr int64_t kBlock = 4096;
  // dst = src (the forward direction writes first) or dst += flip_L(src) through `tmp` (contiguous).
  static void add_rows(Backend<T>& be, Mat<T> dst, Mat<const T> src, bool reverse, Mat<T> tmp) {
    if (!reverse) return be.flip(src, dst, false, false);
    be.flip(src, tmp, true, false);
    be.add(dst.data, tmp.data, dst.rows * dst.cols);
  }
  // out = a + flip_L(b), all contiguous and out distinct from both.
  static void add_flipped(Backend<T>& be, Mat<const T> a, Mat<const T> b, Mat<T> out) {
    LS_CHECK(a.ld == a.cols && out.ld == out.cols, "BiMamba needs contiguous matrices (a caller bug)");
    be.flip(b, out, true, false);
    be.add(out.data, a.data, out.rows * out.cols);
  }

  MambaCore<T> fwd_, rev_;
  MambaMixerShape s_;
  int64_t in_w_, out_w_;
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

int64_t bimamba_window_budget() { return g_bimamba_budget.load(); }
void set_bimamba_window_budget(int64_t bytes) { g_bimamba_budget.store(bytes); }

std::string bimamba_direction_prefix(const std::string& prefix, bool reverse) { return prefix + (reverse ? "mamba_rev." : "mamba_fwd."); }

template <class T>
std::shared_ptr<const Layer<T>> make_bimamba(const OffsetOf& off, const std::string& prefix, const MambaMixerShape& s) {
  // The reverse mixer's projections are the forward one's tensors (bidirectional_weight_tie).
  const std::string fwd = bimamba_direction_prefix(prefix, false), rev = bimamba_direction_prefix(prefix, true);
  const OffsetOf tied = [off, fwd, rev](const std::string& name) {
    const bool projection = name.starts_with(rev + "in_proj.") || name.starts_with(rev + "out_proj.");
    return off(projection ? fwd + name.substr(rev.size()) : name);
  };
  return std::make_shared<BiMamba<T>>(tied, prefix, s);
}

ParamDecls bimamba_params(const std::string& prefix, const MambaMixerShape& s, int64_t n_layer) {
  ParamDecls p = mamba_mixer_params(bimamba_direction_prefix(prefix, false), s, n_layer);
  const std::string rev = bimamba_direction_prefix(prefix, true);
  for (ParamDecl& d : mamba_mixer_params(rev, s, n_layer))  // its in_proj and out_proj are the forward mixer's
    if (!d.name.starts_with(rev + "in_proj.") && !d.name.starts_with(rev + "out_proj.")) p.push_back(std::move(d));
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
  template std::shared_ptr<const Layer<T>> make_bimamba<T>(const OffsetOf&, const std::string&, const MambaMixerShape&);       \
  template std::shared_ptr<const Layer<T>> make_rc_wrapper<T>(std::shared_ptr<const Layer<T>>, int64_t);                       \
  template std::shared_ptr<const Layer<T>> make_swap_halves<T>(int64_t);
LONGSEQ_INSTANTIATE(float)
LONGSEQ_INSTANTIATE(double)
#undef LONGSEQ_INSTANTIATE

}  // namespace longseq::nn
