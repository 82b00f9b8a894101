#include "core/models/mamba.h"

#include "core/error.h"
#include "core/fileio.h"
#include "core/temp_paths.h"
#include "core/random.h"
#include "core/models/weights.h"
#include "core/ops/causal_conv1d.h"
#include "core/ops/embedding.h"
#include "core/ops/gemm.h"
#include "core/ops/norm.h"
#include "core/ops/selective_scan.h"

#include <fmt/format.h>

#include <cmath>

namespace longseq {

namespace {

Tensor neg_exp(const Tensor& a_log) {
  Tensor A = Tensor::empty(a_log.shape());
  const float* s = a_log.data<float>();
  float* d = A.data<float>();
  for (int64_t i = 0; i < A.numel(); ++i) d[i] = -std::exp(s[i]);
  return A;
}

Tensor optional(WeightLoader& w, const std::string& name, bool present, const Shape& shape) {
  if (!present) {
    if (w.has(name)) fail("unexpected tensor '{}': the config says this bias is absent (check config.json)", name);
    return {};
  }
  return w.get(name, shape);
}

}  // namespace

MambaModel::MambaModel(MambaConfig config, Tensor embedding, Tensor lm_head, std::vector<Layer> layers, Tensor norm_f_w,
                       Tensor norm_f_b)
    : cfg_(std::move(config)),
      embedding_(std::move(embedding)),
      lm_head_(std::move(lm_head)),
      layers_(std::move(layers)),
      norm_f_w_(std::move(norm_f_w)),
      norm_f_b_(std::move(norm_f_b)) {}

std::unique_ptr<MambaModel> MambaModel::load(const ModelDir& dir) {
  const MambaConfig c = parse_mamba_config(dir.config);
  WeightLoader w(dir.weights);
  const int64_t d = c.d_model, D = c.d_inner, N = c.d_state, R = c.dt_rank, W = c.d_conv;
  const std::string emb_name = c.embedding_name();
  LS_CHECK(w.has(emb_name), "{}: missing tensor '{}' (is this a Mamba-1 checkpoint in the {} format?)",
           dir.weights.path().string(), emb_name, c.format == MambaConfig::Format::HuggingFace ? "Hugging Face" : "state-spaces");
  const int64_t V = dir.weights.info(emb_name).shape.at(0);
  LS_CHECK(V == c.padded_vocab || V == c.vocab_size, "{}: '{}' has {} rows; config vocab_size {} pads to {}",
           dir.weights.path().string(), emb_name, V, c.vocab_size, c.padded_vocab);
  Tensor embedding = w.get(emb_name, {V, d});
  Tensor lm_head = (w.has("lm_head.weight") || !c.tie_embeddings) ? w.get("lm_head.weight", {V, d}) : embedding;

  std::vector<Layer> layers(size_t(c.n_layer));
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string p = fmt::format("backbone.layers.{}.", i), m = p + "mixer.";
    Layer& L = layers[size_t(i)];
    L.norm_w = w.get(p + "norm.weight", {d});
    L.norm_b = optional(w, p + "norm.bias", !c.rms_norm, {d});
    L.in_proj_w = w.get(m + "in_proj.weight", {2 * D, d});
    L.in_proj_b = optional(w, m + "in_proj.bias", c.bias, {2 * D});
    L.conv_w = w.get(m + "conv1d.weight", {D, 1, W}).reshape({D, W});
    L.conv_b = optional(w, m + "conv1d.bias", c.conv_bias, {D});
    L.x_proj_w = w.get(m + "x_proj.weight", {R + 2 * N, D});
    L.dt_proj_w = w.get(m + "dt_proj.weight", {D, R});
    L.dt_proj_b = w.get(m + "dt_proj.bias", {D});
    L.A_log = w.get(m + "A_log", {D, N});
    L.A = neg_exp(L.A_log);
    L.Dskip = w.get(m + "D", {D});
    L.out_proj_w = w.get(m + "out_proj.weight", {d, D});
    L.out_proj_b = optional(w, m + "out_proj.bias", c.bias, {d});
  }
  Tensor norm_f_w = w.get("backbone.norm_f.weight", {d});
  Tensor norm_f_b = optional(w, "backbone.norm_f.bias", !c.rms_norm, {d});
  w.check_all_used("Mamba-1");
  return std::make_unique<MambaModel>(c, embedding, lm_head, std::move(layers), norm_f_w, norm_f_b);
}

std::unique_ptr<MambaModel> MambaModel::random(const MambaConfig& c, uint64_t seed) {
  Rng rng(seed);
  auto normal = [&](Shape shape, double std) { return random_normal(rng, std::move(shape), std); };
  auto uniform = [&](Shape shape, double bound) { return random_uniform(rng, std::move(shape), bound); };
  const int64_t d = c.d_model, D = c.d_inner, N = c.d_state, R = c.dt_rank, W = c.d_conv, V = c.padded_vocab;
  Tensor embedding = normal({V, d}, 0.02);
  std::vector<Layer> layers(static_cast<size_t>(c.n_layer));
  for (auto& L : layers) {
    L.norm_w = Tensor::full({d}, 1.0f);
    if (!c.rms_norm) L.norm_b = Tensor::zeros({d});
    L.in_proj_w = uniform({2 * D, d}, 1.0 / std::sqrt(double(d)));
    if (c.bias) L.in_proj_b = Tensor::zeros({2 * D});
    L.conv_w = uniform({D, W}, 1.0 / std::sqrt(double(W)));
    if (c.conv_bias) L.conv_b = uniform({D}, 1.0 / std::sqrt(double(W)));
    L.x_proj_w = uniform({R + 2 * N, D}, 1.0 / std::sqrt(double(D)));
    L.dt_proj_w = uniform({D, R}, 1.0 / std::sqrt(double(R)));
    L.dt_proj_b = Tensor::empty({D});
    for (int64_t i = 0; i < D; ++i) {  // dt log-uniform in [1e-3, 1e-1], bias = softplus^-1(dt)
      const double dt = std::max(1e-4, std::exp(rng.uniform(std::log(1e-3), std::log(1e-1))));
      L.dt_proj_b.data<float>()[i] = float(dt + std::log(-std::expm1(-dt)));
    }
    L.A_log = Tensor::empty({D, N});
    for (int64_t i = 0; i < D; ++i)
      for (int64_t n = 0; n < N; ++n) L.A_log.data<float>()[i * N + n] = float(std::log(double(n + 1)));
    L.A = neg_exp(L.A_log);
    L.Dskip = Tensor::full({D}, 1.0f);
    // Kaiming-uniform, then rescaled by 1/sqrt(n_layer) as mamba_ssm's rescale_prenorm_residual does.
    L.out_proj_w = uniform({d, D}, 1.0 / std::sqrt(double(D)) / std::sqrt(double(c.n_layer)));
    if (c.bias) L.out_proj_b = Tensor::zeros({d});
  }
  Tensor lm_head = c.tie_embeddings ? embedding : normal({V, d}, 0.02);
  return std::make_unique<MambaModel>(c, embedding, lm_head, std::move(layers), Tensor::full({d}, 1.0f),
                                      c.rms_norm ? Tensor{} : Tensor::zeros({d}));
}

std::vector<std::pair<std::string, Tensor>> MambaModel::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> p;
  p.emplace_back(cfg_.embedding_name(), embedding_);
  for (int64_t i = 0; i < cfg_.n_layer; ++i) {
    const Layer& L = layers_[size_t(i)];
    const std::string b = fmt::format("backbone.layers.{}.", i), m = b + "mixer.";
    auto add = [&](const std::string& name, const Tensor& t) {
      if (t.defined()) p.emplace_back(name, t);
    };
    add(b + "norm.weight", L.norm_w);
    add(b + "norm.bias", L.norm_b);
    add(m + "in_proj.weight", L.in_proj_w);
    add(m + "in_proj.bias", L.in_proj_b);
    add(m + "conv1d.weight", L.conv_w.reshape({cfg_.d_inner, 1, cfg_.d_conv}));
    add(m + "conv1d.bias", L.conv_b);
    add(m + "x_proj.weight", L.x_proj_w);
    add(m + "dt_proj.weight", L.dt_proj_w);
    add(m + "dt_proj.bias", L.dt_proj_b);
    add(m + "A_log", L.A_log);
    add(m + "D", L.Dskip);
    add(m + "out_proj.weight", L.out_proj_w);
    add(m + "out_proj.bias", L.out_proj_b);
  }
  p.emplace_back("backbone.norm_f.weight", norm_f_w_);
  if (norm_f_b_.defined()) p.emplace_back("backbone.norm_f.bias", norm_f_b_);
  if (!cfg_.tie_embeddings) p.emplace_back("lm_head.weight", lm_head_);
  return p;
}

void MambaModel::save(const std::filesystem::path& dir) const {
  create_directories_guarded(dir);  // not re-made inside a temp folder a signal's cleanup removed
  AtomicFile cfg(dir / "config.json");
  cfg.write(mamba_config_json(cfg_).dump(2) + "\n");
  cfg.commit();
  auto params = named_parameters();
  params.front().first = "backbone.embedding.weight";  // config.json is written in the state-spaces format
  write_safetensors(dir / "model.safetensors", params, {{"format", "pt"}, {"producer", "longseq " LONGSEQ_VERSION}});
}

MambaModel::State MambaModel::new_state() const {
  State s;
  for (int64_t i = 0; i < cfg_.n_layer; ++i) {
    s.conv.push_back(Tensor::zeros({1, cfg_.d_conv, cfg_.d_inner}));
    s.ssm.push_back(Tensor::zeros({1, cfg_.d_inner, cfg_.d_state}));
  }
  return s;
}

void MambaModel::norm(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& out) const {
  if (cfg_.rms_norm)
    rms_norm(x, w, float(cfg_.norm_eps), out);
  else
    layer_norm(x, w, b, float(cfg_.norm_eps), out);
}

void MambaModel::mixer(const Layer& ly, const Tensor& normed, Tensor& conv_state, Tensor& ssm_state, Tensor& out) const {
  const int64_t C = normed.size(0), D = cfg_.d_inner, N = cfg_.d_state, R = cfg_.dt_rank;
  const Tensor xz = linear(normed, ly.in_proj_w, ly.in_proj_b);  // (C, 2D): x | z
  Tensor xc = Tensor::empty({1, C, D});
  causal_conv1d({.x = xz.slice(1, 0, D).unsqueeze(0),
                 .weight = ly.conv_w,
                 .bias = ly.conv_b,
                 .out = xc,
                 .state = conv_state,
                 .silu = true});
  const Tensor xc2 = xc.select(0, 0);
  const Tensor x_dbl = linear(xc2, ly.x_proj_w);              // (C, R + 2N): dt | B | C
  const Tensor delta = linear(x_dbl.slice(1, 0, R), ly.dt_proj_w);  // bias and softplus fused in the scan
  Tensor y = Tensor::empty({1, C, D});
  selective_scan({.u = xc,
                  .delta = delta.unsqueeze(0),
                  .A = ly.A,
                  .B = x_dbl.slice(1, R, N).unsqueeze(0),
                  .C = x_dbl.slice(1, R + N, N).unsqueeze(0),
                  .Dskip = ly.Dskip,
                  .z = xz.slice(1, D, D).unsqueeze(0),
                  .delta_bias = ly.dt_proj_b,
                  .delta_softplus = true,
                  .y = y,
                  .state = ssm_state,
                  .use_initial_state = true});
  linear(y.select(0, 0), ly.out_proj_w, ly.out_proj_b, out);
}

void MambaModel::forward_chunk(const Tensor& ids, State& state, Tensor* logits, std::vector<Tensor>* hidden,
                               Tensor* final_hidden) const {
  LS_CHECK(ids.dim() == 1, "mamba: expected 1-D token ids, got {}", ids.describe());
  const int64_t C = ids.size(0), d = cfg_.d_model;
  if (C == 0) return;
  Tensor residual = Tensor::empty({C, d});
  embedding(ids, embedding_, residual);
  Tensor normed = Tensor::empty({C, d});
  Tensor h = Tensor::empty({C, d});
  for (int64_t i = 0; i < cfg_.n_layer; ++i) {
    const Layer& ly = layers_[size_t(i)];
    norm(residual, ly.norm_w, ly.norm_b, normed);
    mixer(ly, normed, state.conv[size_t(i)], state.ssm[size_t(i)], h);
    float* r = residual.data<float>();
    const float* hp = h.data<float>();
    for (int64_t k = 0; k < C * d; ++k) r[k] += hp[k];
    if (hidden) (*hidden)[size_t(i)].copy_from(residual);
  }
  norm(residual, norm_f_w_, norm_f_b_, normed);
  if (final_hidden && final_hidden->defined()) final_hidden->copy_from(normed);
  if (logits && logits->defined()) linear(normed, lm_head_, {}, *logits);
  state.position += C;
}

ForwardOutputs MambaModel::forward(const Tensor& ids, const ForwardOptions& options) const {
  LS_CHECK(ids.dim() == 1, "mamba: expected 1-D token ids, got {}", ids.describe());
  LS_CHECK(options.chunk >= 1, "chunk must be >= 1, got {}", options.chunk);
  const int64_t L = ids.size(0), d = cfg_.d_model;
  ForwardOutputs out;
  out.logits = Tensor::empty({L, vocab_size()});
  if (options.hidden) {
    for (int64_t i = 0; i < cfg_.n_layer; ++i) out.hidden.push_back(Tensor::empty({L, d}));
    out.final_hidden = Tensor::empty({L, d});
  }
  State state = new_state();
  for (int64_t t0 = 0; t0 < L; t0 += options.chunk) {
    const int64_t n = std::min(options.chunk, L - t0);
    Tensor lg = out.logits.slice(0, t0, n);
    std::vector<Tensor> hid;
    for (auto& t : out.hidden) hid.push_back(t.slice(0, t0, n));
    Tensor fh = options.hidden ? out.final_hidden.slice(0, t0, n) : Tensor{};
    forward_chunk(ids.slice(0, t0, n), state, &lg, options.hidden ? &hid : nullptr, &fh);
  }
  for (int64_t i = 0; i < cfg_.n_layer; ++i) {
    // Official layouts: ssm_state (1, D, N); conv_state (1, D, W) oldest first.
    out.extra.emplace_back(fmt::format("ssm_state_{}", i), state.ssm[size_t(i)]);
    Tensor conv = Tensor::empty({1, cfg_.d_inner, cfg_.d_conv});
    for (int64_t k = 0; k < cfg_.d_conv; ++k)
      for (int64_t c = 0; c < cfg_.d_inner; ++c)
        conv.data<float>()[c * cfg_.d_conv + k] = state.conv[size_t(i)].data<float>()[k * cfg_.d_inner + c];
    out.extra.emplace_back(fmt::format("conv_state_{}", i), conv);
  }
  return out;
}

void MambaModel::stream_logits(int64_t length, const IdSource& source, int64_t chunk, const LogitsSink& sink) const {
  LS_CHECK(chunk >= 1, "chunk must be >= 1, got {}", chunk);
  State state = new_state();
  const int64_t cap = std::min(chunk, std::max<int64_t>(length, 1));
  Tensor ids = Tensor::empty({cap}, DType::I64);
  Tensor logits = Tensor::empty({cap, vocab_size()});
  for (int64_t t0 = 0; t0 < length; t0 += chunk) {
    const int64_t n = std::min(chunk, length - t0);
    Tensor id = ids.slice(0, 0, n), lg = logits.slice(0, 0, n);
    source(t0, id);
    forward_chunk(id, state, &lg, nullptr, nullptr);
    sink(t0, lg);
  }
}

double MambaModel::run_scored(std::span<const int64_t> ids, State& state, std::vector<float>& carry) const {
  constexpr int64_t kChunk = 4096;
  const int64_t L = int64_t(ids.size()), V = vocab_size();
  double sum = 0;
  Tensor logits = Tensor::empty({std::min(kChunk, std::max<int64_t>(L, 1)), V});
  for (int64_t t0 = 0; t0 < L; t0 += kChunk) {
    const int64_t n = std::min(kChunk, L - t0);
    const std::span<const int64_t> part = ids.subspan(size_t(t0), size_t(n));
    if (!carry.empty()) sum += sum_next_logprobs(Tensor::from_vector(carry, {1, V}), part.data(), 1);
    Tensor lg = logits.slice(0, 0, n);
    forward_chunk(Tensor::from_ids(part), state, &lg, nullptr, nullptr);
    sum += sum_next_logprobs(lg, part.data() + 1, n - 1);
    carry = lg.select(0, n - 1).to_vector();
  }
  return sum;
}

ContinuationScores MambaModel::score_continuations(std::span<const int64_t> prefix,
                                                   std::span<const std::vector<int64_t>> suffixes) const {
  ContinuationScores out;
  State state = new_state();
  std::vector<float> carry;
  out.prefix = run_scored(prefix, state, carry);
  for (const auto& suffix : suffixes) {
    State s = state;
    for (auto& t : s.conv) t = t.clone();
    for (auto& t : s.ssm) t = t.clone();
    std::vector<float> c = carry;
    out.suffix.push_back(run_scored(suffix, s, c));
  }
  return out;
}

}  // namespace longseq
