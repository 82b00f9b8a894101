// The hybrid family ("model_type": "longseq-hybrid"): blocks of any layer types, in the order a
// config.json lists them, so a Mamba/Hyena stripe (as StripedHyena and Jamba stripe theirs) needs a
// config and no C++. It is written only from the layers' own declarations (core/nn/layers.h): one
// table of names, shapes and initialisations serves creation, loading, saving and training, and
// inference runs the same layers (core/models/layer_model.h), streamed when every block streams.
//
// config.json:
//   {"model_type": "longseq-hybrid", "d_model": 64, "n_layer": 4, "vocab_size": 12,
//    "layers": ["mamba", "hyena"],            block types, repeated to n_layer
//    "rms_norm": true, "norm_epsilon": 1e-5, "tie_embeddings": true, "pad_vocab_size_multiple": 8,
//    "mamba": {"d_state": 16, "d_conv": 4, "expand": 2, "dt_rank": ceil(d_model / 16)},
//    "hyena": {"d_inner": 256, "max_seq_len": 1026, "filter_order": 64, "emb_dim": 5,
//              "short_filter_order": 3, "num_inner_mlps": 2, "activation_freq": 10}}
// A "mamba" block is x += mixer(norm(x)); a "hyena" block is x += mixer(norm(x)); x += mlp(norm2(x)).
// Names: backbone.embedding.weight, backbone.layers.<i>.{norm, mixer, norm2, mlp}.*, backbone.norm_f.*,
// lm_head.weight (untied only); the mixers' names are mamba_ssm's and the HyenaDNA port's.
#include "core/device/ops.h"
#include "core/config.h"
#include "core/error.h"
#include "core/families/family.h"
#include "core/models/layer_model.h"
#include "core/models/weights.h"
#include "core/nn/layers.h"
#include "core/train/grad_model.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace longseq {

namespace {

struct HybridConfig {
  nlohmann::json json;  // as read (written back by save)
  int64_t d_model = 0, n_layer = 0, vocab_size = 0, padded_vocab = 0;
  std::vector<std::string> blocks;  // per block: "mamba" or "hyena"
  bool rms_norm = true, tie_embeddings = true;
  double eps = 1e-5;
  nn::MambaMixerShape mamba;
  nn::HyenaShape hyena;
  int64_t mlp_inner = 0;
  double activation_freq = 10;
  bool has(const std::string& type) const { return std::find(blocks.begin(), blocks.end(), type) != blocks.end(); }
};

// An integer in [lo, hi] under `key`, or `fallback` when the config does not set it.
int64_t int_or(const Config& c, const std::string& key, int64_t fallback, int64_t lo, int64_t hi) {
  return c.has(key) ? c.get_int_in(key, lo, hi) : fallback;
}

HybridConfig parse(const Config& c) {
  HybridConfig h;
  h.json = c.json();
  const int64_t big = int64_t(1) << 24;
  h.d_model = c.get_int_in("d_model", 1, big);
  h.n_layer = c.get_int_in("n_layer", 1, 4096);
  h.vocab_size = c.get_int_in("vocab_size", 1, big);
  h.padded_vocab = round_up_multiple(h.vocab_size, pad_multiple(c));
  h.rms_norm = c.get_bool("rms_norm", true);
  h.tie_embeddings = c.get_bool("tie_embeddings", true);
  h.eps = c.get_double("norm_epsilon", 1e-5);
  if (!(h.eps > 0 && h.eps < 1)) c.invalid("norm_epsilon", "must lie in (0, 1)");
  const nlohmann::json* pattern = c.find("layers");
  if (!pattern || !pattern->is_array() || pattern->empty()) c.invalid("layers", "must list the block types, e.g. [\"mamba\", \"hyena\"]");
  std::vector<std::string> types;
  for (const auto& t : *pattern) {
    if (!t.is_string() || (t != "mamba" && t != "hyena")) c.invalid("layers", "holds a block type other than \"mamba\" or \"hyena\"");
    types.push_back(t.get<std::string>());
  }
  if (h.n_layer % int64_t(types.size()) != 0) c.invalid("layers", fmt::format("has {} entries, which do not repeat to n_layer {}", types.size(), h.n_layer));
  for (int64_t i = 0; i < h.n_layer; ++i) h.blocks.push_back(types[size_t(i) % types.size()]);
  const int64_t d = h.d_model;
  if (h.has("mamba")) {
    const int64_t expand = int_or(c, "mamba.expand", 2, 1, 16);
    h.mamba = {.d = d, .D = expand * d, .N = int_or(c, "mamba.d_state", 16, 1, 256), .R = int_or(c, "mamba.dt_rank", (d + 15) / 16, 1, d),
               .W = int_or(c, "mamba.d_conv", 4, 1, 16)};
  }
  if (h.has("hyena")) {
    h.mlp_inner = int_or(c, "hyena.d_inner", 4 * d, 1, int64_t(1) << 18);
    h.hyena = {.d = d, .W = int_or(c, "hyena.short_filter_order", 3, 1, 16), .O = int_or(c, "hyena.filter_order", 64, 1, 4096),
               .E = int_or(c, "hyena.emb_dim", 5, 3, 257), .inner = int_or(c, "hyena.num_inner_mlps", 2, 0, 64) + 1,
               .max_len = int_or(c, "hyena.max_seq_len", 1026, 2, int64_t(1) << 31)};
    if (h.hyena.E % 2 == 0) c.invalid("hyena.emb_dim", "must be odd");
    h.activation_freq = c.get_double("hyena.activation_freq", 10.0);
  }
  return h;
}

std::string block_prefix(int64_t i) { return fmt::format("backbone.layers.{}.", i); }

LmFrame frame(const HybridConfig& h) {
  return {.family = "hybrid", .embedding = "backbone.embedding.weight", .final_norm = "backbone.norm_f.", .d_model = h.d_model,
          .n_layer = h.n_layer, .tied = h.tie_embeddings, .rms = h.rms_norm, .final_eps = h.eps};
}

// The one table of the family's tensors, in file order.
nn::ParamDecls declarations(const HybridConfig& h) {
  const int64_t d = h.d_model;
  const double resid_std = 0.02 / std::sqrt(2.0 * double(h.n_layer));
  return lm_declarations(frame(h), h.padded_vocab, [&](int64_t i) {
    const std::string b = block_prefix(i);
    if (h.blocks[size_t(i)] == "mamba") return concat({nn::norm_params(b + "norm.", d, h.rms_norm), nn::mamba_mixer_params(b + "mixer.", h.mamba, h.n_layer)});
    return concat({nn::norm_params(b + "norm.", d, h.rms_norm), nn::hyena_operator_params(b + "mixer.", h.hyena, resid_std, h.activation_freq),
                   nn::norm_params(b + "norm2.", d, h.rms_norm), nn::gelu_mlp_params(b + "mlp.", d, h.mlp_inner, resid_std)});
  });
}

class HybridFamily final : public LayerFamily<HybridFamily> {
 public:
  template <class T>
  static std::unique_ptr<train::GradModel<T>> build(const nlohmann::json& config, train::WeightSource weights) {
    const HybridConfig h = parse(Config::parse(config.dump(), "hybrid config"));
    return layer_stack<T>(frame(h), h.json, std::move(weights), declarations(h), [&](auto& g, const nn::OffsetOf& off, int64_t i) {
      const std::string b = block_prefix(i);
      const auto norm = [&](const std::string& name) { return nn::make_norm<T>(off, b + name, h.rms_norm, h.eps); };
      if (h.blocks[size_t(i)] == "mamba") {
        g.add_step(i, norm("norm."), nn::make_mamba_mixer<T>(off, b + "mixer.", h.mamba));
      } else {
        g.add_step(i, norm("norm."), nn::make_hyena_operator<T>(off, b + "mixer.", h.hyena));
        g.add_step(i, norm("norm2."), nn::make_gelu_mlp<T>(off, b + "mlp.", h.mlp_inner));
      }
    });
  }

  std::string name() const override { return "hybrid"; }
  std::string title() const override { return "hybrid (layers from config.json)"; }
  bool recognizes(const Config& c) const override { return c.get_string("model_type", "") == "longseq-hybrid"; }

  void summarize(const ModelDir& m, ModelSummary& s) const override {
    const HybridConfig h = parse(m.config);
    s.format = "longseq";
    s.hyperparameters = {{"d_model", std::to_string(h.d_model)},
                         {"n_layer", std::to_string(h.n_layer)},
                         {"vocab (padded)", fmt::format("{} ({})", h.vocab_size, h.padded_vocab)},
                         {"blocks", fmt::format("{}", fmt::join(h.blocks, ","))},
                         {"norm", h.rms_norm ? "RMSNorm" : "LayerNorm"}};
    if (h.has("mamba")) s.hyperparameters.push_back({"mamba", fmt::format("D {}, N {}, W {}", h.mamba.D, h.mamba.N, h.mamba.W)});
    if (h.has("hyena"))
      s.hyperparameters.push_back({"hyena", fmt::format("max_seq_len {}, filter_order {}, mlp {}", h.hyena.max_len, h.hyena.O, h.mlp_inner)});
    int64_t saved = 0;
    for (const std::string& b : h.blocks) saved += b == "mamba" ? 6 * h.mamba.D + 2 * h.mamba.N : 12 * h.d_model + 2 * h.mlp_inner;
    s.activation_bytes_per_token = 4.0 * double(saved + 3 * h.d_model + h.padded_vocab);
    s.memory_note = h.has("hyena") ? "a whole window per pass (a Hyena block sees it all): grows linearly with the window length"
                                   : "streamed in chunks with each block's state carried: bounded by the chunk, whatever the length";
  }

  bool is_buffer(const std::string& tensor) const override {
    return tensor.ends_with("pos_emb.t") || tensor.ends_with("modulation.deltas");
  }

  std::unique_ptr<LanguageModel> load(const ModelDir& dir) const override {
    const HybridConfig h = parse(dir.config);
    WeightLoader w(dir.weights);
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const nn::ParamDecl& p : declarations(h)) tensors.emplace_back(p.name, w.get(p.name, p.shape));
    w.check_all_used("hybrid");
    return language_model(h.json, {.tensors = std::move(tensors)}, h.has("hyena") ? h.hyena.max_len : 0);
  }

  std::unique_ptr<LanguageModel> random(const Config& config, uint64_t seed) const override {
    const HybridConfig h = parse(config);
    return language_model(h.json, {.declarations = declarations(h), .seed = seed}, h.has("hyena") ? h.hyena.max_len : 0);
  }
};

}  // namespace

const Family& hybrid_family() {
  static const HybridFamily family;
  return family;
}

}  // namespace longseq
