// The Mamba-1 family (mamba_ssm's MambaLMHeadModel, state-spaces and Hugging Face formats): how the
// registry recognises, summarises, creates, saves, trains and moves it to a device.
#include "core/device/ops.h"
#include "core/error.h"
#include "core/families/family.h"
#include "core/models/mamba.h"
#include "core/models/mamba_config.h"
#include "core/models/mamba_device.h"
#include "core/nn/layers.h"
#include "core/train/grad_model.h"

#include <fmt/format.h>

namespace longseq {

namespace {

std::string yes_no(bool b) { return b ? "true" : "false"; }

class MambaFamily final : public ModelClassFamily<MambaFamily, MambaModel> {
 public:
  // The trainable model: blocks of x += mixer(norm(x)) under the state-spaces names (checkpoints are
  // written in that format).
  template <class T>
  static std::unique_ptr<train::GradModel<T>> trainable(const MambaModel& model) {
    MambaConfig c = model.config();
    c.format = MambaConfig::Format::StateSpaces;
    auto named = model.named_parameters();
    named.front().first = "backbone.embedding.weight";
    const std::string emb = named.front().first;
    auto g = std::make_unique<train::GradModel<T>>(train::GradModelSpec{.family = "mamba", .config = mamba_config_json(c),
                                                                        .d_model = c.d_model, .tensors = std::move(named), .buffers = {},
                                                                        .embedding = emb, .lm_head = c.tie_embeddings ? emb : "lm_head.weight"});
    const nn::OffsetOf off = g->offsets();
    const nn::MambaMixerShape shape{.d = c.d_model, .D = c.d_inner, .N = c.d_state, .R = c.dt_rank, .W = c.d_conv};
    for (int64_t i = 0; i < c.n_layer; ++i) {
      const std::string b = fmt::format("backbone.layers.{}.", i);
      g->add_step(i, nn::make_norm<T>(off, b + "norm.", c.rms_norm, c.norm_eps), nn::make_mamba_mixer<T>(off, b + "mixer.", shape));
  }
  g->set_final_norm(nn::make_norm<T>(off, "backbone.norm_f.", c.rms_norm, c.norm_eps));
  return g;
  }
  static std::unique_ptr<LanguageModel> device(std::shared_ptr<const MambaModel> model, std::shared_ptr<DeviceOps> ops) {
    return std::make_unique<MambaDeviceModel>(std::move(model), std::move(ops));
  }

  std::string name() const override { return "mamba"; }
  std::string title() const override { return "Mamba-1"; }
  bool recognizes(const Config& c) const override { return looks_like_mamba(c); }

  void summarize(const ModelDir& m, ModelSummary& s) const override {
    const MambaConfig c = parse_mamba_config(m.config);
    s.family = name();
    s.format = c.format == MambaConfig::Format::HuggingFace ? "huggingface" : "state-spaces";
    s.hyperparameters = {{"d_model", std::to_string(c.d_model)},   {"n_layer", std::to_string(c.n_layer)},
                         {"vocab (padded)", fmt::format("{} ({})", c.vocab_size, c.padded_vocab)},
                         {"d_inner (D)", std::to_string(c.d_inner)}, {"d_state (N)", std::to_string(c.d_state)},
                         {"d_conv", std::to_string(c.d_conv)},      {"dt_rank (R)", std::to_string(c.dt_rank)},
                         {"norm", c.rms_norm ? "RMSNorm" : "LayerNorm"}, {"residual_in_fp32", yes_no(c.residual_in_fp32)},
                         {"tie_embeddings", yes_no(c.tie_embeddings)}};
    // Live per token while one chunk streams through one layer at a time: residual + hidden + normed,
    // x|z, conv output, dt|B|C, delta, y, and the logits row. States are O(n_layer*D*N), not per token.
    const double floats = 3.0 * c.d_model + 2.0 * c.d_inner + c.d_inner + (c.dt_rank + 2.0 * c.d_state) + 2.0 * c.d_inner +
                          double(c.padded_vocab);
    s.activation_bytes_per_token = 4 * floats;
    s.memory_note = fmt::format("streamed in chunks: peak is chunk x this, plus {:.1f} KiB of carried state, independent of length",
                                4.0 * c.n_layer * c.d_inner * (c.d_state + c.d_conv) / 1024);
    if (c.tie_embeddings && !m.weights.contains("lm_head.weight"))
      s.notes.push_back("lm_head.weight is tied to " + c.embedding_name() + " (stored once)");
  }

  std::unique_ptr<LanguageModel> load(const ModelDir& dir) const override { return MambaModel::load(dir); }

  std::vector<ArchOption> arch_options() const override {
    return {{"d_model", "Model width", 64, 1, int64_t(1) << 16},
            {"n_layer", "Number of blocks", 2, 1, 1024},
            {"vocab", "Vocabulary size (padded to a multiple of 8); 12 fits the DNA ids", 12, 1, int64_t(1) << 24},
            {"d_state", "SSM state size N", 16, 1, 256},
            {"d_conv", "Causal conv width", 4, 1, 16},
            {"expand", "Inner expansion (D = expand * d_model)", 2, 1, 16}};
  }

  nlohmann::json new_config(const ArchValues& v, int64_t) const override {
    MambaConfig c;
    c.d_model = v.at("d_model");
    c.n_layer = v.at("n_layer");
    c.vocab_size = v.at("vocab");
    c.pad_vocab_multiple = 8;
    c.padded_vocab = round_up_multiple(c.vocab_size, 8);
    c.d_state = v.at("d_state");
    c.d_conv = v.at("d_conv");
    c.expand = v.at("expand");
    c.d_inner = c.expand * c.d_model;
    c.dt_rank = (c.d_model + 15) / 16;
    return mamba_config_json(c);
  }

  std::unique_ptr<LanguageModel> random(const Config& config, uint64_t seed) const override {
    return MambaModel::random(parse_mamba_config(config), seed);
  }
};

}  // namespace

const Family& mamba_family() {
  static const MambaFamily family;
  return family;
}

}  // namespace longseq
