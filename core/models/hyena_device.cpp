#include "core/models/hyena_device.h"

#include "core/error.h"
#include "kernels/fft_size.h"

#include <algorithm>

namespace longseq {

struct HyenaDeviceModel::Weights {
  struct Layer {
    DeviceArray<float> norm1_w, norm1_b, norm2_w, norm2_b, in_proj_w, in_proj_b, short_w, short_b, out_proj_w, out_proj_b, fc1_w, fc1_b,
        fc2_w, fc2_b, filter_bias;
  };
  DeviceArray<float> embedding, lm_head, ln_f_w, ln_f_b;
  std::vector<Layer> layers;
};

HyenaDeviceModel::HyenaDeviceModel(std::shared_ptr<const HyenaModel> model, std::shared_ptr<DeviceOps> ops)
    : model_(std::move(model)), ops_(std::move(ops)), w_(std::make_unique<Weights>()) {
  const HyenaConfig& c = model_->config();
  LS_CHECK(c.short_filter_order >= 1 && c.short_filter_order <= cuda::kConvMaxWidth,
           "device model: short filter order {} is outside the conv kernel's 1..{}; use --device cpu", c.short_filter_order,
           cuda::kConvMaxWidth);
  DeviceOps& o = *ops_;
  const auto& p = model_->parameters();
  w_->embedding = upload_tensor(o, p.embedding), w_->lm_head = upload_tensor(o, p.lm_head);
  w_->ln_f_w = upload_tensor(o, p.ln_f_w), w_->ln_f_b = upload_tensor(o, p.ln_f_b);
  for (const HyenaModel::Layer& ly : p.layers)
    w_->layers.push_back({upload_tensor(o, ly.norm1_w), upload_tensor(o, ly.norm1_b), upload_tensor(o, ly.norm2_w), upload_tensor(o, ly.norm2_b), upload_tensor(o, ly.in_proj_w),
                          upload_tensor(o, ly.in_proj_b), upload_tensor(o, ly.short_w), upload_tensor(o, ly.short_b), upload_tensor(o, ly.out_proj_w),
                          upload_tensor(o, ly.out_proj_b), upload_tensor(o, ly.fc1_w), upload_tensor(o, ly.fc1_b), upload_tensor(o, ly.fc2_w), upload_tensor(o, ly.fc2_b),
                          upload_tensor(o, ly.filter_bias)});
}

HyenaDeviceModel::~HyenaDeviceModel() = default;

const cuda::CFloat* HyenaDeviceModel::spectrum(int64_t layer, int64_t L) const {
  if (auto it = spectra_.find({layer, L}); it != spectra_.end()) return reinterpret_cast<const cuda::CFloat*>(it->second.get());
  const int64_t d = model_->d_model(), n = fft_fast_size(std::max<int64_t>(2 * L - 1, 2));
  const Tensor k = model_->filter(layer, L).contiguous();  // (L, d), computed on the host
  DeviceArray<float> k_dev(*ops_, L * d), spec(*ops_, 2 * d * (n / 2 + 1));
  ops_->to_device(k_dev.get(), k.data<float>(), L * d);
  ops_->fft_filter_spectrum(k_dev.get(), d, L, d, reinterpret_cast<cuda::CFloat*>(spec.get()));
  auto [it, inserted] = spectra_.emplace(std::pair{layer, L}, std::move(spec));
  return reinterpret_cast<const cuda::CFloat*>(it->second.get());
}

Tensor HyenaDeviceModel::run(std::span<const int64_t> ids) const {
  const HyenaConfig& c = model_->config();
  const int64_t L = int64_t(ids.size()), d = c.d_model, di = c.d_inner, V = vocab_size(), W = c.short_filter_order;
  LS_CHECK(L >= 1 && L <= c.max_seq_len, "hyenadna: input of {} tokens exceeds the model's max_seq_len {} (score a shorter window)", L,
           c.max_seq_len);
  DeviceOps& o = *ops_;
  DeviceArray<int64_t> id(o, L);
  DeviceArray<float> x(o, L * d), ns(o, L * d), ps(o, L * 3 * d), cs(o, L * 3 * d), u(o, L * d), y(o, L * d), h(o, L * di),
      logits(o, L * V);
  o.ids_to_device(id.get(), ids.data(), L);
  o.embedding({.tokens = L, .dim = d, .vocab = V, .ids = id.get(), .table = w_->embedding.get(), .out = x.get(), .out_r = d});
  const auto layer_norm = [&](const DeviceArray<float>& w, const DeviceArray<float>& b, float eps) {
    o.norm({.rows = L, .cols = d, .rms = false, .eps = eps, .x = x.get(), .x_r = d, .weight = w.get(), .bias = b.get(), .y = ns.get(), .y_r = d});
  };
  const int64_t n = fft_fast_size(std::max<int64_t>(2 * L - 1, 2));
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const Weights::Layer& ly = w_->layers[size_t(i)];
    layer_norm(ly.norm1_w, ly.norm1_b, HyenaModel::kBlockNormEps);
    o.linear(ns.get(), d, ly.in_proj_w.get(), ly.in_proj_b.get(), ps.get(), 3 * d, L, d, 3 * d);  // x0 | x1 | v
    o.conv1d({.batch = 1, .length = L, .channels = 3 * d, .width = W, .x = ps.get(), .x_b = 0, .x_l = 3 * d, .weight = ly.short_w.get(),
              .bias = ly.short_b.get(), .silu = false, .out = cs.get(), .out_b = 0, .out_l = 3 * d});
    o.multiply_rows({.rows = L, .cols = d, .a = cs.get() + d, .lda = 3 * d, .b = cs.get() + 2 * d, .ldb = 3 * d, .out = u.get(), .ldo = d});
    o.fft_conv({.batch = 1, .length = L, .channels = d, .u = {u.get(), 0, d}, .gate = {cs.get(), 0, 3 * d}, .bias = ly.filter_bias.get(),
                .filter = {L, d, n, spectrum(i, L)}, .y = y.get(), .y_b = 0, .y_l = d});
    o.linear(y.get(), d, ly.out_proj_w.get(), ly.out_proj_b.get(), u.get(), d, L, d, d);
    o.add(x.get(), u.get(), L * d);
    layer_norm(ly.norm2_w, ly.norm2_b, HyenaModel::kBlockNormEps);
    o.linear(ns.get(), d, ly.fc1_w.get(), ly.fc1_b.get(), h.get(), di, L, d, di);
    o.activation({.kind = cuda::Activation::gelu_tanh, .n = L * di, .x = h.get(), .out = h.get()});
    o.linear(h.get(), di, ly.fc2_w.get(), ly.fc2_b.get(), u.get(), d, L, di, d);
    o.add(x.get(), u.get(), L * d);
  }
  layer_norm(w_->ln_f_w, w_->ln_f_b, float(c.layer_norm_eps));
  o.linear(ns.get(), d, w_->lm_head.get(), nullptr, logits.get(), V, L, d, V);
  Tensor out = Tensor::empty({L, V});
  o.to_host(out.data<float>(), logits.get(), L * V);
  return out;
}

ForwardOutputs HyenaDeviceModel::forward(const Tensor& ids, const ForwardOptions& options) const {
  LS_CHECK(!options.hidden, "hidden states are not available from the device model yet; run with --device cpu for them");
  LS_CHECK(ids.dim() == 1, "hyenadna: expected 1-D token ids, got {}", ids.describe());
  const Tensor id64 = ids.dtype() == DType::I64 ? ids.contiguous() : ids.to(DType::I64);
  const std::lock_guard lock(mutex_);
  ForwardOutputs out;
  out.logits = run(std::span<const int64_t>(id64.data<int64_t>(), size_t(id64.size(0))));
  return out;
}

void HyenaDeviceModel::stream_logits(int64_t length, const IdSource& source, int64_t chunk, const LogitsSink& sink) const {
  LS_CHECK(chunk >= 1, "chunk must be >= 1, got {}", chunk);
  LS_CHECK(length <= max_length(), "hyenadna: input of {} tokens exceeds the model's max_seq_len {} (score a shorter window)", length,
           max_length());
  Tensor ids = Tensor::empty({length}, DType::I64);
  for (int64_t t0 = 0; t0 < length; t0 += chunk) {
    Tensor part = ids.slice(0, t0, std::min(chunk, length - t0));
    source(t0, part);
  }
  if (length == 0) return;
  Tensor logits;
  {
    const std::lock_guard lock(mutex_);
    logits = run(std::span<const int64_t>(ids.data<int64_t>(), size_t(length)));
  }
  for (int64_t t0 = 0; t0 < length; t0 += chunk) sink(t0, logits.slice(0, t0, std::min(chunk, length - t0)));
}

}  // namespace longseq
