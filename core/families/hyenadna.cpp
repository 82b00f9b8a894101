// The HyenaDNA family (the Hugging Face port of LongSafari/hyenadna-*), described by its layers:
// one table of tensors (declarations(), the port's names) serves creation, loading, saving, training
// and `info`; inference runs the layers (a whole window per pass; on the CPU the Hyena operator's
// channel-blocked schedule keeps a 1M-token window in a few L x d_model arrays).
#include "core/config.h"
#include "core/error.h"
#include "core/families/family.h"
#include "core/families/hyena_config.h"
#include "core/models/weights.h"
#include "core/nn/layers.h"
#include "core/random.h"
#include "core/train/grad_model.h"

#include <fmt/format.h>

#include <algorithm>

namespace longseq {

namespace {

constexpr double kBlockNormEps = 1e-5;  // the blocks' nn.LayerNorm default: the port ignores layer_norm_epsilon there
constexpr const char* kEmbedding = "hyena.backbone.embeddings.word_embeddings.weight";

std::string block_prefix(int64_t i) { return fmt::format("hyena.backbone.layers.{}.", i); }

nn::HyenaShape operator_shape(const HyenaConfig& c) {
  return {.d = c.d_model, .W = c.short_filter_order, .O = c.filter_order, .E = c.emb_dim, .inner = c.num_inner_mlps + 1,
          .max_len = c.max_seq_len};
}

LmFrame frame(const HyenaConfig& c) {
  return {.family = "hyenadna", .embedding = kEmbedding, .final_norm = "hyena.backbone.ln_f.", .d_model = c.d_model, .n_layer = c.n_layer,
          .tied = c.tie_embeddings, .rms = false, .final_eps = c.layer_norm_eps};
}

// The family's tensors in file order (V: the embedding's rows). pos_emb.t and modulation.deltas
// are buffers, and freq too when the config does not train it.
nn::ParamDecls declarations(const HyenaConfig& c, int64_t V) {
  const double resid_std = 0.02 / std::sqrt(2.0 * double(c.n_layer));
  nn::ParamDecls p = lm_declarations(frame(c), V, [&](int64_t i) {
    const std::string b = block_prefix(i);
    return concat({nn::norm_params(b + "norm1.", c.d_model, false), nn::norm_params(b + "norm2.", c.d_model, false),
                   nn::hyena_operator_params(b + "mixer.", operator_shape(c), resid_std, c.activation_freq),
                   nn::gelu_mlp_params(b + "mlp.", c.d_model, c.d_inner, resid_std)});
  });
  if (!c.train_freq)
    for (auto& decl : p) decl.buffer = decl.buffer || decl.name.ends_with(".freq");
  return p;
}

class HyenaFamily final : public LayerFamily<HyenaFamily> {
 public:
  // Blocks of x += hyena(LN1(x)); x += mlp(LN2(x)) over `tensors`; `config` as hyena_config_json writes it.
  template <class T>
  static std::unique_ptr<train::GradModel<T>> build(const nlohmann::json& config, train::WeightSource weights) {
    const HyenaConfig c = parse_hyena_config(Config::parse(config.dump(), "HyenaDNA config"));
    return layer_stack<T>(frame(c), config, std::move(weights), declarations(c, 1), [&](auto& g, const nn::OffsetOf& off, int64_t i) {
      const std::string b = block_prefix(i);
      g.add_step(i, nn::make_norm<T>(off, b + "norm1.", false, kBlockNormEps), nn::make_hyena_operator<T>(off, b + "mixer.", operator_shape(c)));
      g.add_step(i, nn::make_norm<T>(off, b + "norm2.", false, kBlockNormEps), nn::make_gelu_mlp<T>(off, b + "mlp.", c.d_inner));
    });
  }

  std::string name() const override { return "hyenadna"; }
  std::string title() const override { return "HyenaDNA"; }
  bool recognizes(const Config& c) const override { return looks_like_hyena(c); }

  void summarize(const ModelDir& m, ModelSummary& s) const override {
    const HyenaConfig c = parse_hyena_config(m.config);
    s.format = "huggingface";
    s.hyperparameters = {{"d_model", std::to_string(c.d_model)},
                         {"n_layer", std::to_string(c.n_layer)},
                         {"d_inner", std::to_string(c.d_inner)},
                         {"vocab (padded)", fmt::format("{} ({})", c.vocab_size, c.padded_vocab)},
                         {"max_seq_len", std::to_string(c.max_seq_len)},
                         {"emb_dim", std::to_string(c.emb_dim)},
                         {"filter_order", std::to_string(c.filter_order)},
                         {"short_filter_order", std::to_string(c.short_filter_order)},
                         {"hyena_order", std::to_string(c.hyena_order)}};
    // Per token: residual + normed + in_proj (3 d_model) + short conv (3 d_model) + long-conv output,
    // MLP hidden, logits; the FFT work buffer is (fft size / L) ~ 2x complex per channel in a block.
    const double floats = 2.0 * c.d_model + 3.0 * c.d_model * 2 + c.d_model + double(c.d_inner) + double(c.padded_vocab);
    s.activation_bytes_per_token = 4 * floats;
    s.memory_note = "whole window: grows linearly with the window length; filter spectra are cached per length";
    const std::string f = "hyena.backbone.layers.0.mixer.filter_fn.";
    for (const char* buffer : {"pos_emb.z", "pos_emb.t", "modulation.deltas"})
      s.notes.push_back(std::string(buffer) + (m.weights.contains(f + buffer) ? ": used as stored"
                                                                              : ": not stored, recomputed from the config"));
    s.notes.push_back("implicit_filter.{1,3,5}.freq is one shared tensor (stored as implicit_filter.1.freq)");
  }

  bool is_buffer(const std::string& tensor) const override {
    return tensor.ends_with("pos_emb.t") || tensor.ends_with("modulation.deltas");
  }

  // Released files may omit the positional grid and decay rates (recomputed from the config, as the
  // port builds them) and may store the shared Sin frequency under all its aliases. A tied model whose
  // file also stores lm_head.weight keeps that head.
  std::unique_ptr<LanguageModel> load(const ModelDir& dir) const override {
    HyenaConfig c = parse_hyena_config(dir.config);
    WeightLoader w(dir.weights);
    LS_CHECK(w.has(kEmbedding), "{}: missing tensor '{}' (is this a HyenaDNA checkpoint in the Hugging Face format?)",
             dir.weights.path().string(), kEmbedding);
    const int64_t V = dir.weights.info(kEmbedding).shape.at(0);
    LS_CHECK(V == c.padded_vocab || V == c.vocab_size, "{}: '{}' has {} rows; config vocab_size {} pads to {}",
             dir.weights.path().string(), kEmbedding, V, c.vocab_size, c.padded_vocab);
    if (c.tie_embeddings && w.has("lm_head.weight")) c.tie_embeddings = false;
    Rng unused(0);
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const nn::ParamDecl& p : declarations(c, V)) {
      const bool derived = p.name.ends_with("pos_emb.z") || p.name.ends_with("pos_emb.t") || p.name.ends_with("modulation.deltas");
      if (derived && !w.has(p.name)) {
        Tensor t = Tensor::empty(p.shape);
        p.init(unused, t.data<float>());  // deterministic: the grid and rates of the config
        tensors.emplace_back(p.name, std::move(t));
        continue;
      }
      tensors.emplace_back(p.name, w.get(p.name, p.shape));
      if (p.name.ends_with("implicit_filter.1.freq"))  // the shared Sin may also be stored under its aliases
        for (int64_t k = 1; k < c.num_inner_mlps + 1; ++k) {
          const std::string alias = p.name.substr(0, p.name.size() - std::string("1.freq").size()) + std::to_string(2 * k + 1) + ".freq";
          if (w.has(alias)) w.ignore(alias);
        }
    }
    w.check_all_used("HyenaDNA");
    return language_model(hyena_config_json(c), {.tensors = std::move(tensors)}, c.max_seq_len);
  }

  std::vector<ArchOption> arch_options() const override {
    return {{"d_model", "Model width", 64, 1, int64_t(1) << 16},
            {"n_layer", "Number of blocks", 2, 1, 1024},
            {"vocab", "Vocabulary size (padded to a multiple of 8); 12 fits the DNA ids", 12, 1, int64_t(1) << 24},
            {"d_inner", "MLP width (0: 4 * d_model)", 0, 0, int64_t(1) << 18},
            {"max_seq_len", "Longest input (positional grid size; raised to the training length + 2)", 1026, 2, int64_t(1) << 31},
            {"filter_order", "Implicit filter width", 64, 1, 4096},
            {"emb_dim", "Positional features of the implicit filter (odd)", 5, 3, 257},
            {"short_filter", "Short causal conv width", 3, 1, 16}};
  }

  nlohmann::json new_config(const ArchValues& v, int64_t train_length) const override {
    HyenaConfig c;
    c.d_model = v.at("d_model");
    c.n_layer = v.at("n_layer");
    c.d_inner = v.at("d_inner") > 0 ? v.at("d_inner") : 4 * c.d_model;
    c.vocab_size = v.at("vocab");
    c.padded_vocab = round_up_multiple(c.vocab_size, 8);
    c.max_seq_len = std::max(v.at("max_seq_len"), train_length > 0 ? train_length + 2 : 0);
    c.filter_order = v.at("filter_order");
    c.emb_dim = v.at("emb_dim");
    c.short_filter_order = v.at("short_filter");
    LS_CHECK(c.emb_dim >= 3 && c.emb_dim % 2 == 1, "--emb-dim must be odd and >= 3, got {}", c.emb_dim);
    return hyena_config_json(c);
  }

  std::unique_ptr<LanguageModel> random(const Config& config, uint64_t seed) const override {
    const HyenaConfig c = parse_hyena_config(config);
    return language_model(hyena_config_json(c), {.declarations = declarations(c, c.padded_vocab), .seed = seed}, c.max_seq_len);
  }
};

}  // namespace

const Family& hyenadna_family() {
  static const HyenaFamily family;
  return family;
}

}  // namespace longseq
