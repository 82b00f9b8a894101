#include "core/models/hyena.h"

#include "core/error.h"
#include "core/fileio.h"
#include "core/temp_paths.h"
#include "core/random.h"
#include "core/models/weights.h"
#include "core/nn/layers.h"
#include "kernels/activations.h"
#include "core/ops/causal_conv1d.h"
#include "core/ops/embedding.h"
#include "core/ops/gemm.h"
#include "core/ops/norm.h"
#include "core/ops/simd.h"
#include "core/threads.h"

#include <fmt/format.h>

#include <cmath>

namespace longseq {

namespace {

constexpr float kBlockNormEps = HyenaModel::kBlockNormEps;  // nn.LayerNorm default: the port ignores layer_norm_epsilon here
constexpr float kModulationShift = 0.05f;  // ExponentialModulation shift in the HF port
constexpr int64_t kTokenBlock = 512;     // rows per token block (one thread's unit of work)

// The positional grid of the port, built for max_seq_len (the Hyena operator's definition, core/nn/layers.h).
void positional_grid(int64_t seq_len, int64_t emb_dim, Tensor& z, Tensor& t) {
  z = Tensor::empty({seq_len, emb_dim});
  t = Tensor::empty({seq_len, 1});
  nn::hyena_positional_grid(seq_len, emb_dim, z.data<float>(), t.data<float>());
}

Tensor default_deltas(int64_t d) {
  Tensor out = Tensor::empty({d});
  nn::hyena_default_deltas(d, out.data<float>());
  return out;
}

// Rows [r0, r0 + n) of each of the `parts` stacked row groups of w (parts * group, ...), concatenated.
Tensor gather_row_groups(const Tensor& w, int64_t parts, int64_t group, int64_t r0, int64_t n) {
  Shape shape = w.shape();
  shape[0] = parts * n;
  Tensor out = Tensor::empty(shape);
  for (int64_t p = 0; p < parts; ++p) out.slice(0, p * n, n).copy_from(w.slice(0, p * group + r0, n));
  return out;
}

// Consecutive (rows, cols) views carved out of one flat per-thread scratch tensor.
class ScratchViews {
 public:
  explicit ScratchViews(const Tensor& flat) : flat_(flat) {}
  Tensor next(int64_t rows, int64_t cols) {
    Tensor v = flat_.slice(0, used_, rows * cols).reshape({rows, cols});
    used_ += rows * cols;
    return v;
  }

 private:
  const Tensor& flat_;
  int64_t used_ = 0;
};

void add_inplace(Tensor& x, const Tensor& y) {
  const int64_t R = x.size(0), C = x.size(1);
  for (int64_t r = 0; r < R; ++r) {
    float* a = x.data<float>() + r * x.stride(0);
    const float* b = y.data<float>() + r * y.stride(0);
    for (int64_t c = 0; c < C; ++c) a[c] += b[c];
  }
}

void gelu_inplace(Tensor& x) {
  float* p = x.data<float>();
  const int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n / simd::kLanes * simd::kLanes; i += simd::kLanes) simd::store(p + i, simd::gelu_tanh(simd::load(p + i)));
  for (int64_t i = n / simd::kLanes * simd::kLanes; i < n; ++i) p[i] = gelu_tanh(p[i]);
}

}  // namespace

HyenaModel::HyenaModel(HyenaConfig config, Tensor embedding, Tensor lm_head, std::vector<Layer> layers, Tensor ln_f_w,
                       Tensor ln_f_b, std::vector<std::string> notes)
    : cfg_(std::move(config)),
      embedding_(std::move(embedding)),
      lm_head_(std::move(lm_head)),
      layers_(std::move(layers)),
      ln_f_w_(std::move(ln_f_w)),
      ln_f_b_(std::move(ln_f_b)),
      notes_(std::move(notes)) {}

std::unique_ptr<HyenaModel> HyenaModel::load(const ModelDir& dir) {
  const HyenaConfig c = parse_hyena_config(dir.config);
  WeightLoader w(dir.weights);
  const int64_t d = c.d_model, O = c.filter_order, W = c.short_filter_order, S = c.max_seq_len, E = c.emb_dim;
  const std::string bb = "hyena.backbone.";
  const std::string emb_name = bb + "embeddings.word_embeddings.weight";
  LS_CHECK(w.has(emb_name), "{}: missing tensor '{}' (is this a HyenaDNA checkpoint in the Hugging Face format?)",
           dir.weights.path().string(), emb_name);
  const int64_t V = dir.weights.info(emb_name).shape.at(0);
  LS_CHECK(V == c.padded_vocab || V == c.vocab_size, "{}: '{}' has {} rows; config vocab_size {} pads to {}",
           dir.weights.path().string(), emb_name, V, c.vocab_size, c.padded_vocab);
  Tensor embedding = w.get(emb_name, {V, d});
  Tensor lm_head = c.tie_embeddings && !w.has("lm_head.weight") ? embedding : w.get("lm_head.weight", {V, d});
  std::vector<std::string> notes;
  Tensor grid_z, grid_t;
  std::vector<Layer> layers(static_cast<size_t>(c.n_layer));
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string p = fmt::format("{}layers.{}.", bb, i), m = p + "mixer.", f = m + "filter_fn.";
    Layer& L = layers[size_t(i)];
    L.norm1_w = w.get(p + "norm1.weight", {d});
    L.norm1_b = w.get(p + "norm1.bias", {d});
    L.norm2_w = w.get(p + "norm2.weight", {d});
    L.norm2_b = w.get(p + "norm2.bias", {d});
    L.in_proj_w = w.get(m + "in_proj.weight", {3 * d, d});
    L.in_proj_b = w.get(m + "in_proj.bias", {3 * d});
    L.short_w = w.get(m + "short_filter.weight", {3 * d, 1, W}).reshape({3 * d, W});
    L.short_b = w.get(m + "short_filter.bias", {3 * d});
    L.out_proj_w = w.get(m + "out_proj.weight", {d, d});
    L.out_proj_b = w.get(m + "out_proj.bias", {d});
    L.fc1_w = w.get(p + "mlp.fc1.weight", {c.d_inner, d});
    L.fc1_b = w.get(p + "mlp.fc1.bias", {c.d_inner});
    L.fc2_w = w.get(p + "mlp.fc2.weight", {d, c.d_inner});
    L.fc2_b = w.get(p + "mlp.fc2.bias", {d});
    L.filter_bias = w.get(f + "bias", {d});
    if (w.has(f + "pos_emb.z")) {
      L.z = w.get(f + "pos_emb.z", {1, S, E}).reshape({S, E});
    } else {
      if (!grid_z.defined()) positional_grid(S, E, grid_z, grid_t);
      L.z = grid_z;
      if (i == 0) notes.push_back("pos_emb.z not stored: recomputed from max_seq_len");
    }
    if (w.has(f + "pos_emb.t")) {
      L.t = w.get(f + "pos_emb.t", {1, S, 1}).reshape({S, 1});
    } else {
      if (!grid_t.defined()) positional_grid(S, E, grid_z, grid_t);
      L.t = grid_t;
      if (i == 0) notes.push_back("pos_emb.t not stored: recomputed from max_seq_len");
    }
    if (w.has(f + "modulation.deltas")) {
      L.deltas = w.get(f + "modulation.deltas", {1, 1, d}).reshape({d});
    } else {
      L.deltas = default_deltas(d);
      if (i == 0) notes.push_back("modulation.deltas not stored: recomputed");
    }
    const int64_t n_linear = c.num_inner_mlps + 2;  // in, inner..., out
    for (int64_t k = 0; k < n_linear; ++k) {
      const std::string lin = f + "implicit_filter." + std::to_string(2 * k) + ".";
      const int64_t in = k == 0 ? E : O, out = k == n_linear - 1 ? d : O;
      L.mlp_w.push_back(w.get(lin + "weight", {out, in}));
      L.mlp_b.push_back(k == n_linear - 1 ? Tensor{} : w.get(lin + "bias", {out}));
    }
    L.freq = w.get(f + "implicit_filter.1.freq", {1, O}).reshape({O});
    for (int64_t k = 1; k < n_linear - 1; ++k) {  // the shared Sin may also be stored under its aliases
      const std::string alias = f + "implicit_filter." + std::to_string(2 * k + 1) + ".freq";
      if (w.has(alias)) w.ignore(alias);
    }
  }
  Tensor ln_f_w = w.get(bb + "ln_f.weight", {d});
  Tensor ln_f_b = w.get(bb + "ln_f.bias", {d});
  w.check_all_used("HyenaDNA");
  return std::make_unique<HyenaModel>(c, embedding, lm_head, std::move(layers), ln_f_w, ln_f_b, std::move(notes));
}

std::unique_ptr<HyenaModel> HyenaModel::random(const HyenaConfig& c, uint64_t seed) {
  Rng rng(seed);
  auto normal = [&](Shape shape, double std) { return random_normal(rng, std::move(shape), std); };
  auto uniform = [&](Shape shape, double bound) { return random_uniform(rng, std::move(shape), bound); };
  const int64_t d = c.d_model, O = c.filter_order, W = c.short_filter_order, E = c.emb_dim, V = c.padded_vocab;
  const double resid_std = 0.02 / std::sqrt(2.0 * double(c.n_layer));
  Tensor z, t;
  positional_grid(c.max_seq_len, E, z, t);
  std::vector<Layer> layers(static_cast<size_t>(c.n_layer));
  for (auto& L : layers) {
    L.norm1_w = Tensor::full({d}, 1.0f);
    L.norm1_b = Tensor::zeros({d});
    L.norm2_w = Tensor::full({d}, 1.0f);
    L.norm2_b = Tensor::zeros({d});
    L.in_proj_w = normal({3 * d, d}, 0.02);
    L.in_proj_b = Tensor::zeros({3 * d});
    L.short_w = uniform({3 * d, W}, 1.0 / std::sqrt(double(W)));
    L.short_b = uniform({3 * d}, 1.0 / std::sqrt(double(W)));
    L.out_proj_w = normal({d, d}, resid_std);
    L.out_proj_b = Tensor::zeros({d});
    L.fc1_w = normal({c.d_inner, d}, 0.02);
    L.fc1_b = Tensor::zeros({c.d_inner});
    L.fc2_w = normal({d, c.d_inner}, resid_std);
    L.fc2_b = Tensor::zeros({d});
    L.filter_bias = normal({d}, 1.0);
    L.z = z;
    L.t = t;
    const int64_t n_linear = c.num_inner_mlps + 2;
    for (int64_t k = 0; k < n_linear; ++k) {
      const int64_t in = k == 0 ? E : O, out = k == n_linear - 1 ? d : O;
      L.mlp_w.push_back(uniform({out, in}, 1.0 / std::sqrt(double(in))));
      L.mlp_b.push_back(k == n_linear - 1 ? Tensor{} : uniform({out}, 1.0 / std::sqrt(double(in))));
    }
    L.freq = Tensor::full({O}, float(c.activation_freq));
    L.deltas = default_deltas(d);
  }
  Tensor embedding = normal({V, d}, 0.02);
  Tensor lm_head = c.tie_embeddings ? embedding : normal({V, d}, 0.02);
  return std::make_unique<HyenaModel>(c, embedding, lm_head, std::move(layers), Tensor::full({d}, 1.0f), Tensor::zeros({d}),
                                      std::vector<std::string>{});
}

std::vector<std::pair<std::string, Tensor>> HyenaModel::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> p;
  const std::string bb = "hyena.backbone.";
  const int64_t d = cfg_.d_model, S = cfg_.max_seq_len;
  p.emplace_back(bb + "embeddings.word_embeddings.weight", embedding_);
  for (int64_t i = 0; i < cfg_.n_layer; ++i) {
    const Layer& L = layers_[size_t(i)];
    const std::string b = fmt::format("{}layers.{}.", bb, i), m = b + "mixer.", f = m + "filter_fn.";
    p.emplace_back(b + "norm1.weight", L.norm1_w);
    p.emplace_back(b + "norm1.bias", L.norm1_b);
    p.emplace_back(b + "norm2.weight", L.norm2_w);
    p.emplace_back(b + "norm2.bias", L.norm2_b);
    p.emplace_back(m + "in_proj.weight", L.in_proj_w);
    p.emplace_back(m + "in_proj.bias", L.in_proj_b);
    p.emplace_back(m + "short_filter.weight", L.short_w.reshape({3 * d, 1, cfg_.short_filter_order}));
    p.emplace_back(m + "short_filter.bias", L.short_b);
    p.emplace_back(m + "out_proj.weight", L.out_proj_w);
    p.emplace_back(m + "out_proj.bias", L.out_proj_b);
    p.emplace_back(b + "mlp.fc1.weight", L.fc1_w);
    p.emplace_back(b + "mlp.fc1.bias", L.fc1_b);
    p.emplace_back(b + "mlp.fc2.weight", L.fc2_w);
    p.emplace_back(b + "mlp.fc2.bias", L.fc2_b);
    p.emplace_back(f + "bias", L.filter_bias);
    p.emplace_back(f + "pos_emb.z", L.z.reshape({1, S, cfg_.emb_dim}));
    p.emplace_back(f + "pos_emb.t", L.t.reshape({1, S, 1}));
    p.emplace_back(f + "modulation.deltas", L.deltas.reshape({1, 1, d}));
    for (size_t k = 0; k < L.mlp_w.size(); ++k) {
      const std::string lin = f + "implicit_filter." + std::to_string(2 * k) + ".";
      p.emplace_back(lin + "weight", L.mlp_w[k]);
      if (L.mlp_b[k].defined()) p.emplace_back(lin + "bias", L.mlp_b[k]);
    }
    p.emplace_back(f + "implicit_filter.1.freq", L.freq.reshape({1, cfg_.filter_order}));
  }
  p.emplace_back(bb + "ln_f.weight", ln_f_w_);
  p.emplace_back(bb + "ln_f.bias", ln_f_b_);
  if (!cfg_.tie_embeddings) p.emplace_back("lm_head.weight", lm_head_);
  return p;
}

void HyenaModel::save(const std::filesystem::path& dir) const {
  create_directories_guarded(dir);  // not re-made inside a temp folder a signal's cleanup removed
  AtomicFile cfg(dir / "config.json");
  cfg.write(hyena_config_json(cfg_).dump(2) + "\n");
  cfg.commit();
  write_safetensors(dir / "model.safetensors", named_parameters(), {{"format", "pt"}, {"producer", "longseq " LONGSEQ_VERSION}});
}

Tensor HyenaModel::implicit_hidden(const Layer& ly, int64_t L) const {
  LS_CHECK(L <= cfg_.max_seq_len, "hyenadna: length {} exceeds max_seq_len {}", L, cfg_.max_seq_len);
  Tensor h = ly.z.slice(0, 0, L);
  const int64_t O = cfg_.filter_order;
  const float* freq = ly.freq.data<float>();
  for (size_t k = 0; k + 1 < ly.mlp_w.size(); ++k) {
    Tensor next = linear(h, ly.mlp_w[k], ly.mlp_b[k]);
    float* p = next.data<float>();
#pragma omp parallel for schedule(static) if (L * O > (1 << 16))
    for (int64_t r = 0; r < L; ++r)
      for (int64_t j = 0; j < O; ++j) p[r * O + j] = std::sin(freq[j] * p[r * O + j]);
    h = next;
  }
  return h;
}

void HyenaModel::filter_block(const Layer& ly, const Tensor& hidden, int64_t c0, Tensor& k_block) const {
  const int64_t cols = k_block.size(0), L = k_block.size(1);
  linear(ly.mlp_w.back().slice(0, c0, cols), hidden, {}, k_block);  // (cols, L): channel-major
  const float* t = ly.t.data<float>();
  const float* deltas = ly.deltas.data<float>() + c0;
#pragma omp parallel for schedule(static) if (L * cols > (1 << 16))
  for (int64_t j = 0; j < cols; ++j) {
    float* k = k_block.data<float>() + j * k_block.stride(0);
    const float rate = -std::abs(deltas[j]);
    int64_t r = 0;
    for (; r + simd::kLanes <= L; r += simd::kLanes)
      simd::store(k + r, simd::load(k + r) * (simd::exp(simd::load(t + r) * rate) + kModulationShift));
    for (; r < L; ++r) k[r] *= std::exp(t[r] * rate) + kModulationShift;
  }
}

Tensor HyenaModel::filter(int64_t layer, int64_t L) const {
  LS_CHECK(layer >= 0 && layer < cfg_.n_layer, "hyenadna: no layer {}", layer);
  const Layer& ly = layers_[size_t(layer)];
  Tensor k = Tensor::empty({cfg_.d_model, L});
  filter_block(ly, implicit_hidden(ly, L), 0, k);
  return k.transpose(0, 1);
}

std::shared_ptr<const FilterSpectrum> HyenaModel::cached_spectrum(int64_t layer, int64_t L) const {
  const int64_t n = fft_fast_size(std::max<int64_t>(2 * L - 1, 2));
  const size_t bytes = size_t(cfg_.d_model) * size_t(n / 2 + 1) * 8;
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (auto it = cache_.find({layer, L}); it != cache_.end()) return it->second;
  // Cache on reuse: a one-off window (e.g. a single 1M-token forward) never pays for a whole-width
  // spectrum; the second window of a length (a scorer's thousands) builds and keeps it.
  if (seen_.insert({layer, L}).second || cache_bytes_ + bytes > cache_budget_) return nullptr;
  auto spec = std::make_shared<const FilterSpectrum>(fft_filter_spectrum(filter(layer, L)));
  cache_[{layer, L}] = spec;
  cache_bytes_ += bytes;
  return spec;
}

int64_t HyenaModel::mixer_block(int64_t L) const {
  const int64_t n = fft_fast_size(std::max<int64_t>(2 * L - 1, 2));
  return std::min(cfg_.d_model, channel_block_ > 0 ? channel_block_ : fft_conv_block_channels(n, cfg_.d_model));
}

void HyenaModel::gated_inputs(const Layer& ly, const Tensor& x, int64_t c0, MixerBuffers& buf) const {
  const int64_t L = x.size(0), d = cfg_.d_model, cb = buf.x0.size(0), H = cfg_.short_filter_order - 1;
  const Tensor w = gather_row_groups(ly.in_proj_w, 3, d, c0, cb);
  const Tensor b = gather_row_groups(ly.in_proj_b, 3, d, c0, cb);
  const Tensor conv_w = gather_row_groups(ly.short_w, 3, d, c0, cb);
  const Tensor conv_b = gather_row_groups(ly.short_b, 3, d, c0, cb);
  // LN1, in_proj and the short conv run a token block per thread, so only x0 and v = x1 * v are held
  // for the whole window. Each block recomputes the H rows of history its conv needs (zeros before
  // t = 0), which keeps blocks independent; LN1 is recomputed per channel block rather than stored.
  for_blocks(L, kTokenBlock, [&](int64_t t0, int64_t nt, int slot) {
    const int64_t h = std::min(t0, H), rows = nt + H;
    ScratchViews sv(buf.scratch[size_t(slot)]);
    Tensor ns = sv.next(nt + h, d), ps = sv.next(rows, 3 * cb), cs = sv.next(rows, 3 * cb);
    ps.slice(0, 0, H - h).fill(0.0f);
    layer_norm(x.slice(0, t0 - h, nt + h), ly.norm1_w, ly.norm1_b, kBlockNormEps, ns);
    Tensor ps_real = ps.slice(0, H - h, nt + h);
    linear(ns, w, b, ps_real);
    causal_conv1d({.x = ps.unsqueeze(0), .weight = conv_w, .bias = conv_b, .out = cs.unsqueeze(0)});
    const int64_t rs = cs.stride(0);
    for (int64_t j = 0; j < cb; ++j) {  // into the channel-major x0 and v
      const float* r = cs.data<float>() + H * rs + j;
      float* x0 = buf.x0.data<float>() + j * L + t0;
      float* v = buf.v.data<float>() + j * L + t0;
      for (int64_t t = 0; t < nt; ++t) {
        const float* rt = r + t * rs;
        x0[t] = rt[0];
        v[t] = rt[cb] * rt[2 * cb];
      }
    }
  });
}

void HyenaModel::mixer(const Layer& ly, int64_t layer, const Tensor& x, Tensor& y, const MixerWork& work) const {
  const int64_t L = x.size(0), d = cfg_.d_model, block = mixer_block(L);
  const auto spectrum = cached_spectrum(layer, L);
  Tensor hidden;  // implicit-filter MLP features, only when the spectrum is not cached
  if (!spectrum) hidden = implicit_hidden(ly, L);
  for (int64_t c0 = 0; c0 < d; c0 += block) {
    const int64_t cb = std::min(block, d - c0);
    MixerBuffers buf{.x0 = work.x0.slice(0, 0, L * cb).reshape({cb, L}),
                     .v = work.v.slice(0, 0, L * cb).reshape({cb, L}),
                     .k = work.k.slice(0, 0, L * cb).reshape({cb, L}),
                     .scratch = work.scratch};
    gated_inputs(ly, x, c0, buf);
    FilterSpectrum sub;
    const Tensor vt = buf.v.transpose(0, 1);
    FftConvArgs args{.u = vt, .y = vt, .bias = ly.filter_bias.slice(0, c0, cb)};
    if (spectrum) {
      sub = {spectrum->L, spectrum->n, spectrum->spec.slice(0, c0, cb)};
      args.spectrum = &sub;
    } else {
      filter_block(ly, hidden, c0, buf.k);
      args.k = buf.k.transpose(0, 1);
    }
    fft_conv(args);
    constexpr int64_t kTile = 64;  // tokens per tile of the transpose back to token-major y
    const int64_t ys = y.stride(0);
    for_blocks(L, kTile, [&](int64_t t0, int64_t nt, int) {
      for (int64_t j = 0; j < cb; ++j) {
        const float* vr = buf.v.data<float>() + j * L + t0;
        const float* xr = buf.x0.data<float>() + j * L + t0;
        float* yc = y.data<float>() + t0 * ys + c0 + j;
        for (int64_t t = 0; t < nt; ++t) yc[t * ys] = vr[t] * xr[t];
      }
    });
  }
}

void HyenaModel::out_proj_and_mlp(const Layer& ly, const Tensor& y, Tensor& x, const std::vector<Tensor>& scratch) const {
  const int64_t L = x.size(0), d = cfg_.d_model;
  for_blocks(L, kTokenBlock, [&](int64_t t0, int64_t nt, int slot) {
    ScratchViews sv(scratch[size_t(slot)]);
    Tensor out = sv.next(nt, d), ns = sv.next(nt, d), h = sv.next(nt, cfg_.d_inner);
    Tensor xs = x.slice(0, t0, nt);
    linear(y.slice(0, t0, nt), ly.out_proj_w, ly.out_proj_b, out);
    add_inplace(xs, out);
    layer_norm(xs, ly.norm2_w, ly.norm2_b, kBlockNormEps, ns);
    linear(ns, ly.fc1_w, ly.fc1_b, h);
    gelu_inplace(h);
    linear(h, ly.fc2_w, ly.fc2_b, out);
    add_inplace(xs, out);
  });
}

void HyenaModel::backbone(Tensor& x, const std::function<void(int64_t)>& after_block) const {
  const int64_t L = x.size(0), d = cfg_.d_model, H = cfg_.short_filter_order - 1;
  const int64_t block = mixer_block(L), rows = kTokenBlock + H;
  // One token block's working set per thread, reused by every layer: the mixer's LN1 / in_proj /
  // short-conv rows or the MLP's rows, whichever is larger.
  const int64_t floats = std::max(rows * (d + 6 * block), kTokenBlock * (2 * d + cfg_.d_inner));
  // x0, v and the filter columns are channel-major (cb, L): the FFT reads and writes whole rows.
  MixerWork work{.x0 = Tensor::empty({L * block}), .v = Tensor::empty({L * block}), .k = Tensor::empty({L * block}), .scratch = {}};
  for (int i = 0; i < num_threads(); ++i) work.scratch.push_back(Tensor::empty({floats}));
  Tensor y = Tensor::empty({L, d});
  for (int64_t i = 0; i < cfg_.n_layer; ++i) {
    const Layer& ly = layers_[size_t(i)];
    mixer(ly, i, x, y, work);
    out_proj_and_mlp(ly, y, x, work.scratch);
    if (after_block) after_block(i);
  }
}

ForwardOutputs HyenaModel::forward(const Tensor& ids, const ForwardOptions& options) const {
  LS_CHECK(ids.dim() == 1, "hyenadna: expected 1-D token ids, got {}", ids.describe());
  const int64_t L = ids.size(0), d = cfg_.d_model;
  LS_CHECK(L <= cfg_.max_seq_len, "hyenadna: input of {} tokens exceeds the model's max_seq_len {} (score a shorter window)", L,
           cfg_.max_seq_len);
  ForwardOutputs out;
  Tensor x = Tensor::empty({L, d});
  embedding(ids, embedding_, x);
  backbone(x, [&](int64_t) {
    if (options.hidden) out.hidden.push_back(x.clone());
  });
  Tensor normed = Tensor::empty({L, d});
  layer_norm(x, ln_f_w_, ln_f_b_, float(cfg_.layer_norm_eps), normed);
  out.logits = linear(normed, lm_head_);
  if (options.hidden) out.final_hidden = normed;
  return out;
}

void HyenaModel::stream_logits(int64_t length, const IdSource& source, int64_t chunk, const LogitsSink& sink) const {
  LS_CHECK(chunk >= 1, "chunk must be >= 1, got {}", chunk);
  LS_CHECK(length <= cfg_.max_seq_len, "hyenadna: input of {} tokens exceeds the model's max_seq_len {} (score a shorter window)",
           length, cfg_.max_seq_len);
  const int64_t d = cfg_.d_model;
  Tensor ids = Tensor::empty({length}, DType::I64);
  for (int64_t t0 = 0; t0 < length; t0 += chunk) {
    Tensor part = ids.slice(0, t0, std::min(chunk, length - t0));
    source(t0, part);
  }
  Tensor x = Tensor::empty({length, d});
  embedding(ids, embedding_, x);
  backbone(x, nullptr);
  Tensor normed = Tensor::empty({std::min(chunk, std::max<int64_t>(length, 1)), d});
  for (int64_t t0 = 0; t0 < length; t0 += chunk) {  // ln_f and the head a chunk at a time
    const int64_t n = std::min(chunk, length - t0);
    Tensor ns = normed.slice(0, 0, n);
    layer_norm(x.slice(0, t0, n), ln_f_w_, ln_f_b_, float(cfg_.layer_norm_eps), ns);
    sink(t0, linear(ns, lm_head_));
  }
}

}  // namespace longseq
