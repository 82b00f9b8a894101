// The device backend of the layers' op set: DeviceOps (the CUDA kernels, or in the tests the same
// kernel source emulated on the CPU) in float. The kernels write their parameter gradients, so
// those go through a scratch array and are then added (backend.h's contract); the GEMMs add by
// their beta. One instance per model copy: the scratch arrays are not shared between threads.
#include "core/device/ops.h"
#include "core/error.h"
#include "core/nn/backend.h"
#include "kernels/fft_size.h"

namespace longseq::nn {

namespace {

class DeviceBackend final : public Backend<float> {
 public:
  explicit DeviceBackend(std::shared_ptr<DeviceOps> ops) : ops_(std::move(ops)), o_(*ops_) {}

  std::string name() const override { return o_.name(); }
  bool host_memory() const override { return false; }
  int64_t max_conv_width() const override { return cuda::kConvMaxWidth; }
  int64_t max_scan_states() const override { return cuda::kScanMaxStates; }

  float* alloc(int64_t n) override { return o_.alloc(n); }
  void free(float* p) override { o_.free(p); }
  int64_t* alloc_ids(int64_t n) override { return o_.alloc_ids(n); }
  void free_ids(int64_t* p) override { o_.free_ids(p); }
  void upload(float* dst, const float* host, int64_t n) override { o_.upload(dst, host, n); }
  void upload_ids(int64_t* dst, const int64_t* host, int64_t n) override { o_.upload_ids(dst, host, n); }
  void download(float* host, const float* src, int64_t n) override { o_.download(host, src, n); }
  void copy(float* dst, const float* src, int64_t n) override { o_.copy(dst, src, n); }
  void zero(float* p, int64_t n) override { o_.zero(p, n); }

  void add(float* y, const float* x, int64_t n) override { o_.add(y, x, n); }
  void flip(Mat<const float> x, Mat<float> y, bool rows, bool cols) override {
    o_.flip({.rows = y.rows, .cols = y.cols, .x = x.data, .ldx = x.ld, .out = y.data, .ldo = y.ld, .flip_rows = rows, .flip_cols = cols});
  }
  void mul(Mat<const float> a, Mat<const float> b, Mat<float> out) override {
    o_.multiply_rows({.rows = out.rows, .cols = out.cols, .a = a.data, .lda = a.ld, .b = b.data, .ldb = b.ld, .out = out.data, .ldo = out.ld});
  }
  static cuda::Activation activation(Gelu kind) { return kind == Gelu::erf ? cuda::Activation::gelu_erf : cuda::Activation::gelu_tanh; }
  void gelu(Gelu kind, const float* x, float* y, int64_t n) override {
    o_.activation({.kind = activation(kind), .n = n, .x = x, .out = y});
  }
  void gelu_backward(Gelu kind, const float* x, const float* dy, float* dx, int64_t n) override {
    o_.activation_backward({.kind = activation(kind), .n = n, .x = x, .dy = dy, .out = dx});
  }
  void sin_columns(Mat<const float> x, const float* freq, Mat<float> y) override {
    LS_ASSERT(x.ld == x.cols && y.ld == y.cols);
    o_.sin_columns({.rows = x.rows, .cols = x.cols, .x = x.data, .freq = freq, .y = y.data});
  }
  void sin_columns_backward(Mat<const float> x, const float* freq, Mat<const float> dy, Mat<float> dx, float* dfreq) override {
    LS_ASSERT(x.ld == x.cols && dy.ld == dy.cols && dx.ld == dx.cols);
    float* cos_dy = scratch(0, x.rows * x.cols);
    o_.sin_columns_backward({.rows = x.rows, .cols = x.cols, .x = x.data, .freq = freq, .dy = dy.data, .dx = dx.data, .cos_dy = cos_dy});
    if (!dfreq) return;  // dfreq[c] += sum over rows of cos(freq x) dy x
    o_.multiply_rows({.rows = x.rows, .cols = x.cols, .a = cos_dy, .lda = x.cols, .b = x.data, .ldb = x.cols, .out = cos_dy, .ldo = x.cols});
    float* sums = scratch(1, x.cols);
    o_.column_sums(cos_dy, x.cols, x.rows, x.cols, sums);
    o_.add(dfreq, sums, x.cols);
  }

  void embedding(const int64_t* ids, const float* table, int64_t V, Mat<float> out) override {
    o_.embedding({.tokens = out.rows, .dim = out.cols, .vocab = V, .ids = ids, .table = table, .out = out.data, .out_r = out.ld});
  }
  void embedding_backward(const int64_t* ids, Mat<const float> dout, float* dtable, int64_t V) override {
    float* part = scratch(0, V * dout.cols);
    o_.embedding_backward({.tokens = dout.rows, .dim = dout.cols, .vocab = V, .ids = ids, .dout = dout.data, .dout_r = dout.ld, .dtable = part});
    o_.add(dtable, part, V * dout.cols);
  }
  void norm(ops::NormKind kind, double eps, Mat<const float> x, const float* w, const float* b, Mat<float> y, float* mean, float* rstd) override {
    o_.norm({.rows = x.rows, .cols = x.cols, .rms = kind != ops::NormKind::layer, .eps_outside = kind == ops::NormKind::rms_eps_outside, .eps = float(eps), .x = x.data, .x_r = x.ld, .weight = w, .bias = b, .y = y.data,
             .y_r = y.ld, .mean = mean, .rstd = rstd});
  }
  void norm_backward(ops::NormKind kind, double eps, Mat<const float> x, const float* w, const float* b, const float* mean, const float* rstd,
                     Mat<const float> dy, Mat<float> dx, float* dw, float* db) override {
    const int64_t D = x.cols;
    float *pw = scratch(0, D), *pb = b ? scratch(1, D) : nullptr;
    o_.norm_backward({.fwd = {.rows = x.rows, .cols = D, .rms = kind != ops::NormKind::layer,
                              .eps_outside = kind == ops::NormKind::rms_eps_outside, .eps = float(eps), .x = x.data, .x_r = x.ld, .weight = w,
                              .bias = b, .mean = const_cast<float*>(mean), .rstd = const_cast<float*>(rstd)},
                      .dy = dy.data, .dy_r = dy.ld, .dx = dx.data, .dx_r = dx.ld, .dweight = pw, .dbias = pb});
    if (dw) o_.add(dw, pw, D);
    if (db && pb) o_.add(db, pb, D);
  }
  void linear(Mat<const float> x, LinearWeight<float> w, const float* b, Mat<float> y) override {
    LS_CHECK(!w.bf16, "a bf16 weight on the device (a model bug: device models hold fp32 weights)");
    o_.linear(x.data, x.ld, w.f, b, y.data, y.ld, x.rows, x.cols, y.cols);
  }
  void linear_backward(Mat<const float> x, const float* w, Mat<const float> dy, Mat<float>* dx, bool accumulate_dx, float* dw,
                       float* db) override {
    const int64_t M = x.rows, K = x.cols, O = dy.cols;
    if (dx)
      o_.gemm({.M = M, .N = K, .K = O, .alpha = 1.0f, .beta = accumulate_dx ? 1.0f : 0.0f, .A = dy.data, .lda = dy.ld, .B = w, .ldb = K,
               .C = dx->data, .ldc = dx->ld});
    if (dw)
      o_.gemm({.M = O, .N = K, .K = M, .trans_a = true, .alpha = 1.0f, .beta = 1.0f, .A = dy.data, .lda = dy.ld, .B = x.data, .ldb = x.ld,
               .C = dw, .ldc = K});
    if (db) {
      float* sums = scratch(0, O);
      o_.column_sums(dy.data, dy.ld, M, O, sums);
      o_.add(db, sums, O);
    }
  }
  // With a state (W, D), the kernel reads its last W - 1 rows and writes the last W - 1 inputs of
  // (state, x) to scratch; the state then becomes the last W rows of (state, x) in two copies.
  void conv1d(const ConvArgs<float>& a, Mat<float> out) override {
    check_silu_width(a);
    const int64_t L = a.x.rows, D = a.x.cols, W = a.W;
    cuda::CausalConv1dParams p = conv_params(a, out.data, out.ld);
    if (a.state && W > 1) p.init = a.state + D, p.final_state = scratch(4, (W - 1) * D);
    o_.conv1d(p);
    if (!a.state) return;
    o_.copy(a.state, L < W ? a.state + L * D : a.x.data + (L - W) * a.x.ld, D);  // row 0: the input at L - W
    if (W > 1) o_.copy(a.state + D, p.final_state, (W - 1) * D);
  }
  void conv1d_backward(const ConvArgs<float>& a, Mat<const float> dout, Mat<float> dx, float* dw, float* db) override {
    check_silu_width(a);
    const int64_t D = a.x.cols;
    float *pw = scratch(0, D * a.W), *pb = a.b ? scratch(1, D) : nullptr;
    o_.conv1d_backward({.fwd = conv_params(a, nullptr, 0), .dout = dout.data, .dout_b = 0, .dout_l = dout.ld, .dx = dx.data, .dx_b = 0,
                        .dx_l = dx.ld, .dweight = pw, .dbias = pb});
    if (dw) o_.add(dw, pw, D * a.W);
    if (db && pb) o_.add(db, pb, D);
  }
  // The kernels' backward recomputes the states (in segments) from the inputs: nothing is saved.
  int64_t scan_saved_size(int64_t, int64_t, int64_t) const override { return 0; }
  void scan(const ScanArgs<float>& a, Mat<float> y, float*) override {
    cuda::SelectiveScanParams p = scan_params(a);
    p.y = y.data, p.y_b = 0, p.y_l = y.ld;
    const int64_t DN = a.u.cols * a.B.cols;
    if (a.state) p.h0 = a.state, p.h_last = scratch(3, DN);  // the kernel's input and output do not alias
    o_.scan(p);
    if (a.state) o_.copy(a.state, p.h_last, DN);
  }
  void scan_backward(const ScanArgs<float>& a, const float*, Mat<const float> dy, const ScanGrads<float>& g) override {
    const int64_t D = a.u.cols, N = a.B.cols;
    float *pD = a.Dskip ? scratch(0, D) : nullptr, *pbias = a.delta_bias ? scratch(1, D) : nullptr;
    float* dA = g.dA ? g.dA : scratch(2, D * N);
    o_.scan_backward({.fwd = scan_params(a), .dy = dy.data, .dy_b = 0, .dy_l = dy.ld, .du = g.du.data, .du_b = 0, .du_l = g.du.ld,
                      .ddelta = g.ddelta.data, .ddelta_b = 0, .ddelta_l = g.ddelta.ld, .dz = a.z.data ? g.dz.data : nullptr, .dz_b = 0,
                      .dz_l = g.dz.ld, .dB = g.dB.data, .dB_b = 0, .dB_l = g.dB.ld, .dC = g.dC.data, .dC_b = 0, .dC_l = g.dC.ld, .dA = dA,
                      .dDskip = pD, .ddelta_bias = pbias});
    if (g.dDskip && pD) o_.add(g.dDskip, pD, D);
    if (g.ddelta_bias && pbias) o_.add(g.ddelta_bias, pbias, D);
  }
  // Saved: the filter's spectrum (D, n/2 + 1) complex, which the backward reuses.
  int64_t fft_conv_saved_size(int64_t L, int64_t D) const override { return 2 * D * (fft_bins(L)); }
  int64_t fft_spectrum_size(int64_t L, int64_t D) const override { return fft_conv_saved_size(L, D); }
  void fft_spectrum(Mat<const float> k, float* spectrum) override {
    o_.fft_filter_spectrum(k.data, k.ld, k.rows, k.cols, reinterpret_cast<cuda::CFloat*>(spectrum));
  }
  void fft_conv(const FftConvArgs<float>& a, Mat<float> y, float* saved) override {
    if (!a.spectrum) fft_spectrum(a.k, saved);
    cuda::FftConvParams p = fft_params(a, a.spectrum ? a.spectrum : saved);
    p.y = y.data, p.y_b = 0, p.y_l = y.ld;
    o_.fft_conv(p);
  }
  void fft_conv_backward(const FftConvArgs<float>& a, const float* saved, Mat<const float> dy, Mat<float> du, Mat<float> dk,
                         Mat<float> dgate, float* dbias) override {
    const int64_t D = a.u.cols;
    float* pb = a.bias ? scratch(0, D) : nullptr;
    o_.fft_conv_backward({.fwd = fft_params(a, saved), .dy = {dy.data, 0, dy.ld}, .du = du.data, .du_b = 0, .du_l = du.ld, .dk = dk.data,
                          .dk_l = dk.ld, .dgate = a.gate.data ? dgate.data : nullptr, .dgate_b = 0, .dgate_l = dgate.ld, .dbias = pb});
    if (dbias && pb) o_.add(dbias, pb, D);
  }

  void attention(const ops::AttentionArgs<float>& a, Mat<float> y, float* lse) override {
    cuda::AttentionParams p = attention_params(a);
    p.y = y.data, p.y_l = y.ld, p.lse = lse;
    o_.attention(p);
  }
  void attention_backward(const ops::AttentionArgs<float>& a, Mat<const float> y, const float* lse, Mat<const float> dy, Mat<float> dq,
                          Mat<float> dk, Mat<float> dv) override {
    cuda::AttentionParams p = attention_params(a);
    p.y = const_cast<float*>(y.data), p.y_l = y.ld, p.lse = const_cast<float*>(lse);
    o_.attention_backward({.fwd = p, .dy = dy.data, .dy_l = dy.ld, .dq = dq.data, .dq_l = dq.ld, .dk = dk.data, .dk_l = dk.ld, .dv = dv.data,
                           .dv_l = dv.ld});
  }
  void rotary(Mat<float> x, int64_t heads, int64_t head_dim, const float* inv_freq, int64_t offset, double pos_scale, bool inverse) override {
    o_.rotary({.rows = x.rows, .heads = heads, .head_dim = head_dim, .x = x.data, .x_l = x.ld, .inv_freq = inv_freq, .offset = offset,
               .pos_scale = pos_scale, .inverse = inverse});
  }
  void modal_scan(const ops::ModalArgs<float>& a, Mat<float> y) override {
    o_.modal_scan({.batch = 1, .length = a.u.rows, .channels = a.u.cols, .states = a.N, .u = a.u.data, .u_l = a.u.ld, .gate = a.gate.data,
                   .gate_l = a.gate.ld, .log_poles = a.log_poles, .residues = a.residues, .Dskip = a.Dskip, .state = a.state, .y = y.data,
                   .y_l = y.ld});
  }
  void modal_filter(const float* log_poles, const float* residues, int64_t N, Mat<float> k) override {
    o_.modal_filter({.length = k.rows, .channels = k.cols, .states = N, .log_poles = log_poles, .residues = residues, .k = k.data, .k_l = k.ld});
  }
  void modal_filter_backward(const float* log_poles, const float* residues, int64_t N, Mat<const float> dk, float* dlog_poles,
                             float* dresidues) override {
    const int64_t DN = dk.cols * N;
    float *pl = dlog_poles ? scratch(0, DN) : nullptr, *pr = dresidues ? scratch(1, DN) : nullptr;
    o_.modal_filter_backward({.length = dk.rows, .channels = dk.cols, .states = N, .log_poles = log_poles, .residues = residues,
                              .dk = dk.data, .k_l = dk.ld, .dlog_poles = pl, .dresidues = pr});
    if (pl) o_.add(dlog_poles, pl, DN);
    if (pr) o_.add(dresidues, pr, DN);
  }

 private:
  static cuda::AttentionParams attention_params(const ops::AttentionArgs<float>& a) {
    return {.batch = 1, .queries = a.q.rows, .keys = a.k.rows, .heads = a.heads, .kv_heads = a.kv_heads, .head_dim = a.head_dim,
            .offset = a.offset, .scale = float(a.scale), .window = a.window, .q = a.q.data, .q_l = a.q.ld, .k = a.k.data, .k_l = a.k.ld, .v = a.v.data,
            .v_l = a.v.ld};
  }
  static int64_t fft_bins(int64_t L) { return fft_fast_size(std::max<int64_t>(2 * L - 1, 2)) / 2 + 1; }

  // Device scratch arrays, slot by slot, kept for the next call.
  float* scratch(size_t slot, int64_t n) {
    if (slot >= scratch_.size()) scratch_.resize(slot + 1);
    if (scratch_[slot].size() < n) scratch_[slot] = Buf<float>(*this, n);
    return scratch_[slot].get();
  }
  // The kernels fuse SiLU only into the register kernels (up to kConvRegisterWidth taps).
  void check_silu_width(const ConvArgs<float>& a) const {
    LS_CHECK(!a.silu || a.W <= cuda::kConvRegisterWidth, "--device {}: a {}-tap conv with SiLU (the kernels fuse it up to {} taps); use --device cpu",
             name(), a.W, cuda::kConvRegisterWidth);
  }
  static cuda::CausalConv1dParams conv_params(const ConvArgs<float>& a, float* out, int64_t out_l) {
    return {.batch = 1, .length = a.x.rows, .channels = a.x.cols, .width = a.W, .x = a.x.data, .x_b = 0, .x_l = a.x.ld, .weight = a.w,
            .bias = a.b, .silu = a.silu, .out = out, .out_b = 0, .out_l = out_l};
  }
  static cuda::SelectiveScanParams scan_params(const ScanArgs<float>& a) {
    return {.batch = 1, .length = a.u.rows, .channels = a.u.cols, .states = a.B.cols, .u = a.u.data, .u_b = 0, .u_l = a.u.ld,
            .delta = a.delta.data, .delta_b = 0, .delta_l = a.delta.ld, .Bm = a.B.data, .B_b = 0, .B_l = a.B.ld, .Cm = a.C.data,
            .C_b = 0, .C_l = a.C.ld, .z = a.z.data, .z_b = 0, .z_l = a.z.ld, .A = a.A, .Dskip = a.Dskip, .delta_bias = a.delta_bias,
            .softplus = a.softplus};
  }
  static cuda::FftConvParams fft_params(const FftConvArgs<float>& a, const float* spectrum) {
    const int64_t L = a.u.rows, D = a.u.cols;
    return {.batch = 1, .length = L, .channels = D, .u = {a.u.data, 0, a.u.ld}, .gate = {a.gate.data, 0, a.gate.ld}, .bias = a.bias,
            .filter = {L, D, fft_fast_size(std::max<int64_t>(2 * L - 1, 2)), reinterpret_cast<const cuda::CFloat*>(spectrum)}};
  }

  std::shared_ptr<DeviceOps> ops_;
  DeviceOps& o_;
  std::vector<Buf<float>> scratch_;  // declared last: freed while ops_ is alive
};

}  // namespace

std::shared_ptr<Backend<float>> device_backend(std::shared_ptr<DeviceOps> ops) { return std::make_shared<DeviceBackend>(std::move(ops)); }

}  // namespace longseq::nn
