// The HyenaDNA family (the Hugging Face port of LongSafari/hyenadna-*): how the registry recognises,
// summarises, creates, saves, trains and moves it to a device.
#include "core/device/ops.h"
#include "core/config.h"
#include "core/error.h"
#include "core/families/family.h"
#include "core/models/hyena.h"
#include "core/models/hyena_config.h"
#include "core/models/hyena_device.h"
#include "core/nn/layers.h"
#include "core/train/grad_model.h"

#include <fmt/format.h>

#include <algorithm>

namespace longseq {

namespace {

class HyenaFamily final : public ModelClassFamily<HyenaFamily, HyenaModel> {
 public:
  // The trainable model: blocks of x += hyena(LN1(x)); x += mlp(LN2(x)). pos_emb.t and
  // modulation.deltas are buffers (and freq when the config does not train it), as in the original.
  template <class T>
  static std::unique_ptr<train::GradModel<T>> trainable(const HyenaModel& model) {
    const HyenaConfig& c = model.config();
    auto named = model.named_parameters();
    std::vector<std::string> buffers;
    for (const auto& [name, t] : named)
      if (name.ends_with("pos_emb.t") || name.ends_with("modulation.deltas") || (!c.train_freq && name.ends_with(".freq")))
        buffers.push_back(name);
    const std::string emb = "hyena.backbone.embeddings.word_embeddings.weight";
    const bool untied = std::any_of(named.begin(), named.end(), [](const auto& t) { return t.first == "lm_head.weight"; });
    auto g = std::make_unique<train::GradModel<T>>(train::GradModelSpec{.family = "hyenadna", .config = hyena_config_json(c),
                                                                        .d_model = c.d_model, .tensors = std::move(named),
                                                                        .buffers = std::move(buffers), .embedding = emb,
                                                                        .lm_head = untied ? "lm_head.weight" : emb});
    const nn::OffsetOf off = g->offsets();
    const nn::HyenaShape shape{.d = c.d_model, .W = c.short_filter_order, .O = c.filter_order, .E = c.emb_dim,
                               .inner = c.num_inner_mlps + 1, .max_len = c.max_seq_len};
    for (int64_t i = 0; i < c.n_layer; ++i) {
      const std::string b = fmt::format("hyena.backbone.layers.{}.", i);
      g->add_step(i, nn::make_norm<T>(off, b + "norm1.", false, HyenaModel::kBlockNormEps), nn::make_hyena_operator<T>(off, b + "mixer.", shape));
      g->add_step(i, nn::make_norm<T>(off, b + "norm2.", false, HyenaModel::kBlockNormEps), nn::make_gelu_mlp<T>(off, b + "mlp.", c.d_inner));
  }
  g->set_final_norm(nn::make_norm<T>(off, "hyena.backbone.ln_f.", false, c.layer_norm_eps));
  return g;
  }
  static std::unique_ptr<LanguageModel> device(std::shared_ptr<const HyenaModel> model, std::shared_ptr<DeviceOps> ops) {
    return std::make_unique<HyenaDeviceModel>(std::move(model), std::move(ops));
  }

  std::string name() const override { return "hyenadna"; }
  std::string title() const override { return "HyenaDNA"; }
  bool recognizes(const Config& c) const override { return looks_like_hyena(c); }

  void summarize(const ModelDir& m, ModelSummary& s) const override {
    const HyenaConfig c = parse_hyena_config(m.config);
    s.family = name();
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

  std::unique_ptr<LanguageModel> load(const ModelDir& dir) const override { return HyenaModel::load(dir); }

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
    return HyenaModel::random(parse_hyena_config(config), seed);
  }
};

}  // namespace

const Family& hyenadna_family() {
  static const HyenaFamily family;
  return family;
}

}  // namespace longseq
