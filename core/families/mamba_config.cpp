#include "core/families/mamba_config.h"

#include "core/error.h"

#include <cmath>

namespace longseq {

std::string MambaConfig::embedding_name() const {
  return format == Format::HuggingFace ? "backbone.embeddings.weight" : "backbone.embedding.weight";
}

bool looks_like_mamba(const Config& c) {
  const std::string type = c.get_string("model_type", "");
  if (type == "mamba") return true;
  if (!type.empty()) return false;
  return c.has("d_model") && c.has("n_layer") && c.has("vocab_size") && !c.has("d_inner") && !c.has("bidirectional");
}

namespace {

void reject_unsupported(const Config& c) {
  const std::string layer = c.get_string("ssm_cfg.layer", "Mamba1");
  if (layer != "Mamba1")
    c.invalid("ssm_cfg.layer", "is '" + layer + "'; longseq runs Mamba-1 layers only (use a Mamba-1 checkpoint)");
  if (const auto* a = c.find("attn_layer_idx"); a && a->is_array() && !a->empty())
    c.invalid("attn_layer_idx", "lists attention layers; hybrid Mamba/attention models are not supported yet");
  if (c.get_int("d_intermediate", 0) != 0)
    c.invalid("d_intermediate", "is non-zero (MLP blocks); only pure Mamba-1 stacks are supported");
}

int64_t parse_dt_rank(const Config& c, const std::string& key, int64_t d_model) {
  const auto* v = c.find(key);
  if (!v || (v->is_string() && v->get<std::string>() == "auto")) return (d_model + 15) / 16;
  if (!v->is_number_integer() || v->get<int64_t>() <= 0) c.invalid(key, "must be \"auto\" or a positive integer, got " + v->dump());
  return v->get<int64_t>();
}

}  // namespace

MambaConfig parse_mamba_config(const Config& c) {
  MambaConfig m;
  const int64_t big = int64_t(1) << 24;
  if (c.has("hidden_size")) {  // Hugging Face MambaConfig
    m.format = MambaConfig::Format::HuggingFace;
    m.d_model = c.get_int_in("hidden_size", 1, big);
    m.n_layer = c.get_int_in("num_hidden_layers", 1, 4096);
    m.vocab_size = c.get_int_in("vocab_size", 1, big);
    m.d_state = c.get_int_in("state_size", 1, 1024);
    m.d_conv = c.get_int_in("conv_kernel", 1, 64);
    m.expand = c.get_int_in("expand", 1, 64);
    m.d_inner = c.get_int("intermediate_size", m.expand * m.d_model);
    m.dt_rank = parse_dt_rank(c, "time_step_rank", m.d_model);
    m.conv_bias = c.get_bool("use_conv_bias", true);
    m.bias = c.get_bool("use_bias", false);
    m.norm_eps = c.get_double("layer_norm_epsilon", 1e-5);
    m.residual_in_fp32 = c.get_bool("residual_in_fp32", true);
    m.tie_embeddings = c.get_bool("tie_word_embeddings", true);
    m.pad_vocab_multiple = pad_multiple(c);
    m.padded_vocab = round_up_multiple(m.vocab_size, m.pad_vocab_multiple);
    if (m.d_inner != m.expand * m.d_model)
      c.invalid("intermediate_size", fmt::format("is {} but expand*hidden_size is {}", m.d_inner, m.expand * m.d_model));
    return m;
  }
  reject_unsupported(c);
  m.d_model = c.get_int_in("d_model", 1, big);
  m.n_layer = c.get_int_in("n_layer", 1, 4096);
  m.vocab_size = c.get_int_in("vocab_size", 1, big);
  m.d_state = c.get_int("ssm_cfg.d_state", 16);
  m.d_conv = c.get_int("ssm_cfg.d_conv", 4);
  m.expand = c.get_int("ssm_cfg.expand", 2);
  if (m.d_state < 1 || m.d_state > 1024) c.invalid("ssm_cfg.d_state", "must be in [1, 1024]");
  if (m.d_conv < 1 || m.d_conv > 64) c.invalid("ssm_cfg.d_conv", "must be in [1, 64]");
  if (m.expand < 1 || m.expand > 64) c.invalid("ssm_cfg.expand", "must be in [1, 64]");
  m.d_inner = m.expand * m.d_model;
  m.dt_rank = parse_dt_rank(c, "ssm_cfg.dt_rank", m.d_model);
  m.conv_bias = c.get_bool("ssm_cfg.conv_bias", true);
  m.bias = c.get_bool("ssm_cfg.bias", false);
  m.rms_norm = c.get_bool("rms_norm", true);
  m.residual_in_fp32 = c.get_bool("residual_in_fp32", true);
  m.tie_embeddings = c.get_bool("tie_embeddings", true);
  m.norm_eps = c.get_double("norm_epsilon", 1e-5);
  m.pad_vocab_multiple = pad_multiple(c);
  m.padded_vocab = round_up_multiple(m.vocab_size, m.pad_vocab_multiple);
  return m;
}

}  // namespace longseq

namespace longseq {

nlohmann::json mamba_config_json(const MambaConfig& c) {
  nlohmann::json ssm = {{"d_state", c.d_state}, {"d_conv", c.d_conv}, {"expand", c.expand},  {"dt_rank", c.dt_rank},
                        {"conv_bias", c.conv_bias}, {"bias", c.bias}};
  return {{"d_model", c.d_model},
          {"n_layer", c.n_layer},
          {"vocab_size", c.vocab_size},
          {"ssm_cfg", ssm},
          {"rms_norm", c.rms_norm},
          {"residual_in_fp32", c.residual_in_fp32},
          {"fused_add_norm", true},
          {"pad_vocab_size_multiple", c.pad_vocab_multiple},
          {"tie_embeddings", c.tie_embeddings},
          {"norm_epsilon", c.norm_eps}};
}

}  // namespace longseq
