// The Caduceus family (kuleshov-group/caduceus, Hugging Face format): bidirectional Mamba-1 for DNA,
// described by its layers. A block is x += BiMamba(norm(x)) (Caduceus-PH), or on a stream of two
// channel halves, one per strand, x += RC(BiMamba)(RC(norm)(x)) with the tied token table and the
// final norm shared by both strands (Caduceus-PS: reverse-complement equivariant by construction).
// The released PS block (fused add + norm) also exchanges the two halves at every block; that is a
// map step before the residual step, so hidden states match the released code's. Nothing here
// streams: the reverse direction starts at the window's end, so a window runs whole.
#include "core/error.h"
#include "core/families/family.h"
#include "core/families/mamba_config.h"
#include "core/models/weights.h"
#include "core/nn/layers.h"
#include "core/train/grad_model.h"

#include <fmt/format.h>

namespace longseq {

namespace {

struct CaduceusConfig {
  MambaConfig m;  // widths, state, norms, vocabulary (the Mamba-1 keys Caduceus shares)
  bool rcps = false, bidirectional = true, weight_tie = true, fused_add_norm = true;
  std::vector<int64_t> complement;  // per padded-vocabulary id
};

// The char tokenizer's complement (A=7 <-> T=10, C=8 <-> G=9), identity elsewhere.
std::vector<int64_t> dna_complement(int64_t V) {
  std::vector<int64_t> c(static_cast<size_t>(V));
  for (int64_t v = 0; v < V; ++v) c[size_t(v)] = v;
  const std::pair<int64_t, int64_t> pairs[] = {{7, 10}, {8, 9}};
  for (const auto& [a, b] : pairs)
    if (a < V && b < V) c[size_t(a)] = b, c[size_t(b)] = a;
  return c;
}

CaduceusConfig parse_caduceus_config(const Config& c) {
  CaduceusConfig k;
  k.m = parse_mamba_config(c);
  k.m.tie_embeddings = true;  // the LM head is the embedding in every Caduceus model
  k.rcps = c.get_bool("rcps", false);
  k.bidirectional = c.get_bool("bidirectional", true);
  k.weight_tie = c.get_bool("bidirectional_weight_tie", true);
  k.fused_add_norm = c.get_bool("fused_add_norm", true);
  if (const std::string s = c.get_string("bidirectional_strategy", "add"); k.bidirectional && s != "add")
    c.invalid("bidirectional_strategy", "is '" + s + "'; longseq runs the released 'add' strategy only");
  if (k.bidirectional && !k.weight_tie)
    c.invalid("bidirectional_weight_tie", "is false; longseq runs the released BiMamba, whose directions share in_proj and out_proj");
  if (k.m.bias) c.invalid("ssm_cfg.bias", "is true; Caduceus's mixers have no in_proj/out_proj biases in any released model");
  k.complement = dna_complement(k.m.padded_vocab);
  const nlohmann::json* map = c.find("complement_map");
  if (map && map->is_object()) {
    for (const auto& [key, value] : map->items()) {
      int64_t from = -1;
      try {
        from = std::stoll(key);
      } catch (const std::exception&) {
        c.invalid("complement_map", "has the key '" + key + "'; keys are token ids");
      }
      if (from < 0 || from >= k.m.padded_vocab || !value.is_number_integer() || value.get<int64_t>() < 0 ||
          value.get<int64_t>() >= k.m.padded_vocab)
        c.invalid("complement_map", fmt::format("maps '{}' to {}: ids must be in [0, {})", key, value.dump(), k.m.padded_vocab));
      k.complement[size_t(from)] = value.get<int64_t>();
    }
  } else if (k.rcps) {
    c.invalid("complement_map", "is missing; a reverse-complement (rcps) model needs each token's complement");
  }
  for (int64_t v = 0; v < k.m.padded_vocab; ++v)
    if (k.complement[size_t(k.complement[size_t(v)])] != v)
      c.invalid("complement_map", fmt::format("is not its own inverse at id {} (the complement of a complement is the token)", v));
  return k;
}

nlohmann::json caduceus_config_json(const CaduceusConfig& k) {
  nlohmann::json j = mamba_config_json(k.m);
  j.erase("tie_embeddings");
  j["model_type"] = "caduceus";
  j["architectures"] = {"CaduceusForMaskedLM"};
  j["rcps"] = k.rcps;
  j["bidirectional"] = k.bidirectional;
  j["bidirectional_strategy"] = "add";
  j["bidirectional_weight_tie"] = k.weight_tie;
  j["fused_add_norm"] = k.fused_add_norm;
  nlohmann::json map = nlohmann::json::object();
  for (size_t v = 0; v < k.complement.size(); ++v) map[std::to_string(v)] = k.complement[v];
  j["complement_map"] = map;
  return j;
}

// ---- the tensor-name table (the released names) ----
const std::string kBackbone = "caduceus.backbone.";

std::string embedding_name(const CaduceusConfig& k) {
  return kBackbone + (k.rcps ? "embeddings.word_embeddings.embedding.weight" : "embeddings.word_embeddings.weight");
}
std::string block_prefix(int64_t i) { return fmt::format("{}layers.{}.", kBackbone, i); }
// An unfused PS norm is wrapped in RCPSAddNormWrapper (its weights under .submodule.).
std::string norm_prefix(const CaduceusConfig& k, const std::string& owner) {
  return owner + (k.rcps && !k.fused_add_norm ? "submodule." : "");
}
std::string mixer_prefix(const CaduceusConfig& k, int64_t i) { return block_prefix(i) + (k.rcps ? "mixer.submodule." : "mixer."); }
std::string head_alias(const CaduceusConfig& k) { return k.rcps ? "lm_head.lm_head.weight" : "lm_head.weight"; }
std::vector<std::string> complement_buffers(const CaduceusConfig& k) {
  if (!k.rcps) return {};
  return {kBackbone + "embeddings.word_embeddings.complement_map", "lm_head.complement_map"};
}

nn::MambaMixerShape mixer_shape(const MambaConfig& c) {
  return {.d = c.d_model, .D = c.d_inner, .N = c.d_state, .R = c.dt_rank, .W = c.d_conv, .bias = c.bias, .conv_bias = c.conv_bias};
}

LmFrame frame(const CaduceusConfig& k) {
  return {.family = "caduceus", .embedding = embedding_name(k), .final_norm = norm_prefix(k, kBackbone + "norm_f."),
          .d_model = k.m.d_model, .n_layer = k.m.n_layer, .tied = true, .rms = k.m.rms_norm, .final_eps = k.m.norm_eps,
          .rc_complement = k.rcps ? k.complement : std::vector<int64_t>{}};
}

nn::ParamDecls declarations(const CaduceusConfig& k) {
  return lm_declarations(frame(k), k.m.padded_vocab, [&](int64_t i) {
    const nn::ParamDecls mixer = k.bidirectional
                                     ? nn::bimamba_params(mixer_prefix(k, i), mixer_shape(k.m), k.m.n_layer)
                                     : nn::mamba_mixer_params(nn::bimamba_direction_prefix(mixer_prefix(k, i), false), mixer_shape(k.m), k.m.n_layer);
    return concat({nn::norm_params(norm_prefix(k, block_prefix(i) + "norm."), k.m.d_model, k.m.rms_norm), mixer});
  });
}

class CaduceusFamily final : public LayerFamily<CaduceusFamily> {
 public:
  template <class T>
  static std::unique_ptr<train::GradModel<T>> build(const nlohmann::json& config, train::WeightSource weights) {
    const CaduceusConfig k = parse_caduceus_config(Config::parse(config.dump(), "Caduceus config"));
    const int64_t d = k.m.d_model;
    auto model = layer_stack<T>(frame(k), config, std::move(weights), declarations(k), [&](auto& g, const nn::OffsetOf& off, int64_t i) {
      const std::string m = mixer_prefix(k, i);
      std::shared_ptr<const nn::Layer<T>> norm = nn::make_norm<T>(off, norm_prefix(k, block_prefix(i) + "norm."), k.m.rms_norm, k.m.norm_eps);
      std::shared_ptr<const nn::Layer<T>> op = k.bidirectional
                                                   ? nn::make_bimamba<T>(off, m, mixer_shape(k.m))
                                                   : nn::make_mamba_mixer<T>(off, nn::bimamba_direction_prefix(m, false), mixer_shape(k.m));
      if (!k.rcps) return g.add_step(i, norm, op);
      if (k.fused_add_norm) g.add_map(i, nn::make_swap_halves<T>(d));  // the released fused block's exchange
      g.add_step(i, nn::make_rc_wrapper<T>(norm, d), nn::make_rc_wrapper<T>(op, d));
    });
    for (const std::string& name : complement_buffers(k)) model->add_fixed(name, Tensor::from_ids(k.complement));
    return model;
  }

  std::string name() const override { return "caduceus"; }
  std::string title() const override { return "Caduceus"; }
  bool recognizes(const Config& c) const override { return c.get_string("model_type", "") == "caduceus"; }

  void summarize(const ModelDir& m, ModelSummary& s) const override {
    const CaduceusConfig k = parse_caduceus_config(m.config);
    const auto yes_no = [](bool b) { return std::string(b ? "true" : "false"); };
    s.format = "huggingface";
    s.hyperparameters = {{"variant", k.rcps ? "Caduceus-PS (reverse-complement parameter sharing)" : "Caduceus-PH"},
                         {"d_model", std::to_string(k.m.d_model)},
                         {"n_layer", std::to_string(k.m.n_layer)},
                         {"vocab (padded)", fmt::format("{} ({})", k.m.vocab_size, k.m.padded_vocab)},
                         {"d_inner (D)", std::to_string(k.m.d_inner)},
                         {"d_state (N)", std::to_string(k.m.d_state)},
                         {"d_conv", std::to_string(k.m.d_conv)},
                         {"dt_rank (R)", std::to_string(k.m.dt_rank)},
                         {"bidirectional", yes_no(k.bidirectional)},
                         {"bidirectional_weight_tie", yes_no(k.weight_tie)},
                         {"fused_add_norm", yes_no(k.fused_add_norm)},
                         {"norm", k.m.rms_norm ? "RMSNorm" : "LayerNorm"}};
    // A window runs whole: per token the stream, its normalised copy and the branch output (each of
    // the stream's width), the RC wrapper's input and output halves, the logits, and BiMamba's
    // shared projections (3 D floats, core/nn/rc_layers.cpp; past 512 MiB of them a window projects
    // block by block instead); the mixers themselves run 4,096-row blocks.
    const double width = double(k.rcps ? 2 * k.m.d_model : k.m.d_model), D = double(k.m.d_inner);
    s.activation_bytes_per_token = 4 * (3 * width + (k.rcps ? 2.0 * k.m.d_model : 0.0) + double(k.m.padded_vocab) + 3 * D);
    const double block_mib = 4.0 * 4096 * (5 * D + k.m.dt_rank + 2.0 * k.m.d_state + 3.0 * k.m.d_model) / (1 << 20);
    s.memory_note = fmt::format("bidirectional: a window runs whole (it cannot stream token by token); peak is the window x this "
                                "(windows past {} tokens drop the 3 D shared projections), plus {:.0f} MiB for the mixers' 4,096-row blocks",
                                int64_t(double(int64_t(512) << 20) / (12.0 * D)), block_mib);
    s.notes.push_back("the LM head is tied to " + embedding_name(k) + " (stored once)");
    if (k.bidirectional) s.notes.push_back("mamba_rev's in_proj and out_proj are mamba_fwd's (stored once, computed once per pass)");
    if (k.rcps && k.fused_add_norm) s.notes.push_back("released fused PS block: the two channel halves are exchanged at every block");
  }

  bool is_buffer(const std::string& tensor) const override { return tensor.ends_with("complement_map"); }

  // The released files store tied tensors once; a file that also stores an alias (a
  // pytorch_model.bin converted whole) has it skipped, as the official tie_weights() overwrites it.
  std::unique_ptr<LanguageModel> load(const ModelDir& dir) const override {
    const CaduceusConfig k = parse_caduceus_config(dir.config);
    WeightLoader w(dir.weights);
    const std::string emb = embedding_name(k), file = dir.weights.path().string();
    LS_CHECK(w.has(emb), "{}: missing tensor '{}' (is this a Caduceus-{} checkpoint in the Hugging Face format?)", file, emb,
             k.rcps ? "PS" : "PH");
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const nn::ParamDecl& p : declarations(k)) tensors.emplace_back(p.name, w.get(p.name, p.shape));
    for (const std::string& name : complement_buffers(k)) {
      if (!w.has(name)) continue;
      const Tensor t = dir.weights.view(name).to(DType::I64);
      LS_CHECK(t.numel() == int64_t(k.complement.size()) &&
                   std::equal(k.complement.begin(), k.complement.end(), t.data<int64_t>()),
               "{}: '{}' differs from config.json's complement_map (re-export the model or fix the config)", file, name);
      w.ignore(name);
    }
    if (w.has(head_alias(k))) w.ignore(head_alias(k));
    for (int64_t i = 0; i < k.m.n_layer && k.bidirectional; ++i)
      for (const char* part : {"in_proj.weight", "in_proj.bias", "out_proj.weight", "out_proj.bias"})
        if (const std::string alias = nn::bimamba_direction_prefix(mixer_prefix(k, i), true) + part; w.has(alias)) w.ignore(alias);
    w.check_all_used("Caduceus");
    return language_model(dir.config.json(), {.tensors = std::move(tensors)}, 0);
  }

  // The Mamba-1 family's shape flags (one default and range per key), plus the strand sharing.
  std::vector<ArchOption> arch_options() const override {
    std::vector<ArchOption> o = family_named("mamba").arch_options();
    o.push_back({"rcps", "Reverse-complement parameter sharing: 1 Caduceus-PS (equivariant), 0 Caduceus-PH", 1, 0, 1});
    return o;
  }

  nlohmann::json new_config(const ArchValues& v, int64_t) const override {
    CaduceusConfig k;
    k.m.d_model = v.at("d_model");
    k.m.n_layer = v.at("n_layer");
    k.m.vocab_size = v.at("vocab");
    k.m.padded_vocab = round_up_multiple(k.m.vocab_size, 8);
    k.m.d_state = v.at("d_state");
    k.m.d_conv = v.at("d_conv");
    k.m.expand = v.at("expand");
    k.m.d_inner = k.m.expand * k.m.d_model;
    k.m.dt_rank = (k.m.d_model + 15) / 16;
    k.m.residual_in_fp32 = false;
    k.rcps = v.at("rcps") == 1;
    k.complement = dna_complement(k.m.padded_vocab);
    return caduceus_config_json(k);
  }

  std::unique_ptr<LanguageModel> random(const Config& config, uint64_t seed) const override {
    const CaduceusConfig k = parse_caduceus_config(config);
    return language_model(caduceus_config_json(k), {.declarations = declarations(k), .seed = seed}, 0);
  }
};

}  // namespace

const Family& caduceus_family() {
  static const CaduceusFamily family;
  return family;
}

}  // namespace longseq
