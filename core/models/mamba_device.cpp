#include "core/models/mamba_device.h"

#include "core/error.h"

#include <fmt/format.h>

#include <algorithm>

namespace longseq {

struct MambaDeviceModel::Weights {
  struct Layer {
    DeviceArray<float> norm_w, norm_b, in_proj_w, in_proj_b, conv_w, conv_b, x_proj_w, dt_proj_w, dt_proj_b, A, Dskip, out_proj_w,
        out_proj_b;
  };
  DeviceArray<float> embedding, lm_head, norm_f_w, norm_f_b;
  std::vector<Layer> layers;
};

// Conv state: the last W - 1 pre-conv inputs (W - 1, D), oldest first; SSM state (D, N). Each kept
// twice, read from one and written to the other, then swapped (the kernels' inputs and outputs do
// not alias).
struct MambaDeviceModel::State {
  std::vector<DeviceArray<float>> conv, conv_next, ssm, ssm_next;
  int64_t position = 0;
};

struct MambaDeviceModel::Buffers {
  DeviceArray<int64_t> ids;
  DeviceArray<float> residual, normed, xz, xc, x_dbl, delta, y, h, logits;
  std::vector<float> host_logits;
};

MambaDeviceModel::MambaDeviceModel(std::shared_ptr<const MambaModel> model, std::shared_ptr<DeviceOps> ops, int64_t max_chunk)
    : model_(std::move(model)), ops_(std::move(ops)), max_chunk_(max_chunk), w_(std::make_unique<Weights>()),
      buf_(std::make_unique<Buffers>()) {
  const MambaConfig& c = model_->config();
  LS_CHECK(max_chunk_ >= 1, "device model: chunk must be >= 1, got {}", max_chunk_);
  LS_CHECK(c.d_state <= cuda::kScanMaxStates, "device model: d_state {} exceeds the scan kernel's {}; use --device cpu", c.d_state,
           cuda::kScanMaxStates);
  LS_CHECK(c.d_conv >= 1 && c.d_conv <= cuda::kConvMaxWidth, "device model: d_conv {} is outside the conv kernel's 1..{}; use --device cpu",
           c.d_conv, cuda::kConvMaxWidth);
  DeviceOps& o = *ops_;
  const auto& p = model_->parameters();
  w_->embedding = upload_tensor(o, p.embedding);
  w_->lm_head = upload_tensor(o, p.lm_head);
  w_->norm_f_w = upload_tensor(o, p.norm_f_w);
  w_->norm_f_b = upload_tensor(o, p.norm_f_b);
  for (const MambaModel::Layer& ly : p.layers)
    w_->layers.push_back({upload_tensor(o, ly.norm_w), upload_tensor(o, ly.norm_b), upload_tensor(o, ly.in_proj_w), upload_tensor(o, ly.in_proj_b),
                          upload_tensor(o, ly.conv_w), upload_tensor(o, ly.conv_b), upload_tensor(o, ly.x_proj_w), upload_tensor(o, ly.dt_proj_w),
                          upload_tensor(o, ly.dt_proj_b), upload_tensor(o, ly.A), upload_tensor(o, ly.Dskip), upload_tensor(o, ly.out_proj_w),
                          upload_tensor(o, ly.out_proj_b)});
  const int64_t C = max_chunk_, d = c.d_model, D = c.d_inner, N = c.d_state, R = c.dt_rank, V = model_->vocab_size();
  Buffers& b = *buf_;
  b.ids = DeviceArray<int64_t>(o, C);
  b.residual = DeviceArray<float>(o, C * d), b.normed = DeviceArray<float>(o, C * d), b.h = DeviceArray<float>(o, C * d);
  b.xz = DeviceArray<float>(o, C * 2 * D), b.xc = DeviceArray<float>(o, C * D), b.delta = DeviceArray<float>(o, C * D);
  b.y = DeviceArray<float>(o, C * D), b.x_dbl = DeviceArray<float>(o, C * (R + 2 * N)), b.logits = DeviceArray<float>(o, C * V);
  b.host_logits.resize(size_t(C * V));
}

MambaDeviceModel::~MambaDeviceModel() = default;

MambaDeviceModel::State MambaDeviceModel::new_state() const {
  const MambaConfig& c = model_->config();
  State s;
  for (int64_t i = 0; i < c.n_layer; ++i) {
    for (auto* v : {&s.conv, &s.conv_next}) {
      v->emplace_back(*ops_, std::max<int64_t>(1, (c.d_conv - 1) * c.d_inner));
      ops_->zero(v->back().get(), v->back().size());
    }
    for (auto* v : {&s.ssm, &s.ssm_next}) {
      v->emplace_back(*ops_, c.d_inner * c.d_state);
      ops_->zero(v->back().get(), v->back().size());
    }
  }
  return s;
}

MambaDeviceModel::State MambaDeviceModel::copy_state(const State& s) const {
  State t = new_state();
  for (size_t i = 0; i < s.conv.size(); ++i) {
    ops_->copy(t.conv[i].get(), s.conv[i].get(), s.conv[i].size());
    ops_->copy(t.ssm[i].get(), s.ssm[i].get(), s.ssm[i].size());
  }
  t.position = s.position;
  return t;
}

void MambaDeviceModel::run_chunk(std::span<const int64_t> ids, State& st, float* logits) const {
  const MambaConfig& c = model_->config();
  const int64_t n = int64_t(ids.size()), d = c.d_model, D = c.d_inner, N = c.d_state, R = c.dt_rank, W = c.d_conv, V = vocab_size();
  const int64_t xdbl_w = R + 2 * N;
  LS_CHECK(n >= 1 && n <= max_chunk_, "device model: chunk of {} tokens (1..{})", n, max_chunk_);
  DeviceOps& o = *ops_;
  Buffers& b = *buf_;
  o.ids_to_device(b.ids.get(), ids.data(), n);
  o.embedding({.tokens = n, .dim = d, .vocab = V, .ids = b.ids.get(), .table = w_->embedding.get(), .out = b.residual.get(), .out_r = d});
  const auto norm = [&](const DeviceArray<float>& w, const DeviceArray<float>& bias) {
    o.norm({.rows = n, .cols = d, .rms = c.rms_norm, .eps = float(c.norm_eps), .x = b.residual.get(), .x_r = d, .weight = w.get(),
            .bias = bias.get(), .y = b.normed.get(), .y_r = d});
  };
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const Weights::Layer& ly = w_->layers[size_t(i)];
    norm(ly.norm_w, ly.norm_b);
    o.linear(b.normed.get(), d, ly.in_proj_w.get(), ly.in_proj_b.get(), b.xz.get(), 2 * D, n, d, 2 * D);  // x | z
    o.conv1d({.batch = 1, .length = n, .channels = D, .width = W, .x = b.xz.get(), .x_b = 0, .x_l = 2 * D, .weight = ly.conv_w.get(),
              .bias = ly.conv_b.get(), .init = W > 1 ? st.conv[size_t(i)].get() : nullptr,
              .final_state = W > 1 ? st.conv_next[size_t(i)].get() : nullptr, .silu = true, .out = b.xc.get(), .out_b = 0, .out_l = D});
    std::swap(st.conv[size_t(i)], st.conv_next[size_t(i)]);
    o.linear(b.xc.get(), D, ly.x_proj_w.get(), nullptr, b.x_dbl.get(), xdbl_w, n, D, xdbl_w);      // dt | B | C
    o.linear(b.x_dbl.get(), xdbl_w, ly.dt_proj_w.get(), nullptr, b.delta.get(), D, n, R, D);       // bias and softplus in the scan
    o.scan({.batch = 1, .length = n, .channels = D, .states = N, .u = b.xc.get(), .u_b = 0, .u_l = D, .delta = b.delta.get(), .delta_b = 0,
            .delta_l = D, .Bm = b.x_dbl.get() + R, .B_b = 0, .B_l = xdbl_w, .Cm = b.x_dbl.get() + R + N, .C_b = 0, .C_l = xdbl_w,
            .z = b.xz.get() + D, .z_b = 0, .z_l = 2 * D, .A = ly.A.get(), .Dskip = ly.Dskip.get(), .delta_bias = ly.dt_proj_b.get(),
            .softplus = true, .h0 = st.ssm[size_t(i)].get(), .h_last = st.ssm_next[size_t(i)].get(), .y = b.y.get(), .y_b = 0, .y_l = D});
    std::swap(st.ssm[size_t(i)], st.ssm_next[size_t(i)]);
    o.linear(b.y.get(), D, ly.out_proj_w.get(), ly.out_proj_b.get(), b.h.get(), d, n, D, d);
    o.add(b.residual.get(), b.h.get(), n * d);
  }
  norm(w_->norm_f_w, w_->norm_f_b);
  o.linear(b.normed.get(), d, w_->lm_head.get(), nullptr, b.logits.get(), V, n, d, V);
  o.to_host(logits, b.logits.get(), n * V);
  st.position += n;
}

ForwardOutputs MambaDeviceModel::forward(const Tensor& ids, const ForwardOptions& options) const {
  LS_CHECK(!options.hidden, "hidden states are not available from the device model yet; run with --device cpu for them");
  LS_CHECK(ids.dim() == 1, "mamba: expected 1-D token ids, got {}", ids.describe());
  ForwardOutputs out;
  out.logits = Tensor::empty({ids.size(0), vocab_size()});
  stream_logits(ids, std::min(options.chunk, max_chunk_), [&](int64_t start, const Tensor& lg) { out.logits.slice(0, start, lg.size(0)).copy_from(lg); });
  return out;
}

void MambaDeviceModel::stream_logits(int64_t length, const IdSource& source, int64_t chunk, const LogitsSink& sink) const {
  LS_CHECK(chunk >= 1, "chunk must be >= 1, got {}", chunk);
  chunk = std::min(chunk, max_chunk_);
  const std::lock_guard lock(mutex_);
  State state = new_state();
  Tensor ids = Tensor::empty({std::min(chunk, std::max<int64_t>(length, 1))}, DType::I64);
  Tensor logits = Tensor::empty({ids.size(0), vocab_size()});
  for (int64_t t0 = 0; t0 < length; t0 += chunk) {
    const int64_t n = std::min(chunk, length - t0);
    Tensor id = ids.slice(0, 0, n), lg = logits.slice(0, 0, n);
    source(t0, id);
    const Tensor id64 = id.dtype() == DType::I64 ? id : id.to(DType::I64);
    run_chunk(std::span<const int64_t>(id64.data<int64_t>(), size_t(n)), state, lg.data<float>());
    sink(t0, lg);
  }
}

double MambaDeviceModel::run_scored(std::span<const int64_t> ids, State& state, std::vector<float>& carry) const {
  const int64_t L = int64_t(ids.size()), V = vocab_size();
  double sum = 0;
  for (int64_t t0 = 0; t0 < L; t0 += max_chunk_) {
    const int64_t n = std::min(max_chunk_, L - t0);
    const std::span<const int64_t> part = ids.subspan(size_t(t0), size_t(n));
    if (!carry.empty()) sum += sum_next_logprobs(Tensor::from_vector(carry, {1, V}), part.data(), 1);
    run_chunk(part, state, buf_->host_logits.data());
    const Tensor lg = Tensor::from_vector(std::vector<float>(buf_->host_logits.begin(), buf_->host_logits.begin() + n * V), {n, V});
    sum += sum_next_logprobs(lg, part.data() + 1, n - 1);
    carry = lg.select(0, n - 1).to_vector();
  }
  return sum;
}

ContinuationScores MambaDeviceModel::score_continuations(std::span<const int64_t> prefix,
                                                         std::span<const std::vector<int64_t>> suffixes) const {
  const std::lock_guard lock(mutex_);
  ContinuationScores out;
  State state = new_state();
  std::vector<float> carry;
  out.prefix = run_scored(prefix, state, carry);
  for (const auto& suffix : suffixes) {
    State s = copy_state(state);
    std::vector<float> c = carry;
    out.suffix.push_back(run_scored(suffix, s, c));
  }
  return out;
}

}  // namespace longseq
