// The Mamba-1 family (mamba_ssm's MambaLMHeadModel, state-spaces and Hugging Face formats),
// described by its layers: one table of tensors (declarations(), the state-spaces names) serves
// creation, loading, saving, training and `info`; inference runs the layers (streamed chunk by chunk
// with each mixer's conv and SSM state carried, core/models/layer_model.h).
#include "core/error.h"
#include "core/families/family.h"
#include "core/families/mamba_config.h"
#include "core/models/weights.h"
#include "core/nn/layers.h"
#include "core/random.h"
#include "core/train/grad_model.h"

#include <fmt/format.h>

namespace longseq {

namespace {

std::string yes_no(bool b) { return b ? "true" : "false"; }

std::string block_prefix(int64_t i) { return fmt::format("backbone.layers.{}.", i); }
constexpr const char* kEmbedding = "backbone.embedding.weight";  // the state-spaces name (HF: embeddings)

nn::MambaMixerShape mixer_shape(const MambaConfig& c) {
  return {.d = c.d_model, .D = c.d_inner, .N = c.d_state, .R = c.dt_rank, .W = c.d_conv, .bias = c.bias, .conv_bias = c.conv_bias};
}

LmFrame frame(const MambaConfig& c) {
  return {.family = "mamba", .embedding = kEmbedding, .final_norm = "backbone.norm_f.", .d_model = c.d_model, .n_layer = c.n_layer,
          .tied = c.tie_embeddings, .rms = c.rms_norm, .final_eps = c.norm_eps};
}

// The family's tensors in file order (V: the embedding's rows, the padded vocabulary unless a file
// stores fewer).
nn::ParamDecls declarations(const MambaConfig& c, int64_t V) {
  return lm_declarations(frame(c), V, [&](int64_t i) {
    return concat({nn::norm_params(block_prefix(i) + "norm.", c.d_model, c.rms_norm),
                   nn::mamba_mixer_params(block_prefix(i) + "mixer.", mixer_shape(c), c.n_layer)});
  });
}

class MambaFamily final : public LayerFamily<MambaFamily> {
 public:
  // Blocks of x += mixer(norm(x)) over `tensors` (state-spaces names); `config` as mamba_config_json writes it.
  template <class T>
  static std::unique_ptr<train::GradModel<T>> build(const nlohmann::json& config, train::WeightSource weights) {
    const MambaConfig c = parse_mamba_config(Config::parse(config.dump(), "Mamba-1 config"));
    return layer_stack<T>(frame(c), config, std::move(weights), declarations(c, 1), [&](auto& g, const nn::OffsetOf& off, int64_t i) {
      const std::string b = block_prefix(i);
      g.add_step(i, nn::make_norm<T>(off, b + "norm.", c.rms_norm, c.norm_eps), nn::make_mamba_mixer<T>(off, b + "mixer.", mixer_shape(c)));
    });
  }

  std::string name() const override { return "mamba"; }
  std::string title() const override { return "Mamba-1"; }
  bool recognizes(const Config& c) const override { return looks_like_mamba(c); }

  void summarize(const ModelDir& m, ModelSummary& s) const override {
    const MambaConfig c = parse_mamba_config(m.config);
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

  // Either released format; written back in the state-spaces one. A tied model whose file also
  // stores lm_head.weight keeps that head (as mamba_ssm would use it), so the logits are the file's.
  std::unique_ptr<LanguageModel> load(const ModelDir& dir) const override {
    MambaConfig c = parse_mamba_config(dir.config);
    WeightLoader w(dir.weights);
    const std::string file_embedding = c.embedding_name();
    LS_CHECK(w.has(file_embedding), "{}: missing tensor '{}' (is this a Mamba-1 checkpoint in the {} format?)",
             dir.weights.path().string(), file_embedding, c.format == MambaConfig::Format::HuggingFace ? "Hugging Face" : "state-spaces");
    const int64_t V = dir.weights.info(file_embedding).shape.at(0);
    LS_CHECK(V == c.padded_vocab || V == c.vocab_size, "{}: '{}' has {} rows; config vocab_size {} pads to {}",
             dir.weights.path().string(), file_embedding, V, c.vocab_size, c.padded_vocab);
    if (c.tie_embeddings && w.has("lm_head.weight")) c.tie_embeddings = false;
    c.format = MambaConfig::Format::StateSpaces;
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const nn::ParamDecl& p : declarations(c, V))
      tensors.emplace_back(p.name, w.get(p.name == kEmbedding ? file_embedding : p.name, p.shape));
    w.check_all_used("Mamba-1");
    return language_model(mamba_config_json(c), {.tensors = std::move(tensors)}, 0);
  }

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
    MambaConfig c = parse_mamba_config(config);
    c.format = MambaConfig::Format::StateSpaces;
    return language_model(mamba_config_json(c), {.declarations = declarations(c, c.padded_vocab), .seed = seed}, 0);
  }
};

}  // namespace

const Family& mamba_family() {
  static const MambaFamily family;
  return family;
}

}  // namespace longseq
